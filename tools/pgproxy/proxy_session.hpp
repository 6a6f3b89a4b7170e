// One proxied connection: the client socket, the upstream socket, a bounded
// output buffer toward each, and the small state machine around them. What
// the bytes mean is the library's business (pgwire::SessionMonitor: framing
// of both directions and the statement tracker); a session only decides what
// to forward, when, and what to record. Sessions never block and never own
// the pollfd array: the proxy asks each one what it wants to wait for
// (client_events / server_events) and hands it what happened.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "async_writer.hpp"
#include "out_buf.hpp"
#include "pgwire/csvlog.hpp"
#include "pgwire/net.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/statement_log.hpp"
#include "tls.hpp"

namespace pgproxy {

// Counters of the event loop (single-threaded, so plain integers).
struct ProxyStats {
  uint64_t accepted = 0;
  uint64_t active = 0;      // sessions counted against --max-connections
  uint64_t rejected = 0;    // over --max-connections
  uint64_t statements = 0;  // tracker events
  uint64_t client_bytes = 0;
  uint64_t server_bytes = 0;
  uint64_t errors = 0;                   // protocol violations, upstream failures, accept errors, ...
  uint64_t tls_clients = 0;              // client connections whose TLS pgproxy terminated
  uint64_t tls_servers = 0;              // server connections pgproxy opened with TLS
  uint64_t tls_failures = 0;             // handshakes that failed, either leg
  uint64_t channel_binding_removed = 0;  // AuthenticationSASL lists without SCRAM-SHA-256-PLUS
  uint64_t servers_connected = 0;        // connections to the server established
  uint64_t not_logged_session = 0;       // statements of sessions --log-user/-database/-application leave out
  uint64_t not_logged_duration = 0;      // statements faster than --log-min-duration-ms
  uint64_t not_captured_sessions = 0;    // sessions --capture-filter-same leaves out of the capture
  uint64_t polls = 0;                    // poll() calls that returned something
  uint64_t ready = 0;                    // descriptors they returned ready
};

class ProxySession;
class StatementMetrics;
class LogFilter;

// What all sessions share: options, the upstream addresses, the batch being
// filled for the writer thread, the read buffer, the counters.
struct SessionContext {
  std::vector<pgwire::SocketAddress> upstream;
  std::string upstream_text;
  // Opens a non-blocking connection to one upstream address (net.hpp's
  // pgwire::connect_nonblocking; tests hand out one end of a socketpair instead).
  std::function<int(const pgwire::SocketAddress&, bool& in_progress, int& err)> connect = pgwire::connect_nonblocking;
  pgwire::LogFormat log_format = pgwire::LogFormat::kText;
  bool log_enabled = false;
  bool capture_enabled = false;
  bool capture_backend = false;
  // TLS toward clients (null: SSLRequest answered 'N', direct TLS refused)
  // and toward the server (null: plaintext), and the name the server's
  // certificate is checked against.
  std::shared_ptr<TlsContext> client_tls;
  std::shared_ptr<TlsContext> server_tls;
  UpstreamSslMode upstream_sslmode = UpstreamSslMode::kDisable;
  std::string upstream_host;
  int64_t startup_timeout_ms = 60'000;    // like PostgreSQL's authentication_timeout
  WriteBatch* batch = nullptr;            // SQL log lines and capture records go here
  StatementMetrics* metrics = nullptr;    // --metrics-listen: every statement counted there
  const LogFilter* log_filter = nullptr;  // --log-user etc.: null = every statement logged
  // --capture-filter-same: the same session patterns decide what the capture
  // keeps, judged on the startup packet; null = every session captured.
  const LogFilter* capture_filter = nullptr;
  pgwire::ParamLogging log_params = pgwire::ParamLogging::kFull;
  pgwire::TrackerOptions tracker;    // --log-max-query-bytes
  std::vector<ProxySession*> dirty;  // sessions with output queued in this poll round
  std::vector<std::byte> scratch;    // one read buffer for the whole loop
  std::vector<std::byte> plain;      // what TLS decrypted of one read
  bool channel_binding_reported = false;
  ProxyStats stats;
};

// One socket write a session wants to make: the whole of its pending output.
struct PendingWrite {
  int fd = -1;
  pgwire::Bytes data;
};

class ProxySession {
 public:
  // `reject_message` non-empty: a connection over --max-connections. Like
  // PostgreSQL, it is refused with ErrorResponse 53300 once its startup packet
  // has arrived (libpq ignores an error sent in answer to SSLRequest), is not
  // logged or captured, and uses no upstream connection; a CancelRequest on
  // it is still forwarded, since cancels matter most when the server is busy.
  ProxySession(SessionContext& ctx, uint64_t id, int client_fd, std::string client_addr,
               std::string reject_message = {});
  ~ProxySession();
  ProxySession(const ProxySession&) = delete;
  ProxySession& operator=(const ProxySession&) = delete;

