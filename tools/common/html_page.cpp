// The HTML machinery of the tools' reports (pgdump-log --report-html,
// pgreplay --report-html): see html_page.hpp.
#include "html_page.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "pgwire/auth.hpp"
#include "pgwire/bytes.hpp"
#include "pgwire/text.hpp"
#include "pgwire/version.hpp"

namespace pgtools::html {

using namespace pgwire;

namespace {

// ---------------------------------------------------------------------------
// Escaping: everything that comes from a capture goes through put_text.

void put_html_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);  // visible, as the SQL log shows it
        } else {
          out += c;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// SVG charts.

struct Plot {
  static constexpr double kWidth = 960, kLeft = 64, kRight = 948, kTop = 12;
  double height = 240;
  double bottom() const { return height - 30; }
};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  double y(const Plot& p, double v) const {
    double f;
    if (log) {
      f = (std::log10(std::max(v, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    } else {
      f = (v - lo) / (hi - lo);
    }
    return p.bottom() - std::clamp(f, 0.0, 1.0) * (p.bottom() - Plot::kTop);
  }
};

Axis linear_axis(double max) {
  Axis a;
  if (!(max > 0)) max = 1;
  const double raw = max / 4;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag * 10;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  const int steps = static_cast<int>(std::ceil(max / step));  // 4 or 5
  a.hi = step * steps;
  for (int i = 0; i <= steps; ++i) a.ticks.push_back(step * i);
  return a;
}

Axis log_axis(double min, double max) {
  Axis a;
  a.log = true;
  min = std::max(min, 1e-3);
  max = std::max(max, min);
  a.lo = std::pow(10, std::floor(std::log10(min)));
  a.hi = std::pow(10, std::ceil(std::log10(max)));
  if (a.hi <= a.lo) a.hi = a.lo * 10;
  const int decades = static_cast<int>(std::lround(std::log10(a.hi / a.lo)));
  for (int i = 0; i <= decades; ++i) {
    const double d = a.lo * std::pow(10, i);
    a.ticks.push_back(d);
    if (decades <= 2 && i < decades) {
      a.ticks.push_back(d * 2);
      a.ticks.push_back(d * 5);
    }
  }
  return a;
}

// Tick steps for the time axis: each a round duration.
constexpr int64_t kTimeSteps[] = {
    kUs,      2 * kUs,   5 * kUs,   10 * kUs,  20 * kUs,   50 * kUs,  100 * kUs, 200 * kUs, 500 * kUs, kMs,
    2 * kMs,  5 * kMs,   10 * kMs,  20 * kMs,  50 * kMs,   100 * kMs, 200 * kMs, 500 * kMs, kSec,      2 * kSec,
    5 * kSec, 10 * kSec, 15 * kSec, 30 * kSec, kMin,       2 * kMin,  5 * kMin,  10 * kMin, 15 * kMin, 30 * kMin,
    kHour,    2 * kHour, 3 * kHour, 6 * kHour, 12 * kHour, kDay,      2 * kDay,  7 * kDay,  14 * kDay, 28 * kDay};

// ---------------------------------------------------------------------------
// The page's style and script, and the policy that allows only them.

constexpr std::string_view kStyle = R"(
:root{--fg:#1d2430;--muted:#5d6778;--line:#dde2ea;--bg:#f6f8fb;--card:#fff;--accent:#2463c7;--err:#c93434;
--p50:#2f8f5b;--p95:#d08a1c;--p99:#c93434}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2430;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#b8c2d3;font-size:13px;word-break:break-all}
main{padding:8px 28px 28px;max-width:1320px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:16px 0;padding:14px 18px}
h2{font-size:16px;margin:0 0 10px;font-weight:600}
h3{font-size:14px;margin:0 0 6px;font-weight:600}
.note{color:var(--muted);font-size:12.5px;margin:6px 0 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.card .label{display:block;color:var(--muted);font-size:12px}
.card .value{display:block;font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
.card .value.err{color:var(--err)}
.legend{display:flex;gap:16px;font-size:12.5px;color:var(--muted);margin:0 0 4px}
.legend span::before{content:"";display:inline-block;width:14px;height:3px;margin-right:5px;vertical-align:middle;background:currentColor}
.legend .statements{color:var(--accent)}.legend .errors{color:var(--err)}
.legend .p50{color:var(--p50)}.legend .p95{color:var(--p95)}.legend .p99{color:var(--p99)}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#edf0f5;stroke-width:1}
svg .axis{stroke:#9aa4b5;stroke-width:1}
svg .tick{fill:var(--muted);font-size:11px}
svg .empty{fill:var(--muted);font-size:14px;text-anchor:middle}
svg .line{fill:none;stroke-width:1.8;stroke-linejoin:round;stroke-linecap:round}
svg .line.statements{stroke:var(--accent)}svg .line.errors{stroke:var(--err)}
svg .line.p50{stroke:var(--p50)}svg .line.p95{stroke:var(--p95)}svg .line.p99{stroke:var(--p99)}
svg .dot.statements{fill:var(--accent)}svg .dot.errors{fill:var(--err)}
svg .dot.p50{fill:var(--p50)}svg .dot.p95{fill:var(--p95)}svg .dot.p99{fill:var(--p99)}
svg .hits rect{fill:transparent}
svg .hits rect:hover{fill:rgba(36,99,199,.10)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f0f3f8;font-weight:600;white-space:nowrap;cursor:pointer;user-select:none}
th:hover{background:#e4e9f2}
th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
th[aria-sort=descending]::after{content:" ▼";font-size:10px}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.sql code{white-space:pre-wrap;word-break:break-word}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
details{margin-top:4px}
summary{color:var(--accent);cursor:pointer;font-size:12px}
details code{display:block;background:#f6f8fb;border:1px solid var(--line);border-radius:4px;padding:6px;white-space:pre-wrap;word-break:break-all}
.fp{color:var(--muted);font-size:11px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px}
.tablewrap{max-height:640px;overflow:auto}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
)";

// Sorts a table by the clicked column (again: the other way). Numeric cells
// sort by their data-v. "#sort=<table id>.<column key>.<asc|desc>" in the URL
// sorts on load, and a click writes it, so a sorted view can be linked to.
constexpr std::string_view kScript = R"(
'use strict';
(() => {
  const value = (row, col) => {
    const cell = row.cells[col];
    const v = cell.getAttribute('data-v');
    return v === null ? cell.textContent.trim().toLowerCase() : Number(v);
  };
  const sortBy = (table, th, dir) => {
    const col = th.cellIndex;
    const body = table.tBodies[0];
    const sign = dir === 'ascending' ? 1 : -1;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = value(a, col), y = value(b, col);
      return x < y ? -sign : x > y ? sign : 0;
    });
    for (const r of rows) body.appendChild(r);
    for (const h of table.tHead.rows[0].cells) h.removeAttribute('aria-sort');
    th.setAttribute('aria-sort', dir);
  };
  for (const table of document.querySelectorAll('table.sortable')) {
    for (const th of table.tHead.rows[0].cells) {
      th.tabIndex = 0;
      const click = () => {
        const now = th.getAttribute('aria-sort');
        const dir = now ? (now === 'ascending' ? 'descending' : 'ascending')
                        : (th.classList.contains('num') ? 'descending' : 'ascending');
        sortBy(table, th, dir);
        history.replaceState(null, '', '#sort=' + table.id + '.' + th.dataset.key + '.' + dir.slice(0, dir === 'ascending' ? 3 : 4));
      };
      th.addEventListener('click', click);
      th.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          click();
        }
      });
    }
    table.setAttribute('data-sortable', 'ready');
  }
  const m = /^#sort=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.(asc|desc)$/.exec(location.hash);
  const table = m && document.getElementById(m[1]);
  if (table && table.tHead) {
    for (const th of table.tHead.rows[0].cells) {
      if (th.dataset.key === m[2]) sortBy(table, th, m[3] === 'asc' ? 'ascending' : 'descending');
    }
  }
})();
)";

// 'sha256-<base64>' of `text`, as a Content-Security-Policy source.
std::string csp_hash(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) return "'none'";
  return "'sha256-" + base64_encode(Bytes(reinterpret_cast<const std::byte*>(md), len)) + "'";
}

}  // namespace

