#include "metrics.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "pgwire/net.hpp"

namespace pgproxy {

// --- what is counted --------------------------------------------------------------

namespace {
bool sqlstate_char(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); }
}  // namespace

void StatementMetrics::record(const pgwire::StatementEvent& ev) {
  ++by_kind_outcome_[size_t(ev.kind)][size_t(ev.outcome)];
  if (ev.outcome == pgwire::Outcome::kError) {
    const std::string& code = ev.sqlstate;
    bool valid = code.size() == 5 && std::all_of(code.begin(), code.end(), sqlstate_char);
    std::string_view cls = valid ? std::string_view(code).substr(0, 2) : std::string_view("unknown");
    auto it = error_classes_.find(cls);
    if (it == error_classes_.end()) it = error_classes_.emplace(std::string(cls), 0).first;
    ++it->second;
  }
  // Only an outcome that was seen has a duration (an unknown one has none).
  if (ev.outcome == pgwire::Outcome::kUnknown || ev.end_ns < ev.start_ns || ev.start_ns == 0) return;
  double secs = static_cast<double>(ev.end_ns - ev.start_ns) / 1e9;
  size_t i = std::lower_bound(kBuckets.begin(), kBuckets.end(), secs) - kBuckets.begin();
  ++buckets_[i];
  duration_sum_ += secs;
  ++duration_count_;
}

// --- the text -----------------------------------------------------------------------

namespace {

class Exposition {
 public:
  explicit Exposition(std::string& out) : out_(out) {}
  Exposition& family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    return *this;
  }
  Exposition& value(uint64_t v, std::string_view labels = {}, std::string_view suffix = {}) {
    line(labels, suffix);
    fmt::format_to(std::back_inserter(out_), "{}\n", v);
    return *this;
  }
  Exposition& real(double v, std::string_view labels = {}, std::string_view suffix = {}) {
    line(labels, suffix);
    fmt::format_to(std::back_inserter(out_), "{}\n", v);
    return *this;
  }

 private:
  void line(std::string_view labels, std::string_view suffix) {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
  }
  std::string& out_;
  std::string_view name_;
};

}  // namespace

