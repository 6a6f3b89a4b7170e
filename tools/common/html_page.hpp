// The HTML machinery the tools' reports share (pgdump-log --report-html,
// pgreplay --report-html): one self-contained page whose charts are SVG drawn
// here, not in the browser, so the page shows everything with scripts off and
// the tests can count what is drawn in the served DOM. The only script sorts
// the tables. Nothing is fetched: the style and the script are inline, and
// the page's Content-Security-Policy allows only those two (by hash), so even
// text that escaped escaping could neither run nor load anything.
//
// Everything that comes from a capture or a server goes through put_text.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgwire/stats.hpp"

namespace pgtools::html {

inline constexpr int64_t kUs = 1000, kMs = 1000 * kUs, kSec = 1000 * kMs, kMin = 60 * kSec, kHour = 60 * kMin;
inline constexpr int64_t kDay = 24 * kHour;

// Text (element content or attribute value, quoted with "): valid UTF-8 out
// whatever comes in, control bytes shown as \xNN, markup characters escaped.
void put_text(std::string& out, std::string_view s);

// Numbers and times for labels and cells.
std::string grouped(uint64_t n);  // 1,234,567
double ms(int64_t ns);
std::string short_number(double v);     // 3 significant digits, no exponent
std::string duration_text(int64_t ns);  // "10 ms", "4 min"
std::string span_text(int64_t ns);      // "1 h 20 min"
std::string iso(int64_t ns);            // ISO 8601, UTC
// "HH:MM:SS" with as many decimals as `step` needs; "MM-DD" for days.
std::string clock_label(int64_t ns, int64_t step);

// One line of a chart.
struct Line {
  std::string name;                           // "statements/s", "p95"
  std::string klass;                          // CSS class: its colour
  std::vector<std::optional<double>> values;  // one per bucket; nullopt: no value there
};

struct ChartSpec {
  std::string id;
  std::string unit;  // of the y axis, after the tick values
  double height = 240;
  bool log = false;
};

// The chart of `lines` over the buckets of `series`, with a transparent
// column per bucket where statements started, whose tooltip is `tips[i]` and
// whose data-* attributes carry the bucket's counts (data-n statements,
// data-e errors, data-k known durations; for the tests too).
void put_chart(std::string& out, const ChartSpec& spec, const pgwire::StatementTimeline::Series& series,
               const std::vector<Line>& lines, const std::vector<std::string>& tips);

// A header cell; `numeric` columns sort descending first and align right.
struct Column {
  std::string_view key, title;
  bool numeric = true;
};
// <table id class="sortable"><thead>...</thead><tbody>: the caller writes the rows and closes it.
void put_table_head(std::string& out, std::string_view id, std::initializer_list<Column> cols,
                    std::string_view sorted_key);
void put_num(std::string& out, uint64_t n);                // a count cell
void put_ms(std::string& out, std::optional<int64_t> ns);  // milliseconds; "–" when unknown

// The name of a SQLSTATE seen often, or of its class (PostgreSQL's
// documentation, Appendix A); "" when neither is known.
std::string_view sqlstate_name(std::string_view code);

// A figure of the overview: label, data-key, data-v (for tests and tools) and what is shown.
void put_card(std::string& out, std::string_view label, std::string_view key, std::string_view value,
              std::string_view display, bool err = false);

struct PageHead {
  std::string_view tool;                // "pgdump-log": the title is "<tool> report: <inputs>"
  std::span<const std::string> inputs;  // the files read, from the command line, shown joined by ", "
  // CSS rules after the shared ones (classes of a tool's own lines): covered
  // by the page's Content-Security-Policy like the rest.
  std::string_view extra_style;
};
// A new page, with room reserved for a report: everything up to and including <main>.
std::string begin_page(const PageHead& head);
// </main>, the footer (HTML, not escaped: the caller's own words), the
// script, and the end of the page.
void end_page(std::string& out, std::string_view footer);

}  // namespace pgtools::html