  // Where a session is in its life, for the loop and for tests.
  enum class Phase : uint8_t {
    kStartup,     // no upstream yet: waiting for the first startup packet
    kForwarding,  // upstream connecting or connected, bytes flow
    kDraining,    // ending: flushing what is pending to the side still alive
    kLinger,      // client write side shut down after our last bytes; waiting for its EOF
    kDone,
  };

  uint64_t id() const { return id_; }
  int client_fd() const { return client_fd_; }
  int server_fd() const { return server_fd_; }
  Phase phase() const { return phase_; }
  bool done() const { return phase_ == Phase::kDone; }
  bool counted() const { return counted_; }  // against --max-connections
  const std::string& close_reason() const { return close_reason_; }
  // Monotonic ms of the next timeout, 0 = none.
  int64_t deadline_ms() const { return deadline_ms_; }
  size_t pending_to_client() const { return to_client_.size(); }
  size_t pending_to_server() const { return to_server_.size() + held_for_server_.size(); }
  bool client_tls() const { return client_tls_ != nullptr; }
  bool server_tls() const { return server_tls_ != nullptr; }
  const pgwire::SessionMonitor& monitor() const { return monitor_; }
  // Counts the server sockets this session opened (one per upstream address
  // tried): a new socket can get the number of the one just closed.
  uint32_t server_sockets() const { return server_sockets_; }

  // What the loop last asked the kernel to wait for on this session's
  // sockets (with epoll, registrations last between rounds), and whether the
  // loop already listed the session to be looked at again this round. The
  // loop's business, kept here so that it lives and dies with the session.
  struct Registration {  // one socket's: its number, the owner key, the events asked for
    int fd = -1;
    uint64_t key = 0;
    short events = 0;
  };
  struct WaitState {
    Registration client;
    Registration server;
    bool touched = false;
  };
  WaitState& wait_state() { return wait_state_; }

  // Poll interest; `throttled` = the writer is behind, read nothing.
  short client_events(bool throttled) const;
  short server_events(bool throttled) const;
  void on_client_event(short revents);
  void on_server_event(short revents);
  void on_timer(int64_t now_ms);

  // Queued output (sessions queue, the proxy sends once per poll round).
  // flush_pending sends it with send(); or the proxy takes the writes from
  // client_write / server_write, makes them itself, and reports each result
  // (bytes written, or errno) to client_written / server_written.
  void flush_pending();
  bool client_write(PendingWrite& w) const;
  bool server_write(PendingWrite& w) const;
  void client_written(size_t written, int err);
  void server_written(size_t written, int err);
  void clear_dirty() { dirty_ = false; }

  // The proxy stops: pending requests are logged with an unknown outcome.
  void abort(std::string_view reason);
  // After SIGHUP the capture file is new: repeat what a reader needs to know.
  void capture_reopened();

 private:
  enum class Upstream : uint8_t {
    kNone,
    kConnecting,
    kNegotiating,  // connected; SSLRequest sent, or the TLS handshake under way
    kConnected,    // ready: the client's bytes flow
    kClosed,
  };

