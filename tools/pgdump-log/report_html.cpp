// pgdump-log --report-html: the Report as one self-contained HTML page
// (tools/common/html_page.hpp: SVG charts drawn here, one inline script that
// sorts the tables, a Content-Security-Policy that allows only it and the
// style). The figures in it are exactly the ones --stats prints: the same
// Report, the same formatting.
#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "html_page.hpp"
#include "pgwire/normalize.hpp"
#include "pgwire/version.hpp"
#include "report.hpp"

namespace pgdump {

using namespace pgwire;
using namespace pgtools::html;

namespace {

// Rows of the SQLSTATE and session tables at most (the rest in one row), so
// that the page stays small whatever the capture holds.
constexpr size_t kMaxTableRows = 100;

std::string bucket_tip(const StatementTimeline::Series& s, size_t i) {
  const StatementTimeline::Bucket& b = s.buckets[i];
  const int64_t from = s.start_ns + s.width_ns * static_cast<int64_t>(i);
  const double secs = static_cast<double>(s.width_ns) / 1e9;
  std::string tip = fmt::format("{} – {} UTC\n{} statements ({}/s), {} errors ({}/s)", clock_label(from, kUs),
                                clock_label(from + s.width_ns, kUs), grouped(b.statements),
                                short_number(static_cast<double>(b.statements) / secs), grouped(b.errors),
                                short_number(static_cast<double>(b.errors) / secs));
  const LatencyHistogram& h = b.latency;
  if (h.count() > 0) {
    tip += fmt::format("\np50 {:.3f} ms, p95 {:.3f} ms, p99 {:.3f} ms, max {:.3f} ms ({} with a known duration)",
                       ms(h.percentile_ns(50)), ms(h.percentile_ns(95)), ms(h.percentile_ns(99)), ms(h.max_ns()),
                       grouped(h.count()));
  }
  return tip;
}

}  // namespace

std::string Report::html(const HtmlOptions& opts) const {
  std::string out = begin_page({"pgdump-log", opts.inputs, ""});

  // --- Overview: the totals, the same numbers as --stats.
  uint64_t events = 0, executed = 0;
  for (const auto& [k, n] : by_kind_) events += n;
  for (const auto& [k, n] : by_outcome_) executed += k == statement_outcome_name(Outcome::kNotExecuted) ? 0 : n;
  const auto outcome = [&](Outcome o) {
    auto it = by_outcome_.find(statement_outcome_name(o));
    return it == by_outcome_.end() ? uint64_t{0} : it->second;
  };
  const LatencyHistogram& all = statements_.overall();
  const int64_t span = last_ns_ - first_ns_;
  out += "<section id=\"overview\">\n<h2>Overview</h2>\n<p class=\"note\" id=\"span\">";
  if (sessions_ > 0) {
    fmt::format_to(std::back_inserter(out), "From <time>{}</time> to <time>{}</time> ({}).", iso(first_ns_),
                   iso(last_ns_), span_text(span));
  } else {
    out += "No sessions in the capture.";
  }
  out += "</p>\n<div class=\"cards\">\n";
  put_card(out, "Span", "span_s", fmt::format("{:.6f}", static_cast<double>(span) / 1e9), span_text(span));
  put_card(out, "Sessions", "sessions", std::to_string(sessions_), grouped(sessions_));
  put_card(out, "Statements", "statements", std::to_string(events), grouped(events));
  put_card(out, "Executed", "executed", std::to_string(executed), grouped(executed));
  put_card(out, "Errors", "errors", std::to_string(outcome(Outcome::kError)), grouped(outcome(Outcome::kError)),
           outcome(Outcome::kError) > 0);
  put_card(out, "Distinct statements", "distinct", std::to_string(statements_.distinct()),
           grouped(statements_.distinct()));
  put_card(out, "Known durations", "latency_count", std::to_string(all.count()), grouped(all.count()));
  for (auto [label, key, p] : {std::tuple{"p50", "p50_ms", 50.0}, std::tuple{"p95", "p95_ms", 95.0},
                               std::tuple{"p99", "p99_ms", 99.0}, std::tuple{"max", "max_ms", 100.0}}) {
    if (all.count() == 0) {
      put_card(out, fmt::format("Latency {}", label), key, "", "–");
      continue;
    }
    const int64_t ns = p == 100.0 ? all.max_ns() : all.percentile_ns(p);
    const std::string v = fmt::format("{:.3f}", ms(ns));
    put_card(out, fmt::format("Latency {}", label), key, v, v + " ms");
  }
  out += "</div>\n<p class=\"note\">By kind: ";
  bool first = true;
  for (const auto& [k, n] : by_kind_) {
    fmt::format_to(std::back_inserter(out), "{}<span data-kind=\"{}\">{} {}</span>", first ? "" : ", ", k, k,
                   grouped(n));
    first = false;
  }
  out += ". By outcome: ";
  first = true;
  for (const auto& [k, n] : by_outcome_) {
    fmt::format_to(std::back_inserter(out), "{}<span data-outcome=\"{}\">{} {}</span>", first ? "" : ", ", k, k,
                   grouped(n));
    first = false;
  }
  out += ". Statements the server skipped after an earlier error (not_executed) are counted, not timed.</p>\n";
  out += "</section>\n";

  // --- Charts.
  const StatementTimeline::Series series = timeline_.series(opts.max_points);
  const size_t n = series.buckets.size();
  const double secs = static_cast<double>(series.width_ns) / 1e9;
  std::vector<std::string> tips;
  tips.reserve(n);
  for (size_t i = 0; i < n; ++i) tips.push_back(bucket_tip(series, i));
  Line rate{"statements/s", "statements", {}}, error_rate{"errors/s", "errors", {}};
  Line p50{"p50", "p50", {}}, p95{"p95", "p95", {}}, p99{"p99", "p99", {}};
  for (const auto& b : series.buckets) {
    rate.values.emplace_back(static_cast<double>(b.statements) / secs);
    error_rate.values.emplace_back(static_cast<double>(b.errors) / secs);
    const bool known = b.latency.count() > 0;
    p50.values.push_back(known ? std::optional(ms(b.latency.percentile_ns(50))) : std::nullopt);
    p95.values.push_back(known ? std::optional(ms(b.latency.percentile_ns(95))) : std::nullopt);
    p99.values.push_back(known ? std::optional(ms(b.latency.percentile_ns(99))) : std::nullopt);
  }
  const std::string every = fmt::format(
      "Each point is {} of traffic ({} points; the width is chosen from the capture's span, at most {} points); "
      "times are UTC, statements count at the time they were sent.",
      duration_text(series.width_ns), n, opts.max_points);
  out += "<section id=\"throughput\">\n<h2>Statements and errors per second</h2>\n";
  out += "<div class=\"legend\"><span class=\"statements\">statements/s</span></div>\n";
  put_chart(out, {"chart-statements", "", 240, false}, series, {rate}, tips);
  out += "<div class=\"legend\"><span class=\"errors\">errors/s</span></div>\n";
  put_chart(out, {"chart-errors", "", 150, false}, series, {error_rate}, tips);
  out += "<p class=\"note\">" + every + "</p>\n</section>\n";
  out += "<section id=\"latency\">\n<h2>Latency percentiles</h2>\n";
  out +=
      "<div class=\"legend\"><span class=\"p50\">p50</span><span class=\"p95\">p95</span>"
      "<span class=\"p99\">p99</span></div>\n";
  put_chart(out, {"chart-latency", " ms", 260, true}, series, {p50, p95, p99}, tips);
  out += "<p class=\"note\">";
  out += all.count() > 0 ? "Milliseconds, logarithmic scale, from the request to its response; gaps where no "
                           "statement with a known duration started."
                         : "No durations are known: the capture has no backend frames.";
  out += "</p>\n</section>\n";

  // --- Statements: the most total time, then the most frequent.
  std::vector<const StatementAggregate*> rows = statements_.top_by_time(opts.statements);
  {
    std::set<const StatementAggregate*> seen(rows.begin(), rows.end());
    for (const StatementAggregate* a : statements_.top_by_count(opts.statements)) {
      if (seen.insert(a).second) rows.push_back(a);
    }
  }
  out += "<section id=\"statements\">\n<h2>Top statements</h2>\n<div class=\"tablewrap\">\n";
  put_table_head(out, "top-statements",
                 {{"statement", "Statement (normalized)", false},
                  {"count", "Count"},
                  {"errors", "Errors"},
                  {"total", "Total ms"},
                  {"mean", "Mean ms"},
                  {"p50", "p50 ms"},
                  {"p95", "p95 ms"},
                  {"p99", "p99 ms"},
                  {"max", "Max ms"},
                  {"rows", "Rows"}},
                 "total");
  for (const StatementAggregate* a : rows) {
    const LatencyHistogram& h = a->latency;
    const bool known = h.count() > 0;
    fmt::format_to(std::back_inserter(out), "<tr data-fingerprint=\"{}\"><td class=\"sql\"><code>",
                   a->fingerprint != 0 ? fingerprint_hex(a->fingerprint) : "other");
    put_text(out, a->text.size() > 2048 ? a->text.substr(0, 2048) + "…" : a->text);
    out += "</code>";
    if (auto it = examples_.find(a); it != examples_.end()) {
      out += "<details><summary>";
      out += it->second.duration_ns >= 0 ? "slowest execution" : "an execution";
      out += "</summary><code>";
      put_text(out, it->second.line);
      out += "</code></details>";
    }
    out += "</td>";
    put_num(out, a->count);
    put_num(out, a->errors);
    auto opt = [&](int64_t v) { return known ? std::optional(v) : std::nullopt; };
    put_ms(out, opt(h.sum_ns()));
    put_ms(out, opt(known ? h.sum_ns() / static_cast<int64_t>(h.count()) : 0));
    put_ms(out, opt(h.percentile_ns(50)));
    put_ms(out, opt(h.percentile_ns(95)));
    put_ms(out, opt(h.percentile_ns(99)));
    put_ms(out, opt(h.max_ns()));
    put_num(out, a->rows);
    out += "</tr>\n";
  }
  out += "</tbody></table>\n</div>\n";
  fmt::format_to(std::back_inserter(out),
                 "<p class=\"note\">{} of {} distinct statements: the {} with the most total time and the {} most "
                 "frequent. Click a column to sort. Literals and parameters are replaced by ? (docs/fingerprints.md); "
                 "the examples are lines of the SQL log, parameters included.</p>\n</section>\n",
                 rows.size(), statements_.distinct(), opts.statements, opts.statements);

  // --- Errors by SQLSTATE.
  std::vector<std::pair<std::string, uint64_t>> codes(by_sqlstate_.begin(), by_sqlstate_.end());
  std::stable_sort(codes.begin(), codes.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  out += "<section id=\"errors-section\">\n<h2>Errors by SQLSTATE</h2>\n";
  put_table_head(out, "errors",
                 {{"sqlstate", "SQLSTATE", false},
                  {"name", "Condition", false},
                  {"count", "Count"},
                  {"message", "Example", false}},
                 "count");
  uint64_t other_errors = 0;
  for (size_t i = kMaxTableRows; i < codes.size(); ++i) other_errors += codes[i].second;
  if (codes.size() > kMaxTableRows) codes.resize(kMaxTableRows);
  for (const auto& [code, count] : codes) {
    out += "<tr data-sqlstate=\"";
    put_text(out, code);
    out += "\"><td><code>";
    put_text(out, code);
    out += "</code></td><td>";
    put_text(out, sqlstate_name(code));
    out += "</td>";
    put_num(out, count);
    out += "<td class=\"sql\">";
    if (auto it = error_examples_.find(code); it != error_examples_.end()) {
      out += "<code>";
      put_text(out, it->second.message);
      out += "</code><details><summary>statement</summary><code>";
      put_text(out, it->second.line);
      out += "</code></details>";
    }
    out += "</td></tr>\n";
  }
  if (other_errors > 0) {
    fmt::format_to(std::back_inserter(out), "<tr data-rest=\"{}\"><td>(the other {})</td><td></td>",
                   by_sqlstate_.size() - kMaxTableRows, by_sqlstate_.size() - kMaxTableRows);
    put_num(out, other_errors);
    out += "<td></td></tr>\n";
  }
  out += "</tbody></table>\n";
  if (codes.empty()) out += "<p class=\"note\">No errors.</p>\n";
  out += "</section>\n";

  // --- Sessions.
  out += "<section id=\"sessions\">\n<h2>Sessions</h2>\n<div class=\"grid2\">\n";
  uint64_t closed = 0;
  for (const auto& [k, g] : by_user_) closed += g.sessions;
  auto groups = [&](std::string_view id, std::string_view title, const std::map<std::string, Group>& map) {
    fmt::format_to(std::back_inserter(out), "<div>\n<h3>By {}</h3>\n", title);
    put_table_head(out, id, {{"name", title, false}, {"sessions", "Sessions"}, {"share", "Share"}, {"time", "Total s"}},
                   "sessions");
    std::vector<std::pair<std::string, Group>> v(map.begin(), map.end());
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.second.sessions > b.second.sessions; });
    // Past kMaxTableRows (a client address per session, say), one row sums the rest.
    if (v.size() > kMaxTableRows) {
      Group rest;
      for (size_t i = kMaxTableRows; i < v.size(); ++i) {
        rest.sessions += v[i].second.sessions;
        rest.total_ns += v[i].second.total_ns;
      }
      const size_t others = v.size() - kMaxTableRows;
      v.resize(kMaxTableRows);
      v.emplace_back(fmt::format("(the other {})", others), rest);
    }
    for (const auto& [k, g] : v) {
      out += "<tr><td>";
      put_text(out, k);
      out += "</td>";
      put_num(out, g.sessions);
      const double share = closed > 0 ? 100.0 * static_cast<double>(g.sessions) / static_cast<double>(closed) : 0;
      fmt::format_to(std::back_inserter(out), "<td class=\"num\" data-v=\"{:.2f}\">{:.1f}%</td>", share, share);
      fmt::format_to(std::back_inserter(out), "<td class=\"num\" data-v=\"{:.6f}\">{:.3f}</td></tr>\n",
                     static_cast<double>(g.total_ns) / 1e9, static_cast<double>(g.total_ns) / 1e9);
    }
    out += "</tbody></table>\n</div>\n";
  };
  groups("sessions-by-user", "user", by_user_);
  groups("sessions-by-database", "database", by_database_);
  groups("sessions-by-application", "application", by_application_);
  groups("sessions-by-client", "client", by_client_);
  if (!(by_tls_.size() == 1 && by_tls_.begin()->first == "plaintext | plaintext") && !by_tls_.empty()) {
    groups("sessions-by-tls", "TLS (client leg | server leg)", by_tls_);
  }
  out += "</div>\n";
  fmt::format_to(std::back_inserter(out),
                 "<p class=\"note\">Sessions ended in the capture (or at its end): {}; time is their total duration. "
                 "Median session {:.3f} ms, longest {:.3f} ms.</p>\n</section>\n",
                 grouped(closed), ms(session_durations_.percentile_ns(50)), ms(session_durations_.max_ns()));

  end_page(out, fmt::format("Generated by pgdump-log {} in the same pass as --stats, whose figures these are. "
                            "Self-contained: nothing is fetched.",
                            kVersion));
  return out;
}

}  // namespace pgdump