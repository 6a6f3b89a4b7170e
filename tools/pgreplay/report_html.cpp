// pgreplay --report-html: the replay beside the capture as one self-contained
// HTML page (tools/common/html_page.hpp, the page pgdump-log --report-html
// draws too). Its figures are the Report's, gathered while replaying: nothing
// is read twice, and every part is bounded (the lag chart by the timeline's
// buckets, the tables by kMaxTableRows and --max-divergences), so a day of
// traffic makes a page of at most a few MB.
#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "html_page.hpp"
#include "pgwire/normalize.hpp"
#include "report.hpp"

namespace pgreplay {

using namespace pgtools::html;
using pgwire::LatencyHistogram;
using pgwire::StatementAggregate;
using pgwire::StatementTimeline;

namespace {

// Rows of the error, failure and divergences-by-statement tables at most (the
// rest in one row).
constexpr size_t kMaxTableRows = 100;

// The lag lines' colours and the ratio cells', after the shared style.
constexpr std::string_view kExtraStyle = R"(
:root{--max:#7a4cc2}
.legend .max{color:var(--max)}svg .line.max{stroke:var(--max)}svg .dot.max{fill:var(--max)}
td.slower{color:var(--err);font-weight:600}td.faster{color:var(--p50);font-weight:600}
td.outcome code{white-space:pre-wrap;word-break:break-word}
#statement-latency th{white-space:normal;vertical-align:bottom}#statement-latency td.sql{min-width:260px}
p.err{color:var(--err);font-weight:600}
)";

std::string lag_tip(const StatementTimeline::Series& s, size_t i) {
  const StatementTimeline::Bucket& b = s.buckets[i];
  const int64_t from = s.start_ns + s.width_ns * static_cast<int64_t>(i);
  std::string tip = fmt::format("{} – {} UTC (capture time)\n{} frames sent", clock_label(from, kUs),
                                clock_label(from + s.width_ns, kUs), grouped(b.statements));
  const LatencyHistogram& h = b.latency;
  if (h.count() > 0) {
    tip += fmt::format("\nlag p50 {:.3f} ms, p99 {:.3f} ms, max {:.3f} ms", ms(h.percentile_ns(50)),
                       ms(h.percentile_ns(99)), ms(h.max_ns()));
  }
  return tip;
}

// replayed / captured, in a cell: "1.25×", marked when the replay is clearly
// slower or faster; "–" when either is unknown.
void put_ratio(std::string& out, std::optional<int64_t> captured, std::optional<int64_t> replayed) {
  if (!captured || !replayed || *captured <= 0) {
    out += "<td class=\"num ratio\" data-v=\"-1\">–</td>";
    return;
  }
  const double r = static_cast<double>(*replayed) / static_cast<double>(*captured);
  const char* mark = r >= 1.25 ? " slower" : r <= 0.8 ? " faster" : "";
  fmt::format_to(std::back_inserter(out), "<td class=\"num ratio{}\" data-v=\"{:.3f}\">{:.2f}×</td>", mark, r, r);
}

// A histogram's figure when it has samples.
std::optional<int64_t> figure(const StatementAggregate* a, double p) {
  if (a == nullptr || a->latency.count() == 0) return std::nullopt;
  if (p == 0) return a->latency.sum_ns();
  return a->latency.percentile_ns(p);
}

void put_code(std::string& out, std::string_view text) {
  out += "<code>";
  put_text(out, text.size() > 2048 ? std::string(text.substr(0, 2048)) + "…" : text);
  out += "</code>";
}

}  // namespace

std::string Report::html(const HtmlOptions& opts) const {
  std::string out = begin_page({"pgreplay", opts.inputs, kExtraStyle});

  // --- Overview: the figures of the text report.
  const std::string speed = opts_.speed_max ? std::string("max") : fmt::format("{:g}", opts_.speed);
  out += "<section id=\"overview\">\n<h2>Overview</h2>\n";
  if (interrupted_) {
    out += "<p class=\"err\" id=\"stopped\">Stopped early: ";
    put_text(out, stopped_why_);
    out += "</p>\n";
  }
  fmt::format_to(std::back_inserter(out),
                 "<p class=\"note\">Replayed in {} at speed {}; the capture spans {}. Exit code {}.</p>\n",
                 span_text(run_ns_), speed, span_text(capture_span_ns_), exit_code());
  out += "<div class=\"cards\">\n";
  put_card(out, "Run time", "run_s", fmt::format("{:.6f}", static_cast<double>(run_ns_) / 1e9), span_text(run_ns_));
  put_card(out, "Capture span", "capture_span_s", fmt::format("{:.6f}", static_cast<double>(capture_span_ns_) / 1e9),
           span_text(capture_span_ns_));
  put_card(out, "Speed", "speed", speed, speed);
  put_card(out, "Sessions ok", "sessions_ok", std::to_string(sessions_ok_), grouped(sessions_ok_));
  put_card(out, "Sessions failed", "sessions_failed", std::to_string(sessions_failed_), grouped(sessions_failed_),
           sessions_failed_ > 0);
  put_card(out, "Sessions skipped", "sessions_skipped", std::to_string(sessions_skipped_), grouped(sessions_skipped_));
  put_card(out, "Statements replayed", "statements", std::to_string(statements_), grouped(statements_));
  put_card(out, "Errors", "errors", std::to_string(st_error_), grouped(st_error_), st_error_ > 0);
  if (opts_.compare) {
    put_card(out, "Compared", "compared", std::to_string(compared_), grouped(compared_));
    put_card(out, "Divergences", "divergences", std::to_string(divergences_), grouped(divergences_), divergences_ > 0);
  }
  auto latency_card = [&](std::string_view label, std::string_view key, const LatencyHistogram& h, double p) {
    if (h.count() == 0) {
      put_card(out, label, key, "", "–");
      return;
    }
    const std::string v = fmt::format("{:.3f}", ms(p == 100 ? h.max_ns() : h.percentile_ns(p)));
    put_card(out, label, key, v, v + " ms");
  };
  latency_card("Captured p50", "captured_p50_ms", captured_stats_.overall(), 50);
  latency_card("Replayed p50", "replayed_p50_ms", stats_.overall(), 50);
  latency_card("Captured p99", "captured_p99_ms", captured_stats_.overall(), 99);
  latency_card("Replayed p99", "replayed_p99_ms", stats_.overall(), 99);
  latency_card("Lag p99", "lag_p99_ms", lag_, 99);
  latency_card("Lag max", "lag_max_ms", lag_, 100);
  out += "</div>\n</section>\n";

  // --- Lag behind schedule over the capture's time.
  const StatementTimeline::Series series = lag_timeline_.series(opts.max_points);
  const size_t n = series.buckets.size();
  std::vector<std::string> tips;
  tips.reserve(n);
  for (size_t i = 0; i < n; ++i) tips.push_back(lag_tip(series, i));
  Line p50{"p50", "p50", {}}, p99{"p99", "p99", {}}, max{"max", "max", {}};
  for (const auto& b : series.buckets) {
    const bool known = b.latency.count() > 0;
    p50.values.push_back(known ? std::optional(ms(b.latency.percentile_ns(50))) : std::nullopt);
    p99.values.push_back(known ? std::optional(ms(b.latency.percentile_ns(99))) : std::nullopt);
    max.values.push_back(known ? std::optional(ms(b.latency.max_ns())) : std::nullopt);
  }
  out += "<section id=\"lag\">\n<h2>Lag behind schedule</h2>\n";
  out +=
      "<div class=\"legend\"><span class=\"p50\">p50</span><span class=\"p99\">p99</span>"
      "<span class=\"max\">max</span></div>\n";
  put_chart(out, {"chart-lag", " ms", 260, false}, series, {p50, p99, max}, tips);
  out += "<p class=\"note\">";
  if (opts_.speed_max) {
    out += "At --speed max there is no schedule: every frame is sent as soon as its session may send it.";
  } else {
    fmt::format_to(std::back_inserter(out),
                   "How late each session's frames were sent after their time on the schedule (the capture's clock, "
                   "at speed {}), in ms: p50, p99 and max of the frames captured in each bucket. Each point is {} of "
                   "the capture's time ({} points, at most {}); times are the capture's, UTC. A frame waits for the "
                   "answers the capture says came before it, so a slower server shows as lag.",
                   speed, duration_text(series.width_ns), n, opts.max_points);
  }
  out += "</p>\n</section>\n";

  // --- Latency per normalized statement: the capture's beside the replay's.
  std::vector<const StatementAggregate*> rows = stats_.top_by_time(opts.statements);
  std::set<std::string> seen;
  for (const StatementAggregate* a : rows) seen.insert(a->text);
  for (const StatementAggregate* a : captured_stats_.top_by_time(opts.statements)) {
    if (seen.insert(a->text).second) rows.push_back(a);  // the capture's: looked up below like the others
  }
  out +=
      "<section id=\"statements\">\n<h2>Latency by statement, captured and replayed</h2>\n<div class=\"tablewrap\">\n";
  put_table_head(out, "statement-latency",
                 {{"statement", "Statement (normalized)", false},
                  {"calls_captured", "Calls captured"},
                  {"calls_replayed", "Calls replayed"},
                  {"errors_replayed", "Errors replayed"},
                  {"p50_captured", "p50 ms captured"},
                  {"p50_replayed", "p50 ms replayed"},
                  {"p50_ratio", "p50 ratio"},
                  {"p99_captured", "p99 ms captured"},
                  {"p99_replayed", "p99 ms replayed"},
                  {"p99_ratio", "p99 ratio"},
                  {"total_captured", "Total ms captured"},
                  {"total_replayed", "Total ms replayed"},
                  {"total_ratio", "Total ratio"}},
                 "total_replayed");
  for (const StatementAggregate* row : rows) {
    const StatementAggregate* r = stats_.find(row->text);
    const StatementAggregate* c = captured_stats_.find(row->text);
    fmt::format_to(std::back_inserter(out), "<tr data-fingerprint=\"{}\"><td class=\"sql\">",
                   row->fingerprint != 0 ? pgwire::fingerprint_hex(row->fingerprint) : "other");
    put_code(out, row->text);
    out += "</td>";
    put_num(out, c ? c->count : 0);
    put_num(out, r ? r->count : 0);
    put_num(out, r ? r->errors : 0);
    for (double p : {50.0, 99.0, 0.0}) {
      const std::optional<int64_t> cv = figure(c, p), rv = figure(r, p);
      put_ms(out, cv);
      put_ms(out, rv);
      put_ratio(out, cv, rv);
    }
    out += "</tr>\n";
  }
  out += "</tbody></table>\n</div>\n";
  fmt::format_to(std::back_inserter(out),
                 "<p class=\"note\">{} statements: the {} with the most total time in the replay and those of the {} "
                 "with the most in the capture not among them ({} distinct replayed, {} captured). Ratio: replayed / "
                 "captured, marked from 1.25× slower and 0.8× faster. Captured durations are known only when the "
                 "capture has backend frames (pgproxy --capture-backend). Literals and parameters are replaced by ? "
                 "(docs/fingerprints.md). Click a column to sort.</p>\n</section>\n",
                 rows.size(), opts.statements, opts.statements, stats_.distinct(), captured_stats_.distinct());

  // --- Divergences.
  if (opts_.compare) {
    out += "<section id=\"divergences\">\n<h2>Divergences</h2>\n";
    if (compare_impossible()) {
      out +=
          "<p class=\"err\">Compare impossible: the capture holds no backend frames (record with pgproxy "
          "--capture-backend).</p>\n";
    }
    fmt::format_to(std::back_inserter(out),
                   "<p class=\"note\" id=\"compare-summary\">{} statements compared, {} ignored (--ignore), {} "
                   "divergences; the first {} listed with both outcomes (--max-divergences).</p>\n",
                   grouped(compared_), grouped(compare_ignored_), grouped(divergences_), divergence_list_.size());
    out += "<div class=\"tablewrap\">\n";
    put_table_head(out, "divergence-list",
                   {{"n", "#"},
                    {"session", "Session"},
                    {"index", "Statement #"},
                    {"what", "What differs", false},
                    {"sql", "Statement", false},
                    {"captured", "Captured outcome", false},
                    {"replayed", "Replayed outcome", false}},
                   "");
    for (size_t i = 0; i < divergence_list_.size(); ++i) {
      const Divergence& d = divergence_list_[i];
      fmt::format_to(std::back_inserter(out), "<tr data-session=\"{}\">", d.who.id);
      put_num(out, i + 1);
      put_num(out, d.who.id);
      put_num(out, d.index + 1);
      out += "<td>";
      put_text(out, d.what);
      out += "</td><td class=\"sql\">";
      put_code(out, d.sql);
      if (!d.params.empty()) {
        out += "<details open><summary>parameters</summary><code>";
        put_text(out, format_params(d.params));
        out += "</code></details>";
      }
      out += "</td><td class=\"outcome\" data-side=\"captured\">";
      put_code(out, d.captured);
      out += "</td><td class=\"outcome\" data-side=\"replayed\">";
      put_code(out, d.replayed);
      out += "</td></tr>\n";
    }
    out += "</tbody></table>\n</div>\n";
    if (divergences_ > divergence_list_.size()) {
      fmt::format_to(std::back_inserter(out), "<p class=\"note\">… and {} more, counted by statement below.</p>\n",
                     grouped(divergences_ - divergence_list_.size()));
    }

    std::vector<std::pair<std::string, const DivergenceGroup*>> groups;
    groups.reserve(divergence_by_statement_.size());
    for (const auto& [text, g] : divergence_by_statement_) groups.emplace_back(text, &g);
    std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) {
      return a.second->count != b.second->count ? a.second->count > b.second->count : a.first < b.first;
    });
    out += "<h3>By statement</h3>\n<div class=\"tablewrap\">\n";
    put_table_head(out, "divergence-statements",
                   {{"statement", "Statement (normalized)", false},
                    {"count", "Divergences"},
                    {"what", "First: what differs", false},
                    {"captured", "First: captured", false},
                    {"replayed", "First: replayed", false}},
                   "count");
    uint64_t rest = 0;
    for (size_t i = kMaxTableRows; i < groups.size(); ++i) rest += groups[i].second->count;
    for (size_t i = 0; i < groups.size() && i < kMaxTableRows; ++i) {
      const auto& [text, g] = groups[i];
      out += "<tr><td class=\"sql\">";
      put_code(out, text);
      out += "</td>";
      put_num(out, g->count);
      out += "<td>";
      put_text(out, g->what);
      out += "</td><td class=\"outcome\">";
      put_code(out, g->captured);
      out += "</td><td class=\"outcome\">";
      put_code(out, g->replayed);
      out += "</td></tr>\n";
    }
    if (groups.size() > kMaxTableRows) {
      fmt::format_to(std::back_inserter(out), "<tr data-rest=\"{}\"><td>(the other {})</td>",
                     groups.size() - kMaxTableRows, groups.size() - kMaxTableRows);
      put_num(out, rest);
      out += "<td></td><td></td><td></td></tr>\n";
    }
    out += "</tbody></table>\n</div>\n</section>\n";
  }

  // --- Errors the replay got, by SQLSTATE.
  std::vector<std::pair<std::string, const ErrorCount*>> codes;
  for (const auto& [state, e] : errors_) codes.emplace_back(state, &e);
  std::stable_sort(codes.begin(), codes.end(),
                   [](const auto& a, const auto& b) { return a.second->count > b.second->count; });
  out += "<section id=\"errors-section\">\n<h2>Errors in the replay by SQLSTATE</h2>\n";
  put_table_head(out, "errors",
                 {{"sqlstate", "SQLSTATE", false},
                  {"name", "Condition", false},
                  {"count", "Count"},
                  {"also", "Also failed in the capture"},
                  {"message", "Example", false}},
                 "count");
  for (size_t i = 0; i < codes.size() && i < kMaxTableRows; ++i) {
    const auto& [code, e] = codes[i];
    out += "<tr data-sqlstate=\"";
    put_text(out, code);
    out += "\"><td><code>";
    put_text(out, code);
    out += "</code></td><td>";
    put_text(out, sqlstate_name(code));
    out += "</td>";
    put_num(out, e->count);
    fmt::format_to(std::back_inserter(out), "<td class=\"num\" data-v=\"{}\">{} of {}</td><td class=\"sql\">",
                   e->also_in_capture, grouped(e->also_in_capture), grouped(e->with_capture));
    put_code(out, e->example);
    out += "</td></tr>\n";
  }
  out += "</tbody></table>\n";
  if (codes.empty()) out += "<p class=\"note\">No errors.</p>\n";
  out +=
      "<p class=\"note\">Also failed in the capture: of the errors whose statement was matched with its captured "
      "one, how many failed there too.</p>\n</section>\n";

  // --- Sessions that failed, and what else the replay has to say.
  out += "<section id=\"sessions\">\n<h2>Failed sessions and warnings</h2>\n";
  put_table_head(
      out, "failures",
      {{"reason", "Reason", false}, {"user", "User", false}, {"database", "Database", false}, {"count", "Sessions"}},
      "count");
  size_t shown = 0;
  uint64_t more = failures_ungrouped_;
  for (const auto& [key, count] : failure_logins_) {
    if (shown++ >= kMaxTableRows) {
      more += count;
      continue;
    }
    const auto& [reason, user, database] = key;
    out += "<tr><td>";
    put_text(out, reason);
    out += "</td><td>";
    put_text(out, user);
    out += "</td><td>";
    put_text(out, database);
    out += "</td>";
    put_num(out, count);
    out += "</tr>\n";
  }
  if (more > 0) {
    out += "<tr data-rest=\"1\"><td>(the others)</td><td></td><td></td>";
    put_num(out, more);
    out += "</tr>\n";
  }
  out += "</tbody></table>\n";
  if (failure_logins_.empty() && failures_ungrouped_ == 0) out += "<p class=\"note\">No session failed.</p>\n";
  if (!damage_.empty() || !warnings_.empty()) {
    out += "<ul id=\"warnings\">\n";
    for (const std::string& d : damage_) {
      out += "<li class=\"err\">capture damaged: ";
      put_text(out, d);
      out += "</li>\n";
    }
    for (const std::string& w : warnings_) {
      out += "<li>";
      put_text(out, w);
      out += "</li>\n";
    }
    out += "</ul>\n";
  }
  out += "</section>\n";

  end_page(out, fmt::format("Generated by pgreplay {} at the end of the replay, from the figures of its text and "
                            "--report output. Self-contained: nothing is fetched.",
                            kVersion));
  return out;
}

}  // namespace pgreplay