// Text (element content or attribute value, quoted with "): valid UTF-8 out
// whatever comes in, control bytes shown as \xNN, markup characters escaped.
void put_text(std::string& out, std::string_view s) {
  if (is_utf8(s)) {
    put_html_escaped(out, s);
    return;
  }
  std::string one_line;  // bytes that are not UTF-8 as \xNN (and \n, \t, \\ as escapes)
  append_escaped(one_line, s);
  put_html_escaped(out, one_line);
}

// ---------------------------------------------------------------------------
// Numbers and times.

std::string grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// A value for a label: 3 significant digits, no exponent.
std::string short_number(double v) {
  if (v >= 1000) return grouped(static_cast<uint64_t>(std::llround(v)));
  if (v == 0) return "0";
  return fmt::format("{:.3g}", v);
}

std::string duration_text(int64_t ns) {
  if (ns >= kDay && ns % kDay == 0) return fmt::format("{} d", ns / kDay);
  if (ns >= kHour && ns % kHour == 0) return fmt::format("{} h", ns / kHour);
  if (ns >= kMin && ns % kMin == 0) return fmt::format("{} min", ns / kMin);
  if (ns >= kSec) return fmt::format("{} s", short_number(static_cast<double>(ns) / 1e9));
  if (ns >= kMs) return fmt::format("{} ms", short_number(ms(ns)));
  return fmt::format("{} µs", short_number(static_cast<double>(ns) / 1e3));
}