void render_metrics(const MetricsSnapshot& m, std::string& out) {
  Exposition e(out);
  e.family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.")
      .real(m.start_time_seconds);
  e.family("pgproxy_client_sessions_open", "gauge", "Client sessions open, counted against --max-connections.")
      .value(m.client_sessions_open);
  e.family("pgproxy_client_sessions_total", "counter", "Client connections accepted, refused ones included.")
      .value(m.client_sessions_total);
  e.family("pgproxy_client_sessions_refused_total", "counter",
           "Client connections refused over --max-connections (answered SQLSTATE 53300).")
      .value(m.client_sessions_refused);
  e.family("pgproxy_server_sessions_open", "gauge", "Connections to the server open or being opened.")
      .value(m.server_sessions_open);
  e.family("pgproxy_server_sessions_total", "counter", "Connections to the server established.")
      .value(m.server_sessions_total);
  e.family("pgproxy_received_bytes_total", "counter", "Bytes received, by the side that sent them.")
      .value(m.client_bytes, "from=\"client\"")
      .value(m.server_bytes, "from=\"server\"");
  if (m.statements != nullptr) {
    const StatementMetrics& s = *m.statements;
    e.family("pgproxy_statements_total", "counter",
             "Statements executed (a simple Query, an Execute, a FunctionCall), by kind and outcome.");
    for (auto k :
         {pgwire::StatementKind::kQuery, pgwire::StatementKind::kExecute, pgwire::StatementKind::kFunctionCall}) {
      for (auto o :
           {pgwire::Outcome::kOk, pgwire::Outcome::kError, pgwire::Outcome::kNotExecuted, pgwire::Outcome::kUnknown}) {
        e.value(s.count(k, o), fmt::format("kind=\"{}\",outcome=\"{}\"", pgwire::statement_kind_name(k),
                                           pgwire::statement_outcome_name(o)));
      }
    }
    e.family("pgproxy_statement_errors_total", "counter",
             "Statements that ended in an ErrorResponse, by SQLSTATE class (its first two characters).");
    for (const auto& [cls, n] : s.error_classes()) e.value(n, fmt::format("sqlstate_class=\"{}\"", cls));
    e.family("pgproxy_statement_duration_seconds", "histogram",
             "Time from a statement's request to its outcome, as pgproxy saw them (statements whose outcome "
             "was seen).");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < StatementMetrics::kBuckets.size(); ++i) {
      cumulative += s.duration_buckets()[i];
      e.value(cumulative, fmt::format("le=\"{}\"", StatementMetrics::kBuckets[i]), "_bucket");
    }
    cumulative += s.duration_buckets().back();
    e.value(cumulative, "le=\"+Inf\"", "_bucket");
    e.real(s.duration_sum(), {}, "_sum").value(s.duration_count(), {}, "_count");
  }
  e.family("pgproxy_sql_log_lines_written_total", "counter", "SQL log lines written.").value(m.log_lines_written);
  e.family("pgproxy_sql_log_statements_left_out_total", "counter",
           "Statements not written to the SQL log on purpose: their session does not match --log-user, "
           "--log-database or --log-application, or they took less than --log-min-duration-ms.")
      .value(m.not_logged_session, "reason=\"session\"")
      .value(m.not_logged_duration, "reason=\"duration\"");
  e.family("pgproxy_sql_log_lines_lost_total", "counter",
           "SQL log lines lost (the writer's queue full, or the file could not be written).")
      .value(m.log_lines_lost);
  e.family("pgproxy_capture_records_written_total", "counter", "Capture records written.")
      .value(m.capture_records_written);
  e.family("pgproxy_capture_records_lost_total", "counter",
           "Capture records lost (the writer's queue full, or the file could not be written).")
      .value(m.capture_records_lost);
  e.family("pgproxy_capture_sessions_left_out_total", "counter",
           "Sessions not written to the capture on purpose (--capture-filter-same).")
      .value(m.not_captured_sessions);
  if (m.has_capture) {
    e.family("pgproxy_capture_up", "gauge",
             "1 while the capture has a working file; 0 after a write failed (a full disk) until a new file "
             "could be begun (tried every second).")
        .value(m.capture_down ? 0 : 1);
  }
  e.family("pgproxy_file_rotations_total", "counter",
           "New files begun: by --rotate-size/--rotate-interval (reason rotate), or for a capture whose "
           "file failed (reason failure).")
      .value(m.log_rotations, "file=\"sql_log\",reason=\"rotate\"")
      .value(m.capture_rotations, "file=\"capture\",reason=\"rotate\"")
      .value(m.capture_restarts, "file=\"capture\",reason=\"failure\"");
  e.family("pgproxy_closed_files_compressed_total", "counter", "Closed files compressed with zstd (--rotate-compress).")
      .value(m.files_compressed);
  e.family("pgproxy_closed_files_compress_errors_total", "counter", "Closed files that could not be compressed.")
      .value(m.compress_errors);
  e.family("pgproxy_closed_files_removed_total", "counter", "Closed files removed by --rotate-keep.")
      .value(m.files_removed);
  e.family("pgproxy_writer_queue_bytes", "gauge", "Bytes of SQL log and capture waiting for the writer thread.")
      .value(m.writer_queue_bytes);
  e.family("pgproxy_errors_total", "counter",
           "Errors: protocol violations, failures to reach the server, accept and write errors.")
      .value(m.errors);
  e.family("pgproxy_rounds_total", "counter", "Rounds of the event loop (waits that returned something).")
      .value(m.rounds);
  e.family("pgproxy_ready_events_total", "counter", "Sockets found ready, over all rounds.").value(m.ready_events);
  if (m.tls) {
    e.family("pgproxy_tls_handshakes_total", "counter", "TLS handshakes completed, by leg.")
        .value(m.tls_client_handshakes, "leg=\"client\"")
        .value(m.tls_server_handshakes, "leg=\"server\"");
    e.family("pgproxy_tls_handshake_failures_total", "counter", "TLS handshakes that failed, either leg.")
        .value(m.tls_failures);
    e.family("pgproxy_channel_binding_removed_total", "counter",
             "AuthenticationSASL lists from which SCRAM-SHA-256-PLUS was removed (the legs' certificates differ).")
        .value(m.channel_binding_removed);
  }
  e.family("pgproxy_metrics_scrapes_total", "counter", "Responses of this endpoint, this one included.")
      .value(m.scrapes);
}

// --- the request --------------------------------------------------------------------

MetricsVerdict judge_metrics_request(std::string_view request) {
  size_t end = request.find("\r\n\r\n");
  if (end == std::string_view::npos) end = request.find("\n\n");
  if (end == std::string_view::npos) {
    return request.size() >= MetricsEndpoint::kMaxRequest ? MetricsVerdict::kTooLarge : MetricsVerdict::kIncomplete;
  }
  std::string_view line = request.substr(0, request.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.substr(sp2 + 1).substr(0, 5) != "HTTP/") return MetricsVerdict::kBadRequest;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET") return MetricsVerdict::kBadMethod;
  std::string_view path = target.substr(0, target.find('?'));
  return path == "/metrics" ? MetricsVerdict::kMetrics : MetricsVerdict::kNotFound;
}

// --- the endpoint -------------------------------------------------------------------

std::unique_ptr<MetricsEndpoint> MetricsEndpoint::open(const std::string& host_port, std::string& error) {
  auto hp = pgwire::parse_host_port(host_port, "9187", error);
  if (!hp) {
    error = fmt::format("--metrics-listen {}", error);
    return nullptr;
  }
  if (hp->is_unix()) {
    error = fmt::format("--metrics-listen {}: a TCP address is needed (HOST:PORT)", host_port);
    return nullptr;
  }
  auto addrs = pgwire::resolve(*hp, true, error);
  if (addrs.empty()) {
    error = fmt::format("--metrics-listen {}: {}", host_port, error);
    return nullptr;
  }
  std::unique_ptr<MetricsEndpoint> m(new MetricsEndpoint());
  std::string why;
  for (const auto& a : addrs) {
    int fd = pgwire::listen_on(a, 64, why);
    if (fd >= 0) {
      m->listen_fds_.push_back(fd);
    } else {
      error = why;
    }
  }
  if (m->listen_fds_.empty()) {
    error = fmt::format("--metrics-listen {}: {}", host_port, error);
    return nullptr;
  }
  return m;
}

