// What a replay did: sessions, statements, errors, lag, latency and (with
// --compare) how the replayed statements' outcomes differ from the captured
// ones. Printed as text at the end and written as JSON with --report.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "options.hpp"
#include "pgwire/stats.hpp"
#include "pgwire/tracker.hpp"

namespace pgreplay {

struct RegexHolder;

// --ignore: statements matching any of several POSIX extended regular
// expressions (regcomp(3); no std::regex, whose GCC 12 implementation trips
// -Wmaybe-uninitialized under the sanitizers, and which is slow).
class StatementFilter {
 public:
  StatementFilter();  // out of line: RegexHolder is complete only in report.cpp
  ~StatementFilter();
  StatementFilter(const StatementFilter&) = delete;
  StatementFilter& operator=(const StatementFilter&) = delete;

  // Adds an expression; false with the reason in *error if it does not compile.
  bool add(const std::string& expression, std::string* error);
  bool empty() const { return compiled_.empty(); }
  bool matches(const std::string& sql) const;

 private:
  std::vector<std::unique_ptr<RegexHolder>> compiled_;
};

// Who a session was, for messages.
struct SessionLabel {
  uint64_t id = 0;
  std::string user;
  std::string database;
  std::string application_name;
};

// --report-html: what the page shows at most.
struct HtmlOptions {
  std::vector<std::string> inputs;  // the capture files, for the title
  size_t statements = 100;          // rows of the latency table (most replayed time, then most captured time)
  size_t max_points = 600;          // points per chart line at most
};

class Report {
 public:
  explicit Report(const ReplayOptions& opts);

  // Sessions.
  void session_ok() { ++sessions_ok_; }
  void session_failed(const SessionLabel& who, const std::string& reason);
  void session_skipped(const SessionLabel& who, const std::string& reason);
  void cancel_sent() { ++cancels_sent_; }
  void cancel_skipped(const SessionLabel& who, const std::string& reason);
  void add_warning(std::string text);

  // Frames: lag behind schedule (finite speed) and pgreplay's own dispatch
  // delay. `capture_ts`: when the frame was captured, the lag chart's time.
  void frame_sent(int64_t lag_ns, int64_t dispatch_ns, bool scheduled, int64_t capture_ts = 0);
  void stall_broken() { ++stalls_; }
  // A poll() timeout that woke us this late after its deadline.
  void wake_delay(int64_t ns) { wake_.record(ns > 0 ? ns : 0); }
  void unexpected_copy() { ++unexpected_copies_; }

  // A statement the replay server answered (or did not).
  void replay_statement(const pgwire::StatementEvent& ev);
  // A statement of a replayed session as the capture has it: its captured
  // latency, beside the replayed one in the HTML report.
  void captured_statement(const pgwire::StatementEvent& ev);
  // The capture's and the replay's n-th statement of the same session.
  void matched(const SessionLabel& who, uint64_t index, const pgwire::StatementEvent& captured,
               const pgwire::StatementEvent& replayed);
  // Statements only one side has, in a session that completed on both.
  void unmatched(const SessionLabel& who, uint64_t index, const pgwire::StatementEvent& ev, bool only_in_capture);
  void note_exact_session() { ++sessions_exact_; }

  void capture_damage(std::string text) { damage_.push_back(std::move(text)); }
  void set_run_time(int64_t ns) { run_ns_ = ns; }
  void set_capture_span(int64_t ns) { capture_span_ns_ = ns; }
  // The replay stopped early ("interrupted", "target unreachable").
  void set_stopped(std::string why) {
    interrupted_ = true;
    stopped_why_ = std::move(why);
  }

  uint64_t sessions_total() const;
  uint64_t sessions_failed() const { return sessions_failed_; }
  uint64_t sessions_ok() const { return sessions_ok_; }
  uint64_t statements() const { return statements_; }
  uint64_t divergences() const { return divergences_; }
  int64_t lag_p99_ns() const { return lag_.percentile_ns(99); }
  bool compare_impossible() const { return opts_.compare && sessions_exact_ == 0; }

  int exit_code() const;
  std::string text() const;
  std::string json() const;
  // One self-contained page (report_html.cpp): the same figures as text() and
  // json(), and the replay beside the capture.
  std::string html(const HtmlOptions& opts) const;

 private:
  struct Divergence {
    SessionLabel who;
    uint64_t index = 0;
    std::string what;
    std::string sql;
    std::vector<pgwire::StatementParam> params;
    std::string captured;
    std::string replayed;
  };
  // Divergences of one normalized statement: how many, and the first one's outcomes.
  struct DivergenceGroup {
    uint64_t count = 0;
    std::string what;
    std::string captured;
    std::string replayed;
  };
  struct ErrorCount {
    uint64_t count = 0;
    uint64_t also_in_capture = 0;
    uint64_t with_capture = 0;  // how many of `count` had a captured outcome to look at
    std::string example;        // first message seen
  };
  bool ignored(const std::string& sql);
  void diverged(const SessionLabel& who, uint64_t index, std::string what, const pgwire::StatementEvent& captured,
                const pgwire::StatementEvent* replayed);
  void count_divergence(const std::string& sql, const std::string& what, const std::string& captured,
                        const std::string& replayed);

  const ReplayOptions& opts_;
  StatementFilter ignore_;
  std::unordered_map<std::string, bool> ignore_cache_;

  uint64_t sessions_ok_ = 0, sessions_failed_ = 0, sessions_skipped_ = 0, sessions_exact_ = 0;
  uint64_t cancels_sent_ = 0, cancels_skipped_ = 0;
  std::map<std::string, uint64_t> failure_reasons_;
  // Failed sessions by (reason, user, database): whom a failure hit is part of
  // what it means (a refused password, a missing database).
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> failure_logins_;
  uint64_t failures_ungrouped_ = 0;  // past kMaxFailureGroups distinct groups
  std::vector<std::pair<SessionLabel, std::string>> failed_examples_;
  std::map<std::string, uint64_t> skip_reasons_;
  std::vector<std::string> warnings_;
  std::vector<std::string> damage_;

  uint64_t frames_ = 0;
  pgwire::LatencyHistogram lag_;
  pgwire::LatencyHistogram dispatch_;
  pgwire::LatencyHistogram wake_;
  uint64_t stalls_ = 0, unexpected_copies_ = 0;

  uint64_t statements_ = 0, st_ok_ = 0, st_error_ = 0, st_not_executed_ = 0, st_unknown_ = 0;
  std::map<std::string, ErrorCount> errors_;
  pgwire::StatementStats stats_;
  pgwire::StatementStats captured_stats_;
  pgwire::StatementTimeline lag_timeline_;  // frames by capture time, their lag as the "latency"

  uint64_t compared_ = 0, compare_ignored_ = 0, divergences_ = 0;
  std::vector<Divergence> divergence_list_;
  // By normalized text, at most kMaxDivergenceGroups; the rest under "<other>".
  std::unordered_map<std::string, DivergenceGroup> divergence_by_statement_;

  int64_t run_ns_ = 0;
  int64_t capture_span_ns_ = 0;
  bool interrupted_ = false;
  std::string stopped_why_;
};

// "$1 = '5', $2 = NULL, $3 = '42'::int4, $4 = \\x0102::point" (long values cut;
// binary values decoded as the SQL log decodes them, else hex).
std::string format_params(const std::vector<pgwire::StatementParam>& params);

// "SELECT 1 (rows 1, digest 1a2b...)" / "ERROR 42P01 relation ... " / "not executed".
std::string describe_outcome(const pgwire::StatementEvent& ev);

}  // namespace pgreplay