std::string span_text(int64_t ns) {
  if (ns < kMin) return duration_text(ns);
  const int64_t s = ns / kSec;
  if (ns < kHour) return fmt::format("{} min {} s", s / 60, s % 60);
  if (ns < kDay) return fmt::format("{} h {} min", s / 3600, s % 3600 / 60);
  return fmt::format("{} d {} h", s / 86400, s % 86400 / 3600);
}

std::string iso(int64_t ns) {
  std::string s;
  append_iso8601_utc(s, ns);
  return s;
}

// "HH:MM:SS" with as many decimals as `step` needs; "MM-DD" for days.
std::string clock_label(int64_t ns, int64_t step) {
  const int64_t secs = ns >= 0 ? ns / kSec : 0;
  const auto t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  if (step >= kDay) return fmt::format("{:02}-{:02}", tm.tm_mon + 1, tm.tm_mday);
  std::string label = fmt::format("{:02}:{:02}", tm.tm_hour, tm.tm_min);
  if (step >= kMin) return label;
  label += fmt::format(":{:02}", tm.tm_sec);
  const int64_t frac = ns >= 0 ? ns % kSec : 0;
  if (step % kSec == 0) return label;
  if (step % kMs == 0) return label + fmt::format(".{:03}", frac / kMs);
  return label + fmt::format(".{:06}", frac / kUs);
}

// ---------------------------------------------------------------------------
// SVG charts.

