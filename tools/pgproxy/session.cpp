#include "session.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "diag.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/session_monitor.hpp"

namespace pgproxy {

namespace {

constexpr int64_t kStartupTimeoutMs = 60'000;  // like PostgreSQL's authentication_timeout
constexpr int64_t kRejectTimeoutMs = 5'000;    // a refused client gets this long to send its startup packet
constexpr int64_t kConnectTimeoutMs = 10'000;
constexpr int64_t kDrainTimeoutMs = 10'000;  // without progress
constexpr int64_t kLingerTimeoutMs = 2'000;
constexpr size_t kKeepCapacity = size_t{64} * 1024;

void close_fd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

bool is_encryption_request(uint32_t code) {
  return code == pgwire::kSslRequestCode || code == pgwire::kGssEncRequestCode;
}

}  // namespace

// ---------------------------------------------------------------------------

void OutBuf::append(pgwire::Bytes b) {
  if (b.empty()) return;
  if (head_ > 0 && head_ >= data_.size() / 2) {  // compact before growing
    data_.erase(data_.begin(), data_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
  data_.insert(data_.end(), b.begin(), b.end());
}

void OutBuf::consume(size_t n) {
  head_ += n;
  if (head_ >= data_.size()) {
    head_ = 0;
    data_.clear();
    if (data_.capacity() > kKeepCapacity) std::vector<std::byte>().swap(data_);
  }
}

void OutBuf::release() {
  head_ = 0;
  std::vector<std::byte>().swap(data_);
}

// ---------------------------------------------------------------------------

Session::Session(SessionContext& ctx, uint64_t id, int client_fd, std::string client_addr, std::string reject_message)
    : ctx_(ctx),
      id_(id),
      client_addr_(std::move(client_addr)),
      client_fd_(client_fd),
      reject_message_(std::move(reject_message)) {
  open_ts_ns_ = realtime_ns();
  bool reject = !reject_message_.empty();
  deadline_ms_ = monotonic_ms() + (reject ? kRejectTimeoutMs : kStartupTimeoutMs);
  counted_ = !reject;
  capturing_ = ctx_.capture_enabled && !reject;
  tracking_ = !reject;
  if (tracking_) {
    tracker_ = std::make_unique<pgwire::ConnectionTracker>(
        pgwire::TrackerOptions{}, [&ctx = ctx_](const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info) {
          ++ctx.stats.statements;
          if (ctx.log_enabled) {
            pgwire::format_statement(ctx.log_format, ev, info, ctx.batch->log);
            ++ctx.batch->log_lines;
          }
        });
    tracker_->session().session_id = id_;
    tracker_->session().client = client_addr_;
  }
  if (capturing_) open_capture_session();
}

// The session's first records: SessionOpen, and whether the server's frames
// follow (readers track frontend-only sessions differently).
void Session::open_capture_session() {
  ctx_.batch->capture_open(id_, open_ts_ns_, client_addr_, ctx_.upstream_text);
  static constexpr std::byte kYes[] = {std::byte{'1'}};
  static constexpr std::byte kNo[] = {std::byte{'0'}};
  ctx_.batch->capture_meta(id_, open_ts_ns_, pgwire::kMetaCaptureBackend,
                           ctx_.capture_backend ? pgwire::Bytes(kYes) : pgwire::Bytes(kNo));
}

Session::~Session() {
  close_fd(client_fd_);
  close_fd(server_fd_);
}

// --- poll interest ---------------------------------------------------------

short Session::client_events(bool throttled) {
  if (client_fd_ < 0) return 0;
  short ev = 0;
  if (client_writable_ && !to_client_.empty()) ev |= POLLOUT;
  if (to_server_.size() >= kHighWater) client_paused_ = true;
  if (to_server_.size() <= kLowWater) client_paused_ = false;
  switch (phase_) {
    case Phase::kStartup:
    case Phase::kForwarding:
      if (client_readable_ && !client_paused_ && !throttled) ev |= POLLIN;
      break;
    case Phase::kLinger:
      ev |= POLLIN;  // read and discard until EOF
      break;
    case Phase::kDraining:
    case Phase::kDone: break;
  }
  return ev;
}

short Session::server_events(bool throttled) {
  if (server_fd_ < 0) return 0;
  if (upstream_ == Upstream::kConnecting) return POLLOUT;
  short ev = 0;
  if (!to_server_.empty()) ev |= POLLOUT;
  if (to_client_.size() >= kHighWater) server_paused_ = true;
  if (to_client_.size() <= kLowWater) server_paused_ = false;
  if (throttled) return ev;
  if (phase_ == Phase::kForwarding && !server_paused_) ev |= POLLIN;
  // The client is gone: keep reading (and discarding) so a server busy sending
  // cannot block the flush of what the client sent last, and outcomes get logged.
  if (phase_ == Phase::kDraining && !client_writable_) ev |= POLLIN;
  return ev;
}

void Session::on_client_event(short revents) {
  if (revents & POLLOUT) flush_client();
  if (done() || client_fd_ < 0) return;
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    bool reading = phase_ == Phase::kStartup || phase_ == Phase::kForwarding || phase_ == Phase::kLinger;
    if (reading) {
      read_client();
    } else if (revents & (POLLHUP | POLLERR)) {
      client_writable_ = false;
      to_client_.release();
      check_drained();
    }
  }
}

void Session::on_server_event(short revents) {
  if (server_fd_ < 0) return;
  if (upstream_ == Upstream::kConnecting) {
    if (revents & (POLLOUT | POLLERR | POLLHUP)) {
      int err = socket_error(server_fd_);
      if (err == 0) {
        upstream_connected();
      } else {
        close_fd(server_fd_);
        ++upstream_index_;
        upstream_failed(err);
      }
    }
    return;
  }
  if (revents & POLLOUT) flush_server();
  if (done() || server_fd_ < 0) return;
  if (revents & (POLLIN | POLLHUP | POLLERR)) read_server();
}

void Session::on_timer(int64_t now_ms) {
  if (deadline_ms_ == 0 || now_ms < deadline_ms_) return;
  deadline_ms_ = 0;
  switch (phase_) {
    case Phase::kStartup: finish("no startup packet within the timeout"); break;
    case Phase::kForwarding:
      if (upstream_ == Upstream::kConnecting) {
        close_fd(server_fd_);
        ++upstream_index_;
        upstream_failed(ETIMEDOUT);
      }
      break;
    case Phase::kDraining:
      finish(close_reason_.empty() ? "timed out flushing" : close_reason_ + " (flush timed out)");
      break;
    case Phase::kLinger: finish(close_reason_); break;
    case Phase::kDone: break;
  }
}

// --- reading -----------------------------------------------------------------

void Session::read_client() {
  ssize_t n;
  do {
    n = recv(client_fd_, ctx_.scratch.data(), ctx_.scratch.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    int err = errno;
    client_writable_ = false;
    client_gone(fmt::format("client connection error: {}", errno_text(err)));
    return;
  }
  if (n == 0) {
    client_gone("client closed the connection");
    return;
  }
  ctx_.stats.client_bytes += static_cast<uint64_t>(n);
  if (phase_ == Phase::kLinger) return;  // discarded: the session is over
  client_data({ctx_.scratch.data(), static_cast<size_t>(n)}, realtime_ns());
}

void Session::read_server() {
  ssize_t n;
  do {
    n = recv(server_fd_, ctx_.scratch.data(), ctx_.scratch.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    server_gone(fmt::format("server connection error: {}", errno_text(errno)));
    return;
  }
  if (n == 0) {
    server_gone("server closed the connection");
    return;
  }
  ctx_.stats.server_bytes += static_cast<uint64_t>(n);
  server_data({ctx_.scratch.data(), static_cast<size_t>(n)}, realtime_ns());
}

// Frames everything the client sent in this read. Bytes are forwarded as they
// came, except in the startup phase: an SSLRequest / GSSENCRequest is answered
// here and never reaches the server, and the first real startup packet is
// forwarded once the upstream connection is being opened.
void Session::client_data(pgwire::Bytes data, int64_t ts) {
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t forward_from = phase_ == Phase::kStartup ? kNone : 0;
  size_t forward_to = data.size();
  pgwire::Bytes in = data;
  bool failed = false;
  pgwire::Error error{pgwire::Errc::kBadValue, 0, {}};
  while (!in.empty()) {
    size_t pos = data.size() - in.size();
    pgwire::FrameResult r = framer_.next(pgwire::Direction::kFrontend, in);
    if (r.needs_more()) break;
    if (r.failed()) {
      failed = true;
      error = r.error();
      forward_to = pos;
      break;
    }
    const pgwire::Frame& f = r.frame();
    if (f.kind == pgwire::FrameKind::kOpaque) {
      // A direct-TLS ClientHello: the session could not be logged, and the
      // client never falls back to plaintext.
      diag("session {} client {}: direct TLS connection refused (pgproxy only proxies plaintext sessions)", id_,
           client_addr_);
      ++ctx_.stats.errors;
      finish("direct TLS refused");
      return;
    }
    record_frame(pgwire::Direction::kFrontend, f, ts);
    if (f.kind != pgwire::FrameKind::kStartup) continue;
    if (is_encryption_request(f.startup_code())) {
      // Bytes after the request in the same read: the framer fails on them
      // (the client did not wait for the answer); only answer a well-behaved client.
      if (in.empty()) answer_no_encryption(ts);
      continue;
    }
    if (!reject_message_.empty() && f.startup_code() != pgwire::kCancelRequestCode) {
      fail_client("53300", reject_message_, "too many connections");
      return;
    }
    // StartupMessage or CancelRequest: from here on the stream is forwarded.
    pgwire::Buffer packet;
    f.append_header(packet);
    packet.append(f.body);
    to_server_.append(packet.view());
    forward_from = data.size() - in.size();
    start_upstream();
    if (phase_ != Phase::kForwarding) return;  // the upstream failed at once
  }
  if (forward_from != kNone && forward_to > forward_from) {
    send_to_server(data.subspan(forward_from, forward_to - forward_from));
  }
  if (failed && !done()) protocol_violation(error);
}

void Session::server_data(pgwire::Bytes data, int64_t ts) {
  if (tracking_ || capturing_) {
    pgwire::Bytes in = data;
    while (!in.empty()) {
      pgwire::FrameResult r = framer_.next(pgwire::Direction::kBackend, in);
      if (r.needs_more()) break;
      if (r.failed()) {
        // The server is the authority on its own protocol: keep forwarding,
        // stop interpreting this session.
        ++ctx_.stats.errors;
        stop_tracking(r.error().describe());
        break;
      }
      const pgwire::Frame& f = r.frame();
      record_frame(pgwire::Direction::kBackend, f, ts);
      if (f.last) backend_boundary_ = f.offset + f.wire_size();
    }
  }
  if (client_writable_) send_to_client(data);
}

void Session::record_frame(pgwire::Direction dir, const pgwire::Frame& f, int64_t ts) {
  if (tracking_) tracker_->on_frame(dir, f, ts);
  if (!capturing_) return;
  if (dir == pgwire::Direction::kFrontend && ctx_.redact_secrets && f.kind == pgwire::FrameKind::kTyped &&
      f.type == static_cast<uint8_t>(pgwire::FrontendType::kPassword)) {
    // The capture keeps only the header of a password / SASL frame: do not
    // even copy the secret into the writer's queue.
    if (f.first) {
      pgwire::Frame header_only = f;
      header_only.body = {};
      ctx_.batch->capture_frame(id_, ts, dir, header_only);
    }
  } else if (dir == pgwire::Direction::kFrontend || ctx_.capture_backend || f.kind == pgwire::FrameKind::kAnswer) {
    // The one-byte answer to an SSLRequest / GSSENCRequest is always kept:
    // without it a reader cannot tell where the client's startup continues.
    ctx_.batch->capture_frame(id_, ts, dir, f);
  }
  if (dir == pgwire::Direction::kBackend && f.kind == pgwire::FrameKind::kTyped &&
      f.type == static_cast<uint8_t>(pgwire::BackendType::kBackendKeyData) && f.whole()) {
    backend_key_.assign(f.body.begin(), f.body.end());
    ctx_.batch->capture_meta(id_, ts, "backend_key_data", f.body);
  }
}

// The proxy keeps sessions plaintext (so it can log them): it answers 'N' to
// SSLRequest and GSSENCRequest itself. The framer of the server direction is
// fed the same byte, so both directions continue as after a real answer.
void Session::answer_no_encryption(int64_t ts) {
  static constexpr std::byte kNo[] = {std::byte{'N'}};
  pgwire::Bytes answer = kNo;
  pgwire::FrameResult r = framer_.next(pgwire::Direction::kBackend, answer);
  if (r.has_frame()) {
    record_frame(pgwire::Direction::kBackend, r.frame(), ts);
    backend_boundary_ = r.frame().offset + 1;
  }
  send_to_client(kNo);
}

void Session::stop_tracking(std::string_view why) {
  diag("session {} client {}: cannot frame the server's stream ({}); still forwarding, no longer logging it", id_,
       client_addr_, why);
  if (tracking_) tracker_->on_close(realtime_ns());
  tracking_ = false;
  capturing_ = false;  // frames stop; the close record still goes out
  if (ctx_.capture_enabled) ctx_.batch->capture_close(id_, realtime_ns(), fmt::format("analysis stopped: {}", why));
}

// --- upstream connection ----------------------------------------------------

void Session::start_upstream() {
  phase_ = Phase::kForwarding;
  upstream_index_ = 0;
  upstream_failed(0);  // "failed" with nothing tried yet: tries the first address
}

// Tries the next resolved upstream address; `err` is why the previous one failed.
void Session::upstream_failed(int err) {
  while (upstream_index_ < ctx_.upstream.size()) {
    bool in_progress = false;
    int e = 0;
    int fd = connect_nonblocking(ctx_.upstream[upstream_index_], in_progress, e);
    if (fd >= 0) {
      server_fd_ = fd;
      if (in_progress) {
        upstream_ = Upstream::kConnecting;
        deadline_ms_ = monotonic_ms() + kConnectTimeoutMs;
      } else {
        upstream_connected();
      }
      return;
    }
    err = e;
    ++upstream_index_;
  }
  upstream_ = Upstream::kClosed;
  to_server_.release();
  ++ctx_.stats.errors;
  std::string why = errno_text(err);
  diag("session {} client {}: cannot connect to the server {}: {}", id_, client_addr_, ctx_.upstream_text, why);
  if (phase_ == Phase::kDraining) {  // the client is gone already
    check_drained();
    return;
  }
  fail_client("08006", fmt::format("pgproxy could not connect to the server {}: {}", ctx_.upstream_text, why),
              fmt::format("upstream connection failed: {}", why));
}

void Session::upstream_connected() {
  upstream_ = Upstream::kConnected;
  if (phase_ == Phase::kForwarding) deadline_ms_ = 0;
  flush_server();
}

// --- writing -----------------------------------------------------------------

bool Session::write_some(int fd, OutBuf& buf, int& err, size_t& written) {
  written = 0;
  pgwire::Bytes data = buf.view();
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      err = errno;
      return false;
    }
    written += static_cast<size_t>(n);
    data = data.subspan(static_cast<size_t>(n));
  }
  return true;
}

// Output is queued, not sent: the proxy sends for every session it touched in
// one go once the events of a poll() are handled (see SendBatch), so one
// wake-up's worth of responses costs one system call where io_uring is there.
void Session::send_to_client(pgwire::Bytes b) {
  if (b.empty() || !client_writable_) return;
  to_client_.append(b);
  mark_dirty();
}

void Session::send_to_server(pgwire::Bytes b) {
  if (b.empty() || upstream_ == Upstream::kClosed) return;
  to_server_.append(b);
  if (upstream_ == Upstream::kConnected) mark_dirty();
}

void Session::mark_dirty() {
  if (dirty_) return;
  dirty_ = true;
  ctx_.dirty.push_back(this);
}

bool Session::client_write(PendingWrite& w) const {
  if (!client_writable_ || client_fd_ < 0 || to_client_.empty()) return false;
  w = {client_fd_, to_client_.view()};
  return true;
}

bool Session::server_write(PendingWrite& w) const {
  if (upstream_ != Upstream::kConnected || server_fd_ < 0 || to_server_.empty()) return false;
  w = {server_fd_, to_server_.view()};
  return true;
}

void Session::flush_pending() {
  dirty_ = false;
  if (done()) return;
  flush_server();
  if (!done()) flush_client();
}

void Session::flush_client() {
  if (!client_writable_ || to_client_.empty()) return;
  int err = 0;
  size_t written = 0;
  bool ok = write_some(client_fd_, to_client_, err, written);
  client_written(written, ok ? 0 : err);
}

void Session::client_written(size_t written, int err) {
  if (done() || !client_writable_) return;
  to_client_.consume(written);
  if (err != 0) {
    client_writable_ = false;
    to_client_.release();
    client_gone(fmt::format("client connection error: {}", errno_text(err)));
    return;
  }
  if (phase_ == Phase::kDraining) {
    if (written > 0) deadline_ms_ = monotonic_ms() + kDrainTimeoutMs;
    check_drained();
  }
}

void Session::flush_server() {
  if (upstream_ != Upstream::kConnected || to_server_.empty()) {
    if (phase_ == Phase::kDraining) check_drained();
    return;
  }
  int err = 0;
  size_t written = 0;
  bool ok = write_some(server_fd_, to_server_, err, written);
  server_written(written, ok ? 0 : err);
}

void Session::server_written(size_t written, int err) {
  if (done() || upstream_ != Upstream::kConnected) return;
  to_server_.consume(written);
  if (err != 0) {
    server_gone(fmt::format("server connection error: {}", errno_text(err)));
    return;
  }
  if (phase_ == Phase::kDraining) {
    if (written > 0) deadline_ms_ = monotonic_ms() + kDrainTimeoutMs;
    check_drained();
  }
}

// --- ending ------------------------------------------------------------------

// An ErrorResponse of our own can only go between two whole server messages.
bool Session::can_send_error() {
  const pgwire::Framer& be = framer_.backend();
  return client_writable_ && client_fd_ >= 0 && !be.failed() && !be.encrypted() && be.offset() == backend_boundary_;
}

void Session::fail_client(std::string_view sqlstate, std::string_view message, std::string reason) {
  if (can_send_error()) {
    pgwire::be::ErrorResponse err;
    err.fields = {{'S', "FATAL"}, {'V', "FATAL"}, {'C', sqlstate}, {'M', message}};
    pgwire::Buffer out;
    err.encode(out);
    send_to_client(out.view());
  }
  close_server();
  begin_drain(std::move(reason));
}

void Session::protocol_violation(const pgwire::Error& e) {
  ++ctx_.stats.errors;
  diag("session {} client {}: protocol violation, closing the connection: {}", id_, client_addr_, e.describe());
  fail_client("08P01", fmt::format("protocol violation: {}", e.message),
              fmt::format("protocol violation: {}", e.describe()));
}

void Session::client_gone(std::string reason) {
  // Whatever was still owed to the client cannot matter any more.
  client_readable_ = false;
  client_writable_ = false;
  to_client_.release();
  if (phase_ == Phase::kStartup || phase_ == Phase::kLinger) {
    finish(close_reason_.empty() ? reason : close_reason_);
    return;
  }
  begin_drain(std::move(reason));
}

void Session::server_gone(std::string reason) {
  close_server();
  if (phase_ == Phase::kDraining || phase_ == Phase::kLinger) {
    check_drained();
    return;
  }
  begin_drain(std::move(reason));
}

void Session::close_server() {
  close_fd(server_fd_);
  to_server_.release();
  if (upstream_ != Upstream::kNone) upstream_ = Upstream::kClosed;
}

void Session::begin_drain(std::string reason) {
  if (phase_ == Phase::kDone) return;
  if (phase_ != Phase::kDraining && phase_ != Phase::kLinger) {
    if (close_reason_.empty()) close_reason_ = std::move(reason);
    phase_ = Phase::kDraining;
    deadline_ms_ = monotonic_ms() + kDrainTimeoutMs;
  }
  check_drained();
}

// Ends the session once nothing is left to flush: toward a server still
// connected (or connecting) and toward a client still there.
void Session::check_drained() {
  if (phase_ == Phase::kDone) return;
  bool server_pending =
      (upstream_ == Upstream::kConnecting || upstream_ == Upstream::kConnected) && !to_server_.empty();
  bool client_pending = client_writable_ && !to_client_.empty();
  if (server_pending || client_pending) return;
  if (phase_ == Phase::kLinger) return;
  if (client_writable_ && client_readable_ && client_fd_ >= 0) {
    // Half-close and wait for the client to close: closing with unread input
    // would reset the connection and could destroy our last bytes in flight.
    close_server();
    if (shutdown(client_fd_, SHUT_WR) == 0) {
      phase_ = Phase::kLinger;
      deadline_ms_ = monotonic_ms() + kLingerTimeoutMs;
      return;
    }
  }
  finish(close_reason_);
}

void Session::finish(std::string_view reason) {
  if (phase_ == Phase::kDone) return;
  int64_t ts = realtime_ns();
  if (tracking_) tracker_->on_close(ts);
  if (capturing_) ctx_.batch->capture_close(id_, ts, reason);
  close_fd(client_fd_);
  close_server();
  to_client_.release();
  phase_ = Phase::kDone;
  deadline_ms_ = 0;
  tracker_.reset();
}

void Session::abort(std::string_view reason) { finish(reason); }

void Session::capture_reopened() {
  if (!capturing_ || done()) return;
  open_capture_session();
  if (!backend_key_.empty()) {
    ctx_.batch->capture_meta(id_, realtime_ns(), "backend_key_data", {backend_key_.data(), backend_key_.size()});
  }
}

}  // namespace pgproxy
