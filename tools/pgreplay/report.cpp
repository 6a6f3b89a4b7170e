#include "report.hpp"

#include <regex.h>

#include <algorithm>

#include <fmt/format.h>

#include "pgwire/binary_values.hpp"
#include "pgwire/bytes.hpp"
#include "pgwire/json.hpp"
#include "pgwire/normalize.hpp"
#include "pgwire/text.hpp"

namespace pgreplay {

using pgwire::Outcome;
using pgwire::StatementEvent;

namespace {

constexpr size_t kFailedExamples = 20;
constexpr size_t kMaxFailureGroups = 10000;  // distinct (reason, user, database) kept
constexpr size_t kFailureGroupsShown = 20;   // of them in the text report
constexpr size_t kMaxValueShown = 200;
constexpr size_t kMaxDivergenceGroups = 5000;  // distinct normalized statements with divergences kept

std::string ms(int64_t ns) { return fmt::format("{:.3f}", static_cast<double>(ns) / 1e6); }

std::string one_line(std::string_view s) {
  std::string out;
  pgwire::append_escaped(out, s);
  return out;
}

// A binary value decoded as the SQL log decodes it (binary_values.hpp):
// the text PostgreSQL would print, quoted like a text value and followed by
// the type's name ('42'::int4), so a divergence reads the same whatever
// format the client sent. A value not decoded (an unknown type, one the
// server would refuse, one cut by the tracker) stays hex.
std::string param_text(const pgwire::StatementParam& p) {
  if (!p.value) return "NULL";
  std::string_view v = *p.value;
  std::string out;
  std::string decoded;
  bool binary = p.format == 1;
  if (binary && p.cut_size == 0 &&
      pgwire::render_binary_value(p.type_oid, pgwire::as_bytes(v), decoded,
                                  pgwire::proportional_text_budget(v.size()) + pgwire::kTextBudgetSlack)) {
    binary = false;
    v = decoded;
  }
  if (binary) {
    out = "\\x" + pgwire::to_hex(pgwire::as_bytes(v.substr(0, kMaxValueShown / 2)));
  } else {
    out = "'";
    pgwire::append_escaped(out, v.substr(0, kMaxValueShown));
    out += "'";
  }
  if (v.size() > (binary ? kMaxValueShown / 2 : kMaxValueShown) || p.cut_size != 0) out += "...";
  if (binary && p.cut_size == 0 && pgwire::json_nested_too_deep(p.type_oid, pgwire::as_bytes(v))) {
    out += fmt::format(" (json nested deeper than {} levels, not decoded)", pgwire::kMaxJsonDepth);
  }
  if (const char* name = pgwire::type_name(p.type_oid)) {
    out += "::";
    out += name;
  } else if (p.type_oid != 0) {
    out += fmt::format("::{}", p.type_oid);
  }
  return out;
}

std::string params_text(const std::vector<pgwire::StatementParam>& params) {
  std::string out;
  for (size_t i = 0; i < params.size(); ++i) {
    if (i) out += ", ";
    out += fmt::format("${} = {}", i + 1, param_text(params[i]));
  }
  return out;
}

}  // namespace

std::string format_params(const std::vector<pgwire::StatementParam>& params) { return params_text(params); }

std::string describe_outcome(const StatementEvent& ev) {
  switch (ev.outcome) {
    case Outcome::kOk: {
      std::string s = ev.tag.empty() ? std::string("ok") : ev.tag;
      if (ev.rows) s += fmt::format(" (rows {}", *ev.rows);
      if (ev.rows_digest) s += fmt::format("{}digest {:016x}", ev.rows ? ", " : " (", ev.rows_digest);
      if (ev.rows || ev.rows_digest) s += ")";
      return s;
    }
    case Outcome::kError: return fmt::format("ERROR {} {}", ev.sqlstate, one_line(ev.error_message));
    case Outcome::kNotExecuted: return "not executed (an earlier error in its batch)";
    case Outcome::kUnknown: return "no outcome (connection ended)";
  }
  return "?";
}

struct RegexHolder {
  regex_t re{};
  ~RegexHolder() { regfree(&re); }
};

StatementFilter::StatementFilter() = default;
StatementFilter::~StatementFilter() = default;

bool StatementFilter::add(const std::string& expression, std::string* error) {
  auto holder = std::make_unique<RegexHolder>();
  int rc = regcomp(&holder->re, expression.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[256];
    regerror(rc, &holder->re, buf, sizeof(buf));
    if (error) *error = buf;
    return false;  // regcomp failed: nothing to free
  }
  compiled_.push_back(std::move(holder));
  return true;
}

bool StatementFilter::matches(const std::string& sql) const {
  for (const auto& h : compiled_)
    if (regexec(&h->re, sql.c_str(), 0, nullptr, 0) == 0) return true;
  return false;
}

Report::Report(const ReplayOptions& opts) : opts_(opts), stats_(5000), captured_stats_(5000) {
  // main.cpp checked every expression; one that fails here is left out.
  for (const std::string& re : opts.ignore) (void)ignore_.add(re, nullptr);
}

uint64_t Report::sessions_total() const { return sessions_ok_ + sessions_failed_ + sessions_skipped_; }

void Report::session_failed(const SessionLabel& who, const std::string& reason) {
  ++sessions_failed_;
  ++failure_reasons_[reason];
  auto key = std::make_tuple(reason, who.user, who.database);
  auto it = failure_logins_.find(key);
  if (it != failure_logins_.end()) {
    ++it->second;
  } else if (failure_logins_.size() < kMaxFailureGroups) {
    failure_logins_.emplace(std::move(key), 1);
  } else {
    ++failures_ungrouped_;
  }
  if (failed_examples_.size() < kFailedExamples) failed_examples_.emplace_back(who, reason);
}

void Report::session_skipped(const SessionLabel&, const std::string& reason) {
  ++sessions_skipped_;
  ++skip_reasons_[reason];
}

void Report::cancel_skipped(const SessionLabel&, const std::string& reason) {
  ++cancels_skipped_;
  ++skip_reasons_["cancel request: " + reason];
}

void Report::add_warning(std::string text) {
  if (std::find(warnings_.begin(), warnings_.end(), text) == warnings_.end()) warnings_.push_back(std::move(text));
}

void Report::frame_sent(int64_t lag_ns, int64_t dispatch_ns, bool scheduled, int64_t capture_ts) {
  ++frames_;
  if (scheduled) {
    lag_.record(std::max<int64_t>(lag_ns, 0));
    lag_timeline_.add(capture_ts, std::max<int64_t>(lag_ns, 0), false);
  }
  dispatch_.record(std::max<int64_t>(dispatch_ns, 0));
}

void Report::captured_statement(const StatementEvent& ev) {
  if (ev.outcome == Outcome::kNotExecuted) return;  // as replay_statement: counted by the server as nothing
  const int64_t d = ev.end_ns > 0 && ev.end_ns >= ev.start_ns ? ev.end_ns - ev.start_ns : -1;
  captured_stats_.add(ev.sql, d, ev.outcome == Outcome::kError, ev.rows.value_or(0));
}

void Report::replay_statement(const StatementEvent& ev) {
  ++statements_;
  switch (ev.outcome) {
    case Outcome::kOk: ++st_ok_; break;
    case Outcome::kError: {
      ++st_error_;
      ErrorCount& e = errors_[ev.sqlstate.empty() ? std::string("?????") : ev.sqlstate];
      ++e.count;
      if (e.example.empty()) e.example = ev.error_message;
      break;
    }
    case Outcome::kNotExecuted: ++st_not_executed_; break;
    case Outcome::kUnknown: ++st_unknown_; break;
  }
  if (ev.outcome != Outcome::kNotExecuted) {
    const int64_t d = ev.end_ns > 0 && ev.end_ns >= ev.start_ns ? ev.end_ns - ev.start_ns : -1;
    stats_.add(ev.sql, d, ev.outcome == Outcome::kError, ev.rows.value_or(0));
  }
}

bool Report::ignored(const std::string& sql) {
  if (ignore_.empty()) return false;
  auto it = ignore_cache_.find(sql);
  if (it != ignore_cache_.end()) return it->second;
  const bool hit = ignore_.matches(sql);
  if (ignore_cache_.size() < 100000) ignore_cache_.emplace(sql, hit);
  return hit;
}

void Report::diverged(const SessionLabel& who, uint64_t index, std::string what, const StatementEvent& captured,
                      const StatementEvent* replayed) {
  std::string captured_text = describe_outcome(captured);
  std::string replayed_text = replayed ? describe_outcome(*replayed) : "not replayed";
  count_divergence(captured.sql, what, captured_text, replayed_text);
  if (divergence_list_.size() >= opts_.max_divergences) return;
  Divergence d;
  d.who = who;
  d.index = index;
  d.what = std::move(what);
  d.sql = captured.sql;
  d.params = captured.params;
  d.captured = std::move(captured_text);
  d.replayed = std::move(replayed_text);
  divergence_list_.push_back(std::move(d));
}

void Report::count_divergence(const std::string& sql, const std::string& what, const std::string& captured,
                              const std::string& replayed) {
  ++divergences_;
  std::string key = pgwire::normalize_sql(sql);
  auto it = divergence_by_statement_.find(key);
  if (it == divergence_by_statement_.end()) {
    if (divergence_by_statement_.size() >= kMaxDivergenceGroups) key = "<other>";
    it = divergence_by_statement_.try_emplace(std::move(key)).first;
  }
  DivergenceGroup& g = it->second;
  if (g.count++ == 0) {  // the first one's outcomes, for the HTML report
    g.what = what;
    g.captured = captured;
    g.replayed = replayed;
  }
}

void Report::matched(const SessionLabel& who, uint64_t index, const StatementEvent& captured,
                     const StatementEvent& replayed) {
  if (replayed.outcome == Outcome::kError) {
    ErrorCount& e = errors_[replayed.sqlstate.empty() ? std::string("?????") : replayed.sqlstate];
    ++e.with_capture;
    if (captured.outcome == Outcome::kError) ++e.also_in_capture;
  }
  if (!opts_.compare || captured.outcome == Outcome::kUnknown) return;
  if (ignored(captured.sql)) {
    ++compare_ignored_;
    return;
  }
  ++compared_;
  if (captured.outcome != replayed.outcome) {
    diverged(
        who, index,
        fmt::format("outcome: {} in the capture, {} in the replay", pgwire::statement_outcome_name(captured.outcome),
                    pgwire::statement_outcome_name(replayed.outcome)),
        captured, &replayed);
    return;
  }
  if (captured.outcome == Outcome::kOk) {
    if (captured.rows != replayed.rows) {
      diverged(who, index, "row count", captured, &replayed);
    } else if (captured.tag != replayed.tag) {
      diverged(who, index, "command tag", captured, &replayed);
    } else if (captured.rows_digest != replayed.rows_digest) {
      diverged(who, index, "result rows", captured, &replayed);
    }
  } else if (captured.outcome == Outcome::kError && captured.sqlstate != replayed.sqlstate) {
    diverged(who, index, "SQLSTATE", captured, &replayed);
  }
}

void Report::unmatched(const SessionLabel& who, uint64_t index, const StatementEvent& ev, bool only_in_capture) {
  if (!opts_.compare) return;
  if (ignored(ev.sql)) {
    ++compare_ignored_;
    return;
  }
  ++compared_;
  if (only_in_capture) {
    diverged(who, index, "statement missing in the replay", ev, nullptr);
  } else {
    const std::string what = "statement not in the capture", replayed = describe_outcome(ev);
    count_divergence(ev.sql, what, "none", replayed);
    if (divergence_list_.size() < opts_.max_divergences) {
      Divergence d;
      d.who = who;
      d.index = index;
      d.what = what;
      d.sql = ev.sql;
      d.captured = "none";
      d.replayed = replayed;
      divergence_list_.push_back(std::move(d));
    }
  }
}

int Report::exit_code() const {
  if (compare_impossible()) return kExitUsage;
  if (sessions_failed_ > 0 || interrupted_) return kExitSessionsFailed;
  if (!damage_.empty()) return kExitDamagedCapture;
  if (divergences_ > 0) return kExitDivergence;
  return kExitOk;
}

std::string Report::text() const {
  std::string o;
  auto line = [&](const std::string& s) {
    o += s;
    o += '\n';
  };
  const double secs = static_cast<double>(run_ns_) / 1e9;
  line(fmt::format("pgreplay report{}", interrupted_ ? " (stopped early: " + stopped_why_ + ")" : std::string()));
  line(fmt::format("  run time          {:.3f} s (capture spans {:.3f} s, speed {})", secs,
                   static_cast<double>(capture_span_ns_) / 1e9,
                   opts_.speed_max ? std::string("max") : fmt::format("{:g}", opts_.speed)));
  line(fmt::format("  sessions          {} ok, {} failed, {} skipped", sessions_ok_, sessions_failed_,
                   sessions_skipped_));
  if (cancels_sent_ || cancels_skipped_)
    line(fmt::format("  cancel requests   {} sent, {} skipped", cancels_sent_, cancels_skipped_));
  size_t shown = 0;
  for (const auto& [key, n] : failure_logins_) {
    if (shown++ == kFailureGroupsShown) break;
    const auto& [reason, user, database] = key;
    line(fmt::format("    failed {:>6}x  as {}@{}: {}", n, one_line(user), one_line(database), reason));
  }
  if (failure_logins_.size() > kFailureGroupsShown || failures_ungrouped_ > 0) {
    uint64_t more = failures_ungrouped_;
    size_t i = 0;
    for (const auto& [key, n] : failure_logins_)
      if (i++ >= kFailureGroupsShown) more += n;
    line(fmt::format("    ... and {} more failed sessions{}", more,
                     opts_.report_file.empty() ? std::string() : " (listed in the JSON report)"));
  }
  for (const auto& [reason, n] : skip_reasons_) line(fmt::format("    skipped {:>5}x  {}", n, reason));
  line(fmt::format("  statements        {} ({:.1f}/s): {} ok, {} errors, {} not executed, {} without outcome",
                   statements_, secs > 0 ? static_cast<double>(statements_) / secs : 0.0, st_ok_, st_error_,
                   st_not_executed_, st_unknown_));
  if (!errors_.empty()) {
    line("  errors by SQLSTATE");
    for (const auto& [state, e] : errors_) {
      std::string also = e.with_capture
                             ? fmt::format(", {} of {} also failed in the capture", e.also_in_capture, e.with_capture)
                             : std::string();
      line(fmt::format("    {} {:>8}x{}  e.g. {}", state, e.count, also, one_line(e.example)));
    }
  }
  line(fmt::format("  frames sent       {}", frames_));
  if (!opts_.speed_max && lag_.count())
    line(fmt::format("  lag behind schedule  p50 {} ms, p99 {} ms, max {} ms", ms(lag_.percentile_ns(50)),
                     ms(lag_.percentile_ns(99)), ms(lag_.max_ns())));
  if (dispatch_.count())
    line(fmt::format("  dispatch delay       p50 {} ms, p99 {} ms, max {} ms (from allowed to sent)",
                     ms(dispatch_.percentile_ns(50)), ms(dispatch_.percentile_ns(99)), ms(dispatch_.max_ns())));
  if (wake_.count() && !opts_.speed_max)
    line(
        fmt::format("  timer wake-up delay  p50 {} ms, p99 {} ms, max {} ms (how late the OS ran pgreplay after a "
                    "deadline: high on a busy machine)",
                    ms(wake_.percentile_ns(50)), ms(wake_.percentile_ns(99)), ms(wake_.max_ns())));
  if (stalls_) line(fmt::format("  waits released because the server owed nothing: {}", stalls_));
  if (unexpected_copies_)
    line(fmt::format("  COPY not in the capture, answered with CopyFail: {}", unexpected_copies_));
  const auto& all = stats_.overall();
  if (all.count()) {
    line(fmt::format("  statement latency    p50 {} ms, p90 {} ms, p99 {} ms, max {} ms", ms(all.percentile_ns(50)),
                     ms(all.percentile_ns(90)), ms(all.percentile_ns(99)), ms(all.max_ns())));
    line(fmt::format("  top statements by total time"));
    line(fmt::format("    {:>9} {:>7} {:>10} {:>10} {:>10}  {}", "calls", "errors", "total ms", "p50 ms", "p99 ms",
                     "statement"));
    for (const pgwire::StatementAggregate* a : stats_.top_by_time(opts_.top)) {
      line(fmt::format("    {:>9} {:>7} {:>10} {:>10} {:>10}  {}", a->count, a->errors, ms(a->latency.sum_ns()),
                       ms(a->latency.percentile_ns(50)), ms(a->latency.percentile_ns(99)), one_line(a->text)));
    }
  }
  if (opts_.compare) {
    if (compare_impossible()) {
      line("  compare: impossible, the capture holds no backend frames (record with pgproxy --capture-backend)");
    } else {
      line(fmt::format("  compare           {} statements compared, {} ignored, {} divergences", compared_,
                       compare_ignored_, divergences_));
      for (const Divergence& d : divergence_list_) {
        line(fmt::format("    session {} statement #{}: {}", d.who.id, d.index + 1, d.what));
        line(fmt::format("      sql:      {}", one_line(d.sql)));
        if (!d.params.empty()) line(fmt::format("      params:   {}", params_text(d.params)));
        line(fmt::format("      captured: {}", d.captured));
        line(fmt::format("      replayed: {}", d.replayed));
      }
      if (divergences_ > divergence_list_.size())
        line(fmt::format("    ... {} more", divergences_ - divergence_list_.size()));
      if (!divergence_by_statement_.empty()) {
        std::vector<std::pair<std::string, uint64_t>> by;
        by.reserve(divergence_by_statement_.size());
        for (const auto& [text, g] : divergence_by_statement_) by.emplace_back(text, g.count);
        std::sort(by.begin(), by.end(), [](const auto& a, const auto& b) {
          return a.second != b.second ? a.second > b.second : a.first < b.first;
        });
        line("    divergences by statement");
        for (const auto& [text, n] : by) line(fmt::format("      {:>8}x  {}", n, one_line(text)));
      }
    }
  }
  for (const auto& [who, reason] : failed_examples_) {
    line(fmt::format("  failed session {} (user {}, database {}): {}", who.id, one_line(who.user),
                     one_line(who.database), reason));
  }
  for (const std::string& d : damage_) line("  capture damaged: " + d);
  for (const std::string& w : warnings_) line("  warning: " + w);
  return o;
}

std::string Report::json() const {
  std::string o;
  pgwire::JsonWriter j(o);
  auto strings = [&](const auto& list) {
    j.begin_array();
    for (const std::string& text : list) j.value(text);
    j.end_array();
  };
  auto counts = [&](const auto& map) {
    j.begin_object();
    for (const auto& [text, n] : map) j.field(text, n);
    j.end_object();
  };
  auto millis = [&](int64_t ns) { j.fixed(static_cast<double>(ns) / 1e6, 3); };
  auto hist = [&](const char* key, const pgwire::LatencyHistogram& h) {
    j.key(key).begin_object().field("count", h.count());
    j.key("p50_ms");
    millis(h.percentile_ns(50));
    j.key("p90_ms");
    millis(h.percentile_ns(90));
    j.key("p99_ms");
    millis(h.percentile_ns(99));
    j.key("max_ms");
    millis(h.max_ns());
    j.end_object();
  };

  j.begin_object();
  j.field("version", kVersion);
  j.key("stopped_early");
  if (interrupted_) {
    j.value(stopped_why_);
  } else {
    j.null();
  }
  j.field("exit_code", exit_code());
  j.key("run_time_s").fixed(static_cast<double>(run_ns_) / 1e9, 6);
  j.key("capture_span_s").fixed(static_cast<double>(capture_span_ns_) / 1e9, 6);
  j.key("speed");
  if (opts_.speed_max) {
    j.value("max");
  } else {
    j.raw(fmt::format("{:g}", opts_.speed));
  }

  j.key("sessions").begin_object();
  j.field("ok", sessions_ok_).field("failed", sessions_failed_).field("skipped", sessions_skipped_);
  j.field("cancel_sent", cancels_sent_).field("cancel_skipped", cancels_skipped_);
  j.key("failure_reasons");
  counts(failure_reasons_);
  j.key("skip_reasons");
  counts(skip_reasons_);
  j.key("failures").begin_array();
  for (const auto& [key, n] : failure_logins_) {
    const auto& [reason, user, database] = key;
    j.begin_object().field("reason", reason).field("user", user).field("database", database).field("count", n);
    j.end_object();
  }
  j.end_array().field("failures_ungrouped", failures_ungrouped_);
  j.key("failed_sessions").begin_array();
  for (const auto& [who, reason] : failed_examples_) {
    j.begin_object().field("session", who.id).field("user", who.user).field("database", who.database);
    j.field("reason", reason).end_object();
  }
  j.end_array().end_object();

  const double secs = static_cast<double>(run_ns_) / 1e9;
  j.key("statements").begin_object().field("total", statements_);
  j.key("per_second").fixed(secs > 0 ? static_cast<double>(statements_) / secs : 0.0, 1);
  j.field("ok", st_ok_).field("error", st_error_).field("not_executed", st_not_executed_);
  j.field("unknown", st_unknown_).end_object();
  j.key("errors").begin_object();
  for (const auto& [state, e] : errors_) {
    j.key(state).begin_object().field("count", e.count).field("also_failed_in_capture", e.also_in_capture);
    j.field("with_captured_outcome", e.with_capture).field("example", e.example).end_object();
  }
  j.end_object();
  j.field("frames", frames_).field("stalls_released", stalls_).field("unexpected_copies", unexpected_copies_);
  hist("lag", lag_);
  hist("dispatch_delay", dispatch_);
  hist("wake_delay", wake_);
  hist("latency", stats_.overall());
  j.key("top_statements").begin_array();
  for (const pgwire::StatementAggregate* a : stats_.top_by_time(opts_.top)) {
    j.begin_object().field("statement", a->text).key("fingerprint");
    if (a->fingerprint != 0) {
      j.value(pgwire::fingerprint_hex(a->fingerprint));
    } else {
      j.null();  // "<other>": many statements
    }
    j.field("calls", a->count).field("errors", a->errors);
    j.field("rows", a->rows).key("total_ms");
    millis(a->latency.sum_ns());
    j.key("p50_ms");
    millis(a->latency.percentile_ns(50));
    j.key("p99_ms");
    millis(a->latency.percentile_ns(99));
    j.key("max_ms");
    millis(a->latency.max_ns());
    j.end_object();
  }
  j.end_array();

  j.key("compare").begin_object();
  j.key("enabled").boolean(opts_.compare).key("possible").boolean(sessions_exact_ > 0);
  j.field("compared", compared_).field("ignored", compare_ignored_).field("divergences", divergences_);
  j.key("first").begin_array();
  for (const Divergence& d : divergence_list_) {
    j.begin_object().field("session", d.who.id).field("statement", d.index + 1).field("what", d.what);
    j.field("sql", d.sql).key("params").begin_array();
    for (const pgwire::StatementParam& p : d.params) {
      if (p.value) {
        j.value(param_text(p));
      } else {
        j.null();
      }
    }
    j.end_array().field("captured", d.captured).field("replayed", d.replayed).end_object();
  }
  j.end_array().key("by_statement").begin_object();
  for (const auto& [text, g] : divergence_by_statement_) j.field(text, g.count);
  j.end_object();
  j.end_object();
  j.key("damage");
  strings(damage_);
  j.key("warnings");
  strings(warnings_);
  j.end_object();
  o += '\n';
  return o;
}

}  // namespace pgreplay