// The chart of `lines` over the buckets of `series`, with a transparent
// column per bucket where statements started, whose tooltip is `tips[i]` and
// whose data-* attributes carry the bucket's counts (for the tests too).
void put_chart(std::string& out, const ChartSpec& spec, const StatementTimeline::Series& series,
               const std::vector<Line>& lines, const std::vector<std::string>& tips) {
  Plot p;
  p.height = spec.height;
  const size_t n = series.buckets.size();
  double max = 0, min_positive = 0;
  size_t points = 0;  // of the first line: they all have the same buckets
  for (const Line& l : lines) {
    for (const auto& v : l.values) {
      if (!v) continue;
      max = std::max(max, *v);
      if (*v > 0 && (min_positive == 0 || *v < min_positive)) min_positive = *v;
    }
  }
  if (!lines.empty()) {
    points = static_cast<size_t>(
        std::count_if(lines[0].values.begin(), lines[0].values.end(), [](const auto& v) { return v.has_value(); }));
  }
  uint64_t total = 0, errors = 0;
  for (const auto& b : series.buckets) {
    total += b.statements;
    errors += b.errors;
  }
  fmt::format_to(std::back_inserter(out),
                 "<svg id=\"{}\" class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" data-points=\"{}\" "
                 "data-buckets=\"{}\" data-bucket-ns=\"{}\" data-statements=\"{}\" data-errors=\"{}\">\n",
                 spec.id, Plot::kWidth, p.height, points, n, series.width_ns, total, errors);
  if (points == 0) {
    fmt::format_to(std::back_inserter(out), "<text class=\"empty\" x=\"{}\" y=\"{}\">no data</text>\n</svg>\n",
                   Plot::kWidth / 2, p.height / 2);
    return;
  }
  const Axis axis = spec.log ? log_axis(min_positive, max) : linear_axis(max);
  // Horizontal grid and the y tick labels.
  for (double t : axis.ticks) {
    const double y = axis.y(p, t);
    fmt::format_to(std::back_inserter(out),
                   "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
                   "<text class=\"tick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}{}</text>\n",
                   Plot::kLeft, Plot::kRight, y, y, Plot::kLeft - 6, y + 4, short_number(t), spec.unit);
  }
  // Time ticks at round times.
  const double plot_w = Plot::kRight - Plot::kLeft;
  const int64_t span = series.width_ns * static_cast<int64_t>(n);
  int64_t step = kTimeSteps[std::size(kTimeSteps) - 1];
  for (int64_t s : kTimeSteps) {
    if (span / s <= 7) {
      step = s;
      break;
    }
  }
  while (span / step > 7) step *= 2;
  auto x_of_time = [&](int64_t t) {
    return Plot::kLeft + static_cast<double>(t - series.start_ns) / static_cast<double>(span) * plot_w;
  };
  for (int64_t t = (series.start_ns / step + 1) * step; t < series.start_ns + span; t += step) {
    const double x = x_of_time(t);
    fmt::format_to(std::back_inserter(out),
                   "<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\"/>"
                   "<text class=\"tick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                   x, x, Plot::kTop, p.bottom(), x, p.bottom() + 18, clock_label(t, step));
  }
  fmt::format_to(std::back_inserter(out), "<line class=\"axis\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\n",
                 Plot::kLeft, Plot::kRight, p.bottom(), p.bottom());
  // The lines: a path with a point per bucket, broken where a bucket has no
  // value; a point alone between gaps gets a dot as well.
  const double col = plot_w / static_cast<double>(n);
  for (const Line& l : lines) {
    std::string d, dots;
    size_t drawn = 0;
    bool open = false;
    for (size_t i = 0; i < n; ++i) {
      if (!l.values[i]) {
        open = false;
        continue;
      }
      const double x = Plot::kLeft + (static_cast<double>(i) + 0.5) * col;
      const double y = axis.y(p, *l.values[i]);
      fmt::format_to(std::back_inserter(d), "{}{:.1f},{:.1f}", open ? 'L' : 'M', x, y);
      if (!open && (i + 1 >= n || !l.values[i + 1])) {
        fmt::format_to(std::back_inserter(dots), "<circle class=\"dot {}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\"/>",
                       l.klass, x, y);
      }
      open = true;
      ++drawn;
    }
    fmt::format_to(std::back_inserter(out),
                   "<path class=\"line {}\" data-series=\"{}\" data-points=\"{}\" d=\"{}\"/>\n", l.klass, l.name, drawn,
                   d);
    if (!dots.empty()) out += "<g>" + dots + "</g>\n";
  }
  // Hover columns on top, for the buckets where something happened.
  out += "<g class=\"hits\">\n";
  for (size_t i = 0; i < n; ++i) {
    const StatementTimeline::Bucket& b = series.buckets[i];
    if (b.statements == 0) continue;
    fmt::format_to(std::back_inserter(out),
                   "<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" data-n=\"{}\" data-e=\"{}\" "
                   "data-k=\"{}\"><title>",
                   Plot::kLeft + static_cast<double>(i) * col, Plot::kTop, col, p.bottom() - Plot::kTop, b.statements,
                   b.errors, b.latency.count());
    put_text(out, tips[i]);
    out += "</title></rect>\n";
  }
  out += "</g>\n</svg>\n";
}

// ---------------------------------------------------------------------------
// Tables.

void put_table_head(std::string& out, std::string_view id, std::initializer_list<Column> cols,
                    std::string_view sorted_key) {
  fmt::format_to(std::back_inserter(out), "<table id=\"{}\" class=\"sortable\">\n<thead><tr>", id);
  for (const Column& c : cols) {
    fmt::format_to(std::back_inserter(out), "<th data-key=\"{}\"{}{}>{}</th>", c.key, c.numeric ? " class=\"num\"" : "",
                   c.key == sorted_key ? " aria-sort=\"descending\"" : "", c.title);
  }
  out += "</tr></thead>\n<tbody>\n";
}

void put_num(std::string& out, uint64_t n) {
  fmt::format_to(std::back_inserter(out), "<td class=\"num\" data-v=\"{}\">{}</td>", n, grouped(n));
}

void put_ms(std::string& out, std::optional<int64_t> ns) {
  if (!ns) {
    out += "<td class=\"num\" data-v=\"-1\">–</td>";
    return;
  }
  fmt::format_to(std::back_inserter(out), "<td class=\"num\" data-v=\"{:.3f}\">{:.3f}</td>", ms(*ns), ms(*ns));
}

// Names of the SQLSTATEs seen most, and of the classes (the first two
// characters), from PostgreSQL's documentation (Appendix A).
std::string_view sqlstate_name(std::string_view code) {
  static constexpr std::pair<std::string_view, std::string_view> kCodes[] = {
      {"08006", "connection_failure"},
      {"0A000", "feature_not_supported"},
      {"22001", "string_data_right_truncation"},
      {"22003", "numeric_value_out_of_range"},
      {"22007", "invalid_datetime_format"},
      {"22008", "datetime_field_overflow"},
      {"22012", "division_by_zero"},
      {"22P02", "invalid_text_representation"},
      {"23502", "not_null_violation"},
      {"23503", "foreign_key_violation"},
      {"23505", "unique_violation"},
      {"23514", "check_violation"},
      {"25001", "active_sql_transaction"},
      {"25P01", "no_active_sql_transaction"},
      {"25P02", "in_failed_sql_transaction"},
      {"26000", "invalid_sql_statement_name"},
      {"28000", "invalid_authorization_specification"},
      {"28P01", "invalid_password"},
      {"2BP01", "dependent_objects_still_exist"},
      {"34000", "invalid_cursor_name"},
      {"3D000", "invalid_catalog_name"},
      {"3F000", "invalid_schema_name"},
      {"40001", "serialization_failure"},
      {"40P01", "deadlock_detected"},
      {"42501", "insufficient_privilege"},
      {"42601", "syntax_error"},
      {"42703", "undefined_column"},
      {"42804", "datatype_mismatch"},
      {"42883", "undefined_function"},
      {"42P01", "undefined_table"},
      {"42P02", "undefined_parameter"},
      {"42P07", "duplicate_table"},
      {"53100", "disk_full"},
      {"53200", "out_of_memory"},
      {"53300", "too_many_connections"},
      {"55P03", "lock_not_available"},
      {"57014", "query_canceled"},
      {"57P01", "admin_shutdown"},
      {"57P03", "cannot_connect_now"},
      {"XX000", "internal_error"},
  };
  static constexpr std::pair<std::string_view, std::string_view> kClasses[] = {
      {"08", "connection exception"},
      {"0A", "feature not supported"},
      {"21", "cardinality violation"},
      {"22", "data exception"},
      {"23", "integrity constraint violation"},
      {"24", "invalid cursor state"},
      {"25", "invalid transaction state"},
      {"26", "invalid SQL statement name"},
      {"28", "invalid authorization specification"},
      {"2B", "dependent privilege descriptors still exist"},
      {"34", "invalid cursor name"},
      {"38", "external routine exception"},
      {"39", "external routine invocation exception"},
      {"3D", "invalid catalog name"},
      {"3F", "invalid schema name"},
      {"40", "transaction rollback"},
      {"42", "syntax error or access rule violation"},
      {"44", "WITH CHECK OPTION violation"},
      {"53", "insufficient resources"},
      {"54", "program limit exceeded"},
      {"55", "object not in prerequisite state"},
      {"57", "operator intervention"},
      {"58", "system error"},
      {"72", "snapshot failure"},
      {"F0", "configuration file error"},
      {"HV", "foreign data wrapper error"},
      {"P0", "PL/pgSQL error"},
      {"XX", "internal error"},
  };
  for (const auto& [k, name] : kCodes) {
    if (k == code) return name;
  }
  for (const auto& [k, name] : kClasses) {
    if (code.substr(0, 2) == k) return name;
  }
  return "";
}

void put_card(std::string& out, std::string_view label, std::string_view key, std::string_view value,
              std::string_view display, bool err) {
  fmt::format_to(std::back_inserter(out),
                 "<div class=\"card\"><span class=\"label\">{}</span><span class=\"value{}\" data-key=\"{}\" "
                 "data-v=\"{}\">{}</span></div>\n",
                 label, err ? " err" : "", key, value, display);
}

std::string begin_page(const PageHead& head) {
  std::string out;
  out.reserve(256 << 10);
  std::string inputs;
  for (const std::string& f : head.inputs) inputs += (inputs.empty() ? "" : ", ") + f;
  std::string style(kStyle);
  style += head.extra_style;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  fmt::format_to(std::back_inserter(out),
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src {}; "
                 "style-src {}; base-uri 'none'; form-action 'none'\">\n",
                 csp_hash(kScript), csp_hash(style));
  fmt::format_to(
      std::back_inserter(out),
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} report: ", head.tool);
  put_text(out, inputs);
  out += "</title>\n<style>";
  out += style;
  fmt::format_to(std::back_inserter(out), "</style>\n</head>\n<body>\n<header><h1>{} report</h1><p>", head.tool);
  put_text(out, inputs);
  fmt::format_to(std::back_inserter(out), " · {} {}</p></header>\n<main>\n", head.tool, kVersion);
  return out;
}

void end_page(std::string& out, std::string_view footer) {
  out += "</main>\n<footer>";
  out += footer;
  out += "</footer>\n<script>";
  out += kScript;
  out += "</script>\n</body>\n</html>\n";
}

}  // namespace pgtools::html