MetricsEndpoint::~MetricsEndpoint() {
  close_all();
  for (int fd : listen_fds_) close(fd);
}

std::string MetricsEndpoint::address() const { return pgwire::local_address(listen_fds_.front()); }

std::vector<MetricsConnection*> MetricsEndpoint::accept_all(int listen_fd, int64_t now, int& error) {
  std::vector<MetricsConnection*> fresh;
  error = 0;
  for (int i = 0; i < 16; ++i) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;  // that one is gone
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        error = errno;  // EMFILE, ENFILE, ENOBUFS, ENOMEM: it would fail again at once
        paused_until_ms_ = now + kAcceptPauseMs;
      }
      break;
    }
    if (conns_.size() >= kMaxConnections) {
      ++refused_;
      close(fd);
      continue;
    }
    auto c = std::make_unique<MetricsConnection>();
    c->fd = fd;
    c->serial = ++next_serial_;
    c->deadline_ms = now + kTimeoutMs;
    fresh.push_back(c.get());
    conns_.push_back(std::move(c));
  }
  return fresh;
}

namespace {
const char* status_line(MetricsVerdict v) {
  switch (v) {
    case MetricsVerdict::kMetrics: return "200 OK";
    case MetricsVerdict::kNotFound: return "404 Not Found";
    case MetricsVerdict::kBadMethod: return "405 Method Not Allowed";
    case MetricsVerdict::kTooLarge: return "431 Request Header Fields Too Large";
    default: return "400 Bad Request";
  }
}
}  // namespace

void MetricsEndpoint::respond(MetricsConnection& c, const Render& render) {
  MetricsVerdict v = judge_metrics_request(c.request);
  std::string body;
  const char* type = "text/plain; charset=utf-8";
  if (v == MetricsVerdict::kMetrics) {
    ++responses_;
    render(body);
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (v == MetricsVerdict::kNotFound) {
    body = "pgproxy serves its metrics at /metrics\n";
  } else {
    body = fmt::format("{}\n", status_line(v));
  }
  c.response =
      fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
                  status_line(v), type, body.size(), v == MetricsVerdict::kBadMethod ? "Allow: GET\r\n" : "", body);
  c.request.clear();
  c.request.shrink_to_fit();
}

bool MetricsEndpoint::on_event(MetricsConnection& c, short revents, const Render& render) {
  char buf[2048];
  if (c.draining) {
    // Bounded: a scraper that keeps sending after its response is dropped,
    // and never keeps the loop here.
    size_t taken = 0;
    while (taken < kReadPerEvent && c.drained <= kMaxRequest) {
      ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        taken += static_cast<size_t>(n);
        c.drained += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      break;  // the scraper closed its side (or is gone): done
    }
    drop(c);  // closed, gone, or sending more than a request's worth after its response
    return false;
  }
  if (c.response.empty()) {
    if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) return true;
    for (;;) {
      ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        size_t room = kMaxRequest - std::min(kMaxRequest, c.request.size());
        c.request.append(buf, std::min(static_cast<size_t>(n), room));
        if (judge_metrics_request(c.request) != MetricsVerdict::kIncomplete) break;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      drop(c);  // the scraper left before its request was complete
      return false;
    }
    respond(c, render);
  }
  while (c.sent < c.response.size()) {
    ssize_t n = send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    drop(c);  // the scraper is gone
    return false;
  }
  c.response.clear();
  c.response.shrink_to_fit();
  c.draining = true;
  if (shutdown(c.fd, SHUT_WR) != 0) {
    drop(c);
    return false;
  }
  return true;
}

std::vector<std::pair<int, uint64_t>> MetricsEndpoint::expire(int64_t now) {
  std::vector<std::pair<int, uint64_t>> gone;
  for (size_t i = 0; i < conns_.size();) {
    if (conns_[i]->deadline_ms <= now) {
      ++timed_out_;
      gone.emplace_back(conns_[i]->fd, conns_[i]->serial);
      drop(*conns_[i]);
    } else {
      ++i;
    }
  }
  return gone;
}

int64_t MetricsEndpoint::next_deadline() const {
  int64_t d = 0;
  for (const auto& c : conns_) {
    if (d == 0 || c->deadline_ms < d) d = c->deadline_ms;
  }
  return d;
}

void MetricsEndpoint::drop(MetricsConnection& c) {
  close(c.fd);
  auto it = std::find_if(conns_.begin(), conns_.end(), [&](const auto& p) { return p.get() == &c; });
  if (it != conns_.end()) conns_.erase(it);
}

void MetricsEndpoint::close_all() {
  for (const auto& c : conns_) close(c->fd);
  conns_.clear();
}

}  // namespace pgproxy
