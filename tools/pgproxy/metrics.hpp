// pgproxy's Prometheus metrics: what they count, their text (exposition
// format 0.0.4), and the small HTTP endpoint that serves them from the
// event loop (--metrics-listen).
//
// The endpoint is a guest of the one loop, so it must never make the loop
// wait: its sockets are non-blocking, a request is read up to a bound
// (kMaxRequest) and a connection lives at most kTimeoutMs, one response is
// written and the connection closed, and at most kMaxConnections scrapers
// are served at once (more are closed at accept). A scrape costs one pass
// over the counters, never over the sessions' traffic.
#pragma once

#include <poll.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgwire/tracker.hpp"

namespace pgproxy {

// Per statement: how many, by kind and outcome; errors by SQLSTATE class;
// the duration of those whose duration is known.
class StatementMetrics {
 public:
  // Upper bounds of the duration histogram, in seconds: 50 µs to 60 s.
  static constexpr std::array<double, 19> kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  void record(const pgwire::StatementEvent& ev);

  uint64_t count(pgwire::StatementKind k, pgwire::Outcome o) const { return by_kind_outcome_[size_t(k)][size_t(o)]; }
  // SQLSTATE class (its first two characters) -> ErrorResponses; a code
  // that is not five digits or upper-case letters counts under "unknown".
  const std::map<std::string, uint64_t, std::less<>>& error_classes() const { return error_classes_; }
  // Not cumulative: [i] counts durations in (kBuckets[i-1], kBuckets[i]]; the last, those above 60 s.
  const std::array<uint64_t, kBuckets.size() + 1>& duration_buckets() const { return buckets_; }
  double duration_sum() const { return duration_sum_; }
  uint64_t duration_count() const { return duration_count_; }

 private:
  std::array<std::array<uint64_t, 4>, 3> by_kind_outcome_{};
  std::map<std::string, uint64_t, std::less<>> error_classes_;  // at most 36 * 36 + 1 keys
  std::array<uint64_t, kBuckets.size() + 1> buckets_{};
  double duration_sum_ = 0;
  uint64_t duration_count_ = 0;
};

// Everything one scrape shows, gathered by the loop.
struct MetricsSnapshot {
  double start_time_seconds = 0;  // since the epoch
  uint64_t client_sessions_open = 0;
  uint64_t client_sessions_total = 0;
  uint64_t client_sessions_refused = 0;  // over --max-connections, answered 53300
  uint64_t server_sessions_open = 0;     // connecting or connected
  uint64_t server_sessions_total = 0;    // connections to the server made
  uint64_t client_bytes = 0;             // received from clients
  uint64_t server_bytes = 0;             // received from the server
  uint64_t errors = 0;                   // protocol violations, upstream failures, accept errors, write errors
  uint64_t log_lines_written = 0;
  uint64_t log_lines_lost = 0;
  uint64_t capture_records_written = 0;
  uint64_t capture_records_lost = 0;
  uint64_t writer_queue_bytes = 0;
  uint64_t rounds = 0;        // waits that returned something
  uint64_t ready_events = 0;  // descriptors they returned ready
  bool tls = false;           // TLS configured on either leg: the TLS lines are shown
  uint64_t tls_client_handshakes = 0;
  uint64_t tls_server_handshakes = 0;
  uint64_t tls_failures = 0;
  uint64_t channel_binding_removed = 0;
  uint64_t scrapes = 0;                // responses served, this one included
  uint64_t not_logged_session = 0;     // statements of sessions the --log-* patterns leave out
  uint64_t not_logged_duration = 0;    // statements faster than --log-min-duration-ms
  uint64_t not_captured_sessions = 0;  // sessions --capture-filter-same leaves out
  uint64_t log_rotations = 0;          // new SQL log files begun by --rotate-*
  uint64_t capture_rotations = 0;
  uint64_t capture_restarts = 0;  // new capture files begun after a failed one
  bool capture_down = false;      // the capture has no working file now
  bool has_capture = false;
  uint64_t files_compressed = 0;
  uint64_t compress_errors = 0;
  uint64_t files_removed = 0;  // by --rotate-keep
  const StatementMetrics* statements = nullptr;
};

// Appends the exposition text (format 0.0.4) of `m` to `out`.
void render_metrics(const MetricsSnapshot& m, std::string& out);

// One scraper's connection.
struct MetricsConnection {
  int fd = -1;
  uint64_t serial = 0;  // names its wait registration (descriptor numbers are reused)
  int64_t deadline_ms = 0;
  std::string request;   // what has arrived, up to kMaxRequest
  std::string response;  // once the request is complete
  size_t sent = 0;
  size_t drained = 0;  // bytes read and dropped after the response
  // The response is out and our side shut down: what the scraper still sends is read and dropped
  // until it closes (closing with unread bytes would reset the connection, and could take the
  // response with it).
  bool draining = false;
  bool responding() const { return !response.empty() && !draining; }
};

// What a request asks for, once its head is complete (kIncomplete until then).
enum class MetricsVerdict : uint8_t { kIncomplete, kMetrics, kNotFound, kBadMethod, kBadRequest, kTooLarge };
MetricsVerdict judge_metrics_request(std::string_view request);

class MetricsEndpoint {
 public:
  static constexpr size_t kMaxRequest = 8192;
  static constexpr int64_t kTimeoutMs = 5000;
  static constexpr size_t kMaxConnections = 16;
  static constexpr int64_t kAcceptPauseMs = 100;
  // Read per event, at most: a scraper that streams bytes gets no more of the loop than that.
  static constexpr size_t kReadPerEvent = 8192;
  using Render = std::function<void(std::string&)>;

