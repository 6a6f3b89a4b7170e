// pgdump-log --stats and --report-html: what a DBA wants to know about a
// capture, gathered in the one pass over it that prints the other outputs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgwire/framer.hpp"
#include "pgwire/stats.hpp"
#include "pgwire/tracker.hpp"

namespace pgdump {

struct HtmlOptions {
  std::vector<std::string> inputs;  // the capture files, for the title
  size_t statements = 100;          // rows of the statement table (most total time, then most frequent)
  size_t max_points = 600;          // points per chart line at most
};

class Report {
 public:
  // `examples`: keep what only the HTML report shows, an example line per
  // statement and per SQLSTATE and the timeline (up to about 1.2 MB of
  // buckets); --stats alone does not need their cost.
  explicit Report(bool examples = false) : examples_enabled_(examples) {}

  void session_open(const pgwire::SessionInfo& s, int64_t ts_ns);
  void session_close(const pgwire::SessionInfo& s, int64_t ts_ns);
  // A session whose start is not in the data (CaptureDecoder::Callbacks::partial).
  void session_partial(const pgwire::SessionInfo& s, int64_t ts_ns);
  void frame(pgwire::Direction dir, const pgwire::Frame& f);
  void event(const pgwire::StatementEvent& ev, const pgwire::SessionInfo& s);

  std::string text(size_t top_n) const;
  std::string json(size_t top_n) const;
  // One self-contained page (report_html.cpp); the same figures as text() and json().
  std::string html(const HtmlOptions& opts) const;

 private:
  struct Group {
    uint64_t sessions = 0;
    int64_t total_ns = 0;
  };
  // A log line (pgproxy's text format, parameters included) of one execution.
  struct Example {
    int64_t duration_ns = -1;  // the slowest one is kept
    std::string line;
  };
  struct ErrorExample {
    std::string message;  // the first one's
    std::string line;
  };
  void keep_example(const pgwire::StatementAggregate& a, const pgwire::StatementEvent& ev, const pgwire::SessionInfo& s,
                    int64_t duration);
  void keep_error_example(const pgwire::StatementEvent& ev, const pgwire::SessionInfo& s);

  bool examples_enabled_;
  uint64_t sessions_ = 0;
  uint64_t partial_ = 0;
  int64_t first_ns_ = 0, last_ns_ = 0;
  pgwire::LatencyHistogram session_durations_;
  std::unordered_map<uint64_t, int64_t> open_;  // session id -> open time (open sessions only)
  std::map<std::string, Group> by_user_, by_database_, by_client_, by_application_;
  std::map<std::string, Group> by_tls_;  // "client leg | server leg"
  std::map<std::string, uint64_t> frontend_messages_, backend_messages_;
  std::map<std::string, uint64_t> by_kind_, by_outcome_, by_sqlstate_;
  pgwire::StatementStats statements_;
  pgwire::StatementTimeline timeline_;
  // Keyed by the aggregate's address, stable in StatementStats: one per
  // statement text, so bounded as StatementStats is.
  std::unordered_map<const pgwire::StatementAggregate*, Example> examples_;
  std::map<std::string, ErrorExample> error_examples_;  // by SQLSTATE, at most kMaxErrorExamples
};

}  // namespace pgdump