  void read_client();
  void read_server();
  void client_received(pgwire::Bytes raw);
  void server_received(pgwire::Bytes raw);
  void client_data(pgwire::Bytes data, int64_t ts);
  void server_data(pgwire::Bytes data, int64_t ts);
  void server_frames(pgwire::Bytes data, int64_t ts);
  bool refuses_channel_binding_downgrade(const pgwire::Frame& f);
  void start_client_tls(bool direct);
  void client_tls_established();
  void server_answered_ssl(pgwire::Bytes raw);
  void server_tls_established();
  void upstream_ready();
  void on_statement(const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info);
  bool log_session_selected(const pgwire::SessionInfo& info);
  template <class Write>
  void write_csvlog(const Write& write);
  void csvlog_disconnected(int64_t ts);
  void capture_frame(pgwire::Direction dir, const pgwire::Frame& f, int64_t ts);
  void capture(const pgwire::Status& st);
  pgwire::CaptureRecords& cap();  // where this session's capture records go now
  void judge_capture();
  void open_capture_session();
  void answer_encryption_request(const pgwire::Frame& request, int64_t ts);
  void start_upstream();
  void upstream_connected();
  void upstream_failed(int err);
  void upstream_tls_failed(std::string why);

  void send_to_client(pgwire::Bytes b);
  void send_to_server(pgwire::Bytes b);
  void flush_client();
  void flush_server();
  // Writes what it can; returns false on a fatal socket error (errno in err).
  static bool write_some(int fd, OutBuf& buf, int& err, size_t& written);
  void mark_dirty();
  void unmark_dirty();

  void fail_client(std::string_view sqlstate, std::string_view message, std::string reason);
  void protocol_violation(const pgwire::Error& e);
  void client_gone(std::string reason);
  void server_gone(std::string reason);
  void close_server();
  void begin_drain(std::string reason);
  void check_drained();
  void finish(std::string_view reason);
  void stop_analysis(std::string_view why);

  SessionContext& ctx_;
  uint64_t id_;
  std::string client_addr_;
  int client_fd_;
  int server_fd_ = -1;
  Phase phase_ = Phase::kStartup;
  Upstream upstream_ = Upstream::kNone;
  size_t upstream_index_ = 0;  // which resolved address is being tried
  uint32_t server_sockets_ = 0;
  WaitState wait_state_;
  std::string reject_message_;
  bool counted_ = true;
  int8_t log_selected_ = -1;  // --log-user etc., judged at the session's first statement: -1 not yet
  bool analysing_ = true;     // the server's stream is framed (and logged, and captured)
  bool capturing_ = true;
  // --capture-filter-same: the session's records until its startup packet is judged.
  std::optional<pgwire::CaptureRecords> held_capture_;
  bool client_readable_ = true;  // no EOF / error seen
  bool client_writable_ = true;
  bool dirty_ = false;  // listed in ctx_.dirty
  int64_t deadline_ms_ = 0;
  int64_t open_ts_ns_ = 0;
  std::string close_reason_;
  // --log-format csvlog: the session's line numbers, and whether its
  // connection lines went out.
  std::optional<pgwire::CsvlogSession> csvlog_;

  OutBuf to_client_;  // bytes for the client's socket (encrypted when its TLS is on)
  OutBuf to_server_;  // bytes for the server's socket (likewise)
  // What the client sent before the server connection is ready (connected,
  // and TLS set up if any): plaintext, encrypted when it moves to to_server_.
  OutBuf held_for_server_;
  std::unique_ptr<TlsChannel> client_tls_;
  std::unique_ptr<TlsChannel> server_tls_;
  // The server's frames are forwarded one by one (not as read) so that its
  // AuthenticationSASL can go without SCRAM-SHA-256-PLUS; until authentication is over.
  bool framewise_ = false;
  bool plus_removed_ = false;  // the client's SASLInitialResponse is checked
  bool auth_over_ = false;
  pgwire::SessionMonitor monitor_;
  std::vector<std::byte> backend_key_;  // BackendKeyData body, for capture_reopened()
};

}  // namespace pgproxy