  // Listens on HOST:PORT, every address the name has (non-blocking); null
  // and `error` set when it cannot listen on any.
  static std::unique_ptr<MetricsEndpoint> open(const std::string& host_port, std::string& error);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  const std::vector<int>& listen_fds() const { return listen_fds_; }
  std::string address() const;  // the first address, printable
  // Whether to wait on the listening sockets now: not for a moment after
  // accept() failed for want of descriptors or memory (it would fail again
  // at once, and the wait would spin).
  bool listening(int64_t now) const { return now >= paused_until_ms_; }
  int64_t paused_until_ms() const { return paused_until_ms_; }
  const std::vector<std::unique_ptr<MetricsConnection>>& connections() const { return conns_; }

  // Accepts what is waiting on `listen_fd` (a few at most); the new
  // connections wait for POLLIN. An accept() error other than "nothing
  // waiting" or a connection gone before it was accepted pauses the
  // listening sockets for kAcceptPauseMs and is returned in `error` (an
  // errno, else 0).
  std::vector<MetricsConnection*> accept_all(int listen_fd, int64_t now, int& error);
  // Reads or writes as `revents` allow. When a complete GET /metrics has
  // arrived, `render` appends the metrics' text. Returns false when the
  // connection is finished: it is closed then, and must be forgotten.
  bool on_event(MetricsConnection& c, short revents, const Render& render);
  // What the connection waits for next: POLLIN, then POLLOUT, then POLLIN (draining).
  static short events(const MetricsConnection& c) { return c.responding() ? POLLOUT : POLLIN; }
  // Closes the connections past their deadline; returns their descriptors
  // and serials, for their registrations to be forgotten.
  std::vector<std::pair<int, uint64_t>> expire(int64_t now);
  int64_t next_deadline() const;    // 0: none
  void drop(MetricsConnection& c);  // closes it and forgets it
  void close_all();
  uint64_t refused() const { return refused_; }      // over kMaxConnections
  uint64_t timed_out() const { return timed_out_; }  // past kTimeoutMs
  uint64_t responses() const { return responses_; }  // responses made (their sending may still fail)

 private:
  MetricsEndpoint() = default;
  void respond(MetricsConnection& c, const Render& render);

  std::vector<int> listen_fds_;
  int64_t paused_until_ms_ = 0;
  uint64_t next_serial_ = 0;
  std::vector<std::unique_ptr<MetricsConnection>> conns_;
  uint64_t refused_ = 0;
  uint64_t timed_out_ = 0;
  uint64_t responses_ = 0;
};

}  // namespace pgproxy
