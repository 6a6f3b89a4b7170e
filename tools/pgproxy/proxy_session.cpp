#include "proxy_session.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "diag.hpp"
#include "log_filter.hpp"
#include "metrics.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/system.hpp"

namespace pgproxy {

namespace {

constexpr int64_t kRejectTimeoutMs = 5'000;  // a refused client gets this long to send its startup packet
constexpr int64_t kConnectTimeoutMs = 10'000;
constexpr int64_t kDrainTimeoutMs = 10'000;  // without progress
constexpr int64_t kLingerTimeoutMs = 2'000;
void close_fd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

}  // namespace

ProxySession::ProxySession(SessionContext& ctx, uint64_t id, int client_fd, std::string client_addr,
                           std::string reject_message)
    : ctx_(ctx),
      id_(id),
      client_addr_(std::move(client_addr)),
      client_fd_(client_fd),
      reject_message_(std::move(reject_message)),
      monitor_(ctx.tracker,
               [this](const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info) { on_statement(ev, info); }) {
  open_ts_ns_ = pgwire::realtime_ns();
  bool reject = !reject_message_.empty();
  deadline_ms_ = pgwire::monotonic_ms() + (reject ? kRejectTimeoutMs : ctx_.startup_timeout_ms);
  counted_ = !reject;
  capturing_ = ctx_.capture_enabled && !reject;
  pgwire::SessionInfo& info = monitor_.tracker().session();
  info.session_id = id_;
  info.client = client_addr_;
  if (reject) monitor_.stop_tracking(open_ts_ns_);  // framed (for a CancelRequest), never logged
  if (!reject && ctx_.log_enabled && ctx_.log_format == pgwire::LogFormat::kCsvlog) {
    csvlog_.emplace(open_ts_ns_);
    monitor_.tracker().set_ready_sink([this](const pgwire::SessionInfo& s, int64_t) {
      if (log_session_selected(s)) write_csvlog([&](std::string& out) { csvlog_->connected(s, out); });
    });
  }
  // --capture-filter-same: the records wait here until the startup packet
  // tells whether the --log-* patterns select the session.
  if (capturing_ && ctx_.capture_filter != nullptr) held_capture_.emplace(ctx_.batch->capture.redact_secrets());
  if (capturing_) open_capture_session();
}

pgwire::CaptureRecords& ProxySession::cap() { return held_capture_ ? *held_capture_ : ctx_.batch->capture; }

// The startup packet went by: the session's held records go to the capture,
// or the session is left out of it.
void ProxySession::judge_capture() {
  if (!held_capture_ || monitor_.tracker().session().protocol == 0) return;
  if (ctx_.capture_filter->session_selected(monitor_.tracker().session())) {
    ctx_.batch->capture.append(*held_capture_);
  } else {
    capturing_ = false;
    ++ctx_.stats.not_captured_sessions;
  }
  held_capture_.reset();
}

bool ProxySession::log_session_selected(const pgwire::SessionInfo& info) {
  if (ctx_.log_filter == nullptr) return true;
  if (log_selected_ < 0) log_selected_ = ctx_.log_filter->session_selected(info) ? 1 : 0;
  return log_selected_ == 1;
}

// A csvlog record may hold newlines (those of the SQL, in a quoted field):
// the writer counts lines as it finds them, so they are counted the same way.
template <class Write>
void ProxySession::write_csvlog(const Write& write) {
  std::string& log = ctx_.batch->log;
  const size_t from = log.size();
  write(log);
  ctx_.batch->log_lines +=
      static_cast<uint64_t>(std::count(log.begin() + static_cast<std::ptrdiff_t>(from), log.end(), '\n'));
}

// The session's end as the csvlog shows it, where its capture shows it (a
// SessionClose record): pgdump-log writes the same line from that record.
void ProxySession::csvlog_disconnected(int64_t ts) {
  if (!csvlog_ || !log_session_selected(monitor_.tracker().session())) return;
  write_csvlog([&](std::string& out) { csvlog_->disconnected(monitor_.tracker().session(), ts, out); });
}

void ProxySession::on_statement(const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info) {
  ++ctx_.stats.statements;
  if (ctx_.metrics != nullptr) ctx_.metrics->record(ev);
  if (!ctx_.log_enabled) return;
  if (ctx_.log_filter != nullptr) {
    if (!log_session_selected(info)) {
      ++ctx_.stats.not_logged_session;
      return;
    }
    if (!ctx_.log_filter->statement_selected(ev)) {
      ++ctx_.stats.not_logged_duration;
      return;
    }
  }
  if (csvlog_) {
    write_csvlog([&](std::string& out) { csvlog_->statement(ev, info, out, ctx_.log_params); });
    return;
  }
  pgwire::format_statement(ctx_.log_format, ev, info, ctx_.batch->log, ctx_.log_params);
  ++ctx_.batch->log_lines;
}

// A capture record could not be encoded (a string longer than its field):
// counted and reported, never a reason to stop proxying.
void ProxySession::capture(const pgwire::Status& st) {
  if (st) return;
  ++ctx_.stats.errors;
  diag("session {} client {}: capture record left out: {}", id_, client_addr_, st.error().describe());
}

// The session's first records: SessionOpen, and whether the server's frames
// follow (readers track frontend-only sessions differently).
void ProxySession::open_capture_session() {
  capture(cap().session_open(id_, open_ts_ns_, client_addr_, ctx_.upstream_text));
  static constexpr std::byte kYes[] = {std::byte{'1'}};
  static constexpr std::byte kNo[] = {std::byte{'0'}};
  capture(cap().session_meta(id_, open_ts_ns_, pgwire::kMetaCaptureBackend,
                             ctx_.capture_backend ? pgwire::Bytes(kYes) : pgwire::Bytes(kNo)));
}

ProxySession::~ProxySession() {
  unmark_dirty();
  close_fd(client_fd_);
  close_fd(server_fd_);
}

// --- poll interest ---------------------------------------------------------

short ProxySession::client_events(bool throttled) const {
  if (client_fd_ < 0) return 0;
  short ev = 0;
  if (client_writable_ && !to_client_.empty()) ev |= POLLOUT;
  switch (phase_) {
    case Phase::kStartup:
    case Phase::kForwarding:
      if (client_readable_ && !to_server_.full() && !held_for_server_.full() && !throttled) ev |= POLLIN;
      break;
    case Phase::kLinger:
      ev |= POLLIN;  // read and discard until EOF
      break;
    case Phase::kDraining:
    case Phase::kDone: break;
  }
  return ev;
}

short ProxySession::server_events(bool throttled) const {
  if (server_fd_ < 0) return 0;
  if (upstream_ == Upstream::kConnecting) return POLLOUT;
  short ev = 0;
  if (!to_server_.empty()) ev |= POLLOUT;
  if (throttled) return ev;
  if (phase_ == Phase::kForwarding && !to_client_.full()) ev |= POLLIN;
  // The client is gone: keep reading (and discarding) so a server busy sending
  // cannot block the flush of what the client sent last, and outcomes get logged.
  if (phase_ == Phase::kDraining && !client_writable_) ev |= POLLIN;
  return ev;
}

void ProxySession::on_client_event(short revents) {
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

void ProxySession::on_server_event(short revents) {
  if (server_fd_ < 0) return;
  if (upstream_ == Upstream::kConnecting) {
    if (revents & (POLLOUT | POLLERR | POLLHUP)) {
      int err = pgwire::socket_error(server_fd_);
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

void ProxySession::on_timer(int64_t now_ms) {
  if (deadline_ms_ == 0 || now_ms < deadline_ms_) return;
  deadline_ms_ = 0;
  switch (phase_) {
    case Phase::kStartup: finish("no startup packet within the timeout"); break;
    case Phase::kForwarding:
      if (upstream_ == Upstream::kConnecting) {
        close_fd(server_fd_);
        ++upstream_index_;
        upstream_failed(ETIMEDOUT);
      } else if (upstream_ == Upstream::kNegotiating) {
        upstream_tls_failed("timed out");
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

void ProxySession::read_client() {
  ssize_t n;
  do {
    n = recv(client_fd_, ctx_.scratch.data(), ctx_.scratch.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    int err = errno;
    client_writable_ = false;
    client_gone(fmt::format("client connection error: {}", pgwire::errno_text(err)));
    return;
  }
  if (n == 0) {
    client_gone("client closed the connection");
    return;
  }
  ctx_.stats.client_bytes += static_cast<uint64_t>(n);
  if (phase_ == Phase::kLinger) return;  // discarded: the session is over
  client_received({ctx_.scratch.data(), static_cast<size_t>(n)});
}

void ProxySession::read_server() {
  ssize_t n;
  do {
    n = recv(server_fd_, ctx_.scratch.data(), ctx_.scratch.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    server_gone(fmt::format("server connection error: {}", pgwire::errno_text(errno)));
    return;
  }
  if (n == 0) {
    server_gone("server closed the connection");
    return;
  }
  ctx_.stats.server_bytes += static_cast<uint64_t>(n);
  server_received({ctx_.scratch.data(), static_cast<size_t>(n)});
}

// --- TLS ---------------------------------------------------------------------

// Bytes from the client's socket: decrypted first when its TLS is on. A
// connection that opens with a TLS ClientHello (direct TLS, PostgreSQL 17's
// sslnegotiation=direct) is taken as such when TLS is configured.
void ProxySession::client_received(pgwire::Bytes raw) {
  const int64_t ts = pgwire::realtime_ns();
  if (!client_tls_ && ctx_.client_tls && phase_ == Phase::kStartup && monitor_.framer().frontend().offset() == 0 &&
      std::to_integer<uint8_t>(raw[0]) == pgwire::kTlsHandshakeByte) {
    start_client_tls(true);
  }
  if (!client_tls_) {
    client_data(raw, ts);
    return;
  }
  size_t plain = 0;
  bool ok = client_tls_->receive(raw, ctx_.plain, plain, to_client_);
  if (!to_client_.empty()) mark_dirty();
  if (!ok) {
    ++ctx_.stats.tls_failures;
    ++ctx_.stats.errors;
    diag("session {} client {}: {}", id_, client_addr_, client_tls_->error());
    // What OpenSSL queued (an alert) still goes out; then the session ends.
    client_readable_ = false;
    begin_drain(client_tls_->error());
    return;
  }
  if (client_tls_->take_handshake_done()) client_tls_established();
  if (done()) return;
  if (plain > 0) client_data({ctx_.plain.data(), plain}, ts);
  if (!done() && client_tls_->state() == TlsChannel::State::kClosed) client_gone("client closed the TLS connection");
}

void ProxySession::start_client_tls(bool direct) {
  std::string error;
  client_tls_ = TlsChannel::make(ctx_.client_tls, {}, direct, error);
  if (!client_tls_) {
    ++ctx_.stats.errors;
    diag("session {} client {}: {}", id_, client_addr_, error);
    finish(error);
  }
}

// The client's handshake is done: the decrypted stream goes on from its
// startup packet, and the capture says so before its first decrypted frame.
void ProxySession::client_tls_established() {
  ++ctx_.stats.tls_clients;
  const int64_t ts = pgwire::realtime_ns();
  std::string what = client_tls_->describe();
  if (monitor_.framer().frontend().offset() == 0) what += " direct";
  monitor_.tls_terminated();
  monitor_.tracker().session().client_tls = what;
  if (capturing_) {
    capture(cap().session_meta(id_, ts, pgwire::kMetaClientTls,
                               {reinterpret_cast<const std::byte*>(what.data()), what.size()}));
  }
}

// Bytes from the server's socket: its answer to our SSLRequest, then the
// handshake, then records to decrypt.
void ProxySession::server_received(pgwire::Bytes raw) {
  if (upstream_ == Upstream::kNegotiating && !server_tls_) {
    server_answered_ssl(raw);
    return;
  }
  if (!server_tls_) {
    server_data(raw, pgwire::realtime_ns());
    return;
  }
  const int64_t ts = pgwire::realtime_ns();
  size_t plain = 0;
  bool ok = server_tls_->receive(raw, ctx_.plain, plain, to_server_);
  if (!to_server_.empty()) mark_dirty();
  if (!ok) {
    if (upstream_ == Upstream::kNegotiating) {
      upstream_tls_failed(server_tls_->error());
    } else {
      server_gone(server_tls_->error());
    }
    return;
  }
  if (server_tls_->take_handshake_done()) server_tls_established();
  if (done()) return;
  if (plain > 0) server_data({ctx_.plain.data(), plain}, ts);
  if (!done() && server_tls_->state() == TlsChannel::State::kClosed) server_gone("server closed the TLS connection");
}

void ProxySession::server_answered_ssl(pgwire::Bytes raw) {
  const char answer = static_cast<char>(raw[0]);
  if (answer == 'S') {
    if (raw.size() > 1) {  // CVE-2021-23222: nothing may come before the handshake
      upstream_tls_failed("the server sent unencrypted bytes after its answer to SSLRequest");
      return;
    }
    std::string error;
    server_tls_ = TlsChannel::make(ctx_.server_tls, ctx_.upstream_host, false, error);
    if (!server_tls_ || !server_tls_->start(to_server_)) {
      upstream_tls_failed(server_tls_ ? server_tls_->error() : error);
      return;
    }
    mark_dirty();
    return;
  }
  if (answer == 'N' && ctx_.upstream_sslmode == UpstreamSslMode::kPrefer) {
    static constexpr std::string_view kNone = "none";
    monitor_.tracker().session().server_tls = std::string(kNone);
    if (capturing_) {
      capture(cap().session_meta(id_, pgwire::realtime_ns(), pgwire::kMetaServerTls,
                                 {reinterpret_cast<const std::byte*>(kNone.data()), kNone.size()}));
    }
    if (raw.size() > 1) {
      upstream_tls_failed("the server sent more than its answer to SSLRequest");
      return;
    }
    upstream_ready();
    return;
  }
  upstream_tls_failed(answer == 'N' ? fmt::format("the server does not accept TLS, and --upstream-sslmode is {}",
                                                  upstream_sslmode_name(ctx_.upstream_sslmode))
                                    : fmt::format("the server answered SSLRequest with byte 0x{:02x}, not S or N",
                                                  static_cast<uint8_t>(answer)));
}

void ProxySession::server_tls_established() {
  ++ctx_.stats.tls_servers;
  std::string what = server_tls_->describe();
  monitor_.tracker().session().server_tls = what;
  if (capturing_) {
    capture(cap().session_meta(id_, pgwire::realtime_ns(), pgwire::kMetaServerTls,
                               {reinterpret_cast<const std::byte*>(what.data()), what.size()}));
  }
  // A client's SCRAM channel binding hashes the certificate it sees, which
  // is the server's only when pgproxy presents that same certificate.
  // The certificate this session's client saw: a SIGHUP since may have replaced ctx_.client_tls.
  X509* ours = client_tls_ ? client_tls_->context().certificate() : nullptr;
  framewise_ = !(client_tls_ && ours != nullptr && server_tls_->peer_certificate_is(ours));
  upstream_ready();
}

void ProxySession::upstream_tls_failed(std::string why) {
  ++ctx_.stats.tls_failures;
  ++ctx_.stats.errors;
  diag("session {} client {}: no TLS connection to the server {}: {}", id_, client_addr_, ctx_.upstream_text, why);
  if (phase_ == Phase::kDraining) {
    close_server();
    check_drained();
    return;
  }
  fail_client("08001",
              fmt::format("pgproxy could not open a TLS connection to the server {}: {}", ctx_.upstream_text, why),
              fmt::format("server TLS failed: {}", why));
}

// While authentication is under way and channel binding cannot pass (see
// server_tls_established), the server's frames are forwarded one by one, so
// that AuthenticationSASL can be sent on without SCRAM-SHA-256-PLUS: a
// client that prefers channel binding then does without, one that requires it
// stops with libpq's own message. Frames the framer holds incomplete stay
// there until whole; once authentication is over and nothing is held, the
// server's bytes are forwarded as read again.
void ProxySession::server_frames(pgwire::Bytes data, int64_t ts) {
  pgwire::Buffer out;
  pgwire::Bytes in = data;
  while (!in.empty()) {
    pgwire::FrameResult r = monitor_.next(pgwire::Direction::kBackend, in, ts);
    if (r.needs_more()) break;
    if (r.failed()) {
      ++ctx_.stats.errors;
      server_gone(fmt::format("cannot frame the server's authentication: {}", r.error().describe()));
      return;
    }
    pgwire::Frame f = r.frame();
    pgwire::Buffer rewritten;
    if (f.kind == pgwire::FrameKind::kTyped && f.type == 'R' && f.whole()) {
      auto auth = pgwire::be::Authentication::decode(f.body, f.offset);
      if (auth && auth->code == static_cast<int32_t>(pgwire::AuthCode::kSasl)) {
        pgwire::be::Authentication without = *auth;
        std::erase(without.mechanisms, std::string_view("SCRAM-SHA-256-PLUS"));
        if (without.mechanisms.size() != auth->mechanisms.size()) {
          without.encode(rewritten);
          f.length = static_cast<uint32_t>(rewritten.size() - 1);
          f.body = rewritten.view().subspan(5);
          plus_removed_ = true;
          ++ctx_.stats.channel_binding_removed;
          if (!ctx_.channel_binding_reported) {
            ctx_.channel_binding_reported = true;
            diag(
                "session {} client {}: SCRAM-SHA-256-PLUS removed from the server's mechanisms: channel binding "
                "cannot pass through pgproxy's TLS (the client sees pgproxy's certificate, not the server's); "
                "stats count the next ones (channel_binding_removed)",
                id_, client_addr_);
          }
        }
      } else if (auth && auth->code == static_cast<int32_t>(pgwire::AuthCode::kOk)) {
        auth_over_ = true;
      }
    } else if (f.kind == pgwire::FrameKind::kTyped && f.type != 'R') {
      auth_over_ = true;  // an error, or the session's first messages
    }
    capture_frame(pgwire::Direction::kBackend, f, ts);
    if (f.first) f.append_header(out);
    out.append(f.body);
  }
  if (client_writable_) send_to_client(out.view());
  if (auth_over_ && monitor_.at_backend_boundary()) framewise_ = false;
}

// A client that prefers channel binding, on TLS, seeing no SCRAM-SHA-256-PLUS
// says so in its SASLInitialResponse (gs2 flag 'y'); PostgreSQL, on TLS too,
// takes that for a downgrade attack and refuses with a message that does not
// say what happened. pgproxy says it instead.
bool ProxySession::refuses_channel_binding_downgrade(const pgwire::Frame& f) {
  if (!plus_removed_ || f.kind != pgwire::FrameKind::kTyped || f.type != 'p' || !f.whole()) return false;
  plus_removed_ = false;  // only the first 'p' after the list is the initial response
  auto init = pgwire::fe::SaslInitialResponse::decode(f.body, f.offset);
  if (!init || !init->data || init->data->empty() || static_cast<char>((*init->data)[0]) != 'y') return false;
  ++ctx_.stats.errors;
  diag(
      "session {} client {}: refused: the client uses channel_binding=prefer over TLS and the server leg is TLS "
      "too; PostgreSQL would take the missing channel binding for a downgrade attack",
      id_, client_addr_);
  fail_client("08P01",
              "pgproxy: SCRAM channel binding cannot pass through pgproxy, which terminates TLS with its own "
              "certificate; connect with channel_binding=disable, or give pgproxy the server's certificate and key "
              "(--tls-cert/--tls-key), or use --upstream-sslmode disable",
              "channel binding refused");
  return true;
}

// Frames everything the client sent in this read. Bytes are forwarded as they
// came, except in the startup phase: an SSLRequest / GSSENCRequest is answered
// here and never reaches the server, and the first real startup packet is
// forwarded once the upstream connection is being opened.
void ProxySession::client_data(pgwire::Bytes data, int64_t ts) {
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t forward_from = phase_ == Phase::kStartup ? kNone : 0;
  size_t forward_to = data.size();
  pgwire::Bytes in = data;
  bool failed = false;
  pgwire::Error error{pgwire::Errc::kBadValue, 0, {}};
  while (!in.empty()) {
    size_t pos = data.size() - in.size();
    pgwire::FrameResult r = monitor_.next(pgwire::Direction::kFrontend, in, ts);
    if (r.needs_more()) break;
    if (r.failed()) {
      failed = true;
      error = r.error();
      forward_to = pos;
      break;
    }
    const pgwire::Frame& f = r.frame();
    if (f.kind == pgwire::FrameKind::kOpaque) {
      // A direct-TLS ClientHello without --tls-cert: the session could not be
      // logged, and the client never falls back to plaintext.
      diag("session {} client {}: direct TLS connection refused (pgproxy runs without --tls-cert)", id_, client_addr_);
      ++ctx_.stats.errors;
      finish("direct TLS refused");
      return;
    }
    if (refuses_channel_binding_downgrade(f)) return;
    capture_frame(pgwire::Direction::kFrontend, f, ts);
    const pgwire::StartupRequest request = pgwire::startup_request(f);
    if (request == pgwire::StartupRequest::kNone) continue;
    if (request == pgwire::StartupRequest::kEncryption) {
      if (client_tls_) {  // inside TLS already: as PostgreSQL, a protocol violation
        failed = true;
        error = pgwire::Error{pgwire::Errc::kUnexpected, f.offset, "encryption request inside a TLS connection"};
        forward_to = pos;
        break;
      }
      // Bytes after the request in the same read: the framer fails on them
      // (the client did not wait for the answer); only answer a well-behaved client.
      if (in.empty()) answer_encryption_request(f, ts);
      if (done()) return;
      continue;
    }
    if (request == pgwire::StartupRequest::kStartup && client_tls_ &&
        ctx_.client_tls->client_verify() == ClientVerify::kVerifyFull) {
      const std::string& user = monitor_.tracker().session().user;
      std::string cn = client_tls_->peer_common_name();
      if (cn != user) {
        ++ctx_.stats.errors;
        diag("session {} client {}: certificate CN \"{}\" is not the user \"{}\" (--tls-client-verify verify-full)",
             id_, client_addr_, cn, user);
        fail_client("28000", fmt::format("certificate authentication failed for user \"{}\"", user),
                    "client certificate does not match the user");
        return;
      }
    }
    if (!reject_message_.empty() && request != pgwire::StartupRequest::kCancel) {
      fail_client("53300", reject_message_, "too many connections");
      return;
    }
    // StartupMessage or CancelRequest: from here on the stream is forwarded.
    pgwire::Buffer packet;
    f.append_header(packet);
    packet.append(f.body);
    held_for_server_.append(packet.view());
    forward_from = data.size() - in.size();
    start_upstream();
    if (phase_ != Phase::kForwarding) return;  // the upstream failed at once
  }
  if (forward_from != kNone && forward_to > forward_from) {
    send_to_server(data.subspan(forward_from, forward_to - forward_from));
  }
  if (failed && !done()) protocol_violation(error);
}

void ProxySession::server_data(pgwire::Bytes data, int64_t ts) {
  if (framewise_ && analysing_) {
    server_frames(data, ts);
    return;
  }
  pgwire::Bytes in = data;
  while (analysing_ && !in.empty()) {
    pgwire::FrameResult r = monitor_.next(pgwire::Direction::kBackend, in, ts);
    if (r.needs_more()) break;
    if (r.failed()) {
      // The server is the authority on its own protocol: keep forwarding,
      // stop interpreting this session.
      ++ctx_.stats.errors;
      stop_analysis(r.error().describe());
      break;
    }
    capture_frame(pgwire::Direction::kBackend, r.frame(), ts);
  }
  if (client_writable_) send_to_client(data);
}

void ProxySession::capture_frame(pgwire::Direction dir, const pgwire::Frame& f, int64_t ts) {
  if (!capturing_) return;
  // Backend frames only with --capture-backend; but the one-byte answer to
  // an SSLRequest / GSSENCRequest always: without it a reader cannot tell
  // where the client's startup continues. Password and SASL frames are
  // redacted by the encoder (header only) unless --capture-secrets.
  if (dir == pgwire::Direction::kFrontend || ctx_.capture_backend || f.kind == pgwire::FrameKind::kAnswer) {
    capture(cap().frame(id_, ts, dir, f));
  }
  if (held_capture_ && dir == pgwire::Direction::kFrontend) judge_capture();
  if (dir == pgwire::Direction::kBackend && f.kind == pgwire::FrameKind::kTyped &&
      f.type == static_cast<uint8_t>(pgwire::BackendType::kBackendKeyData) && f.whole()) {
    backend_key_.assign(f.body.begin(), f.body.end());
    capture(cap().session_meta(id_, ts, pgwire::kMetaBackendKeyData, f.body));
  }
}

// The proxy answers encryption requests itself, so it can log the session:
// 'S' to an SSLRequest when it has a certificate (it terminates the TLS),
// 'N' otherwise and to every GSSENCRequest (the client goes on in plaintext).
void ProxySession::answer_encryption_request(const pgwire::Frame& request, int64_t ts) {
  const bool tls = ctx_.client_tls && request.startup_code() == pgwire::kSslRequestCode;
  const char answer = tls ? pgwire::kEncryptionAccepted : pgwire::kEncryptionRefused;
  pgwire::FrameResult r = monitor_.answer_locally(answer, ts);
  if (!r.has_frame()) return;  // cannot happen: the framer just returned the request
  capture_frame(pgwire::Direction::kBackend, r.frame(), ts);
  const std::byte byte{static_cast<uint8_t>(answer)};
  send_to_client({&byte, 1});  // before the channel exists: the answer is plaintext
  if (tls) start_client_tls(false);
}

void ProxySession::stop_analysis(std::string_view why) {
  diag("session {} client {}: cannot frame the server's stream ({}); still forwarding, no longer logging it", id_,
       client_addr_, why);
  const int64_t ts = pgwire::realtime_ns();
  monitor_.stop_tracking(ts);
  analysing_ = false;
  csvlog_disconnected(ts);
  if (capturing_) capture(cap().session_close(id_, ts, fmt::format("analysis stopped: {}", why)));
  capturing_ = false;  // frames stop; the close record went out now
}

// --- upstream connection ----------------------------------------------------

void ProxySession::start_upstream() {
  phase_ = Phase::kForwarding;
  upstream_index_ = 0;
  upstream_failed(0);  // "failed" with nothing tried yet: tries the first address
}

// Tries the next resolved upstream address; `err` is why the previous one failed.
void ProxySession::upstream_failed(int err) {
  while (upstream_index_ < ctx_.upstream.size()) {
    bool in_progress = false;
    int e = 0;
    int fd = ctx_.connect(ctx_.upstream[upstream_index_], in_progress, e);
    if (fd >= 0) {
      server_fd_ = fd;
      ++server_sockets_;
      if (in_progress) {
        upstream_ = Upstream::kConnecting;
        deadline_ms_ = pgwire::monotonic_ms() + kConnectTimeoutMs;
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
  held_for_server_.release();
  ++ctx_.stats.errors;
  std::string why = pgwire::errno_text(err);
  diag("session {} client {}: cannot connect to the server {}: {}", id_, client_addr_, ctx_.upstream_text, why);
  if (phase_ == Phase::kDraining) {  // the client is gone already
    check_drained();
    return;
  }
  fail_client("08006", fmt::format("pgproxy could not connect to the server {}: {}", ctx_.upstream_text, why),
              fmt::format("upstream connection failed: {}", why));
}

// Connected. With TLS toward the server, an SSLRequest first (its answer
// comes to server_answered_ssl); the connect deadline still runs until the
// connection is ready.
void ProxySession::upstream_connected() {
  ++ctx_.stats.servers_connected;
  if (ctx_.server_tls) {
    upstream_ = Upstream::kNegotiating;
    // The server's answer and handshake get --startup-timeout, as a client's do.
    deadline_ms_ = pgwire::monotonic_ms() + ctx_.startup_timeout_ms;
    pgwire::Buffer req;
    req.u32(8);
    req.u32(pgwire::kSslRequestCode);
    to_server_.append(req.view());
    mark_dirty();
    return;
  }
  upstream_ready();
}

// The server connection is ready: what the client sent meanwhile goes out.
void ProxySession::upstream_ready() {
  upstream_ = Upstream::kConnected;
  if (phase_ == Phase::kForwarding) deadline_ms_ = 0;
  if (!held_for_server_.empty()) {
    send_to_server(held_for_server_.view());
    held_for_server_.release();
  }
  flush_server();
}

// --- writing -----------------------------------------------------------------

bool ProxySession::write_some(int fd, OutBuf& buf, int& err, size_t& written) {
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
// With TLS on a leg the bytes are encrypted into its buffer here, so the
// round's writes still go out together. Nothing goes to a TLS client before
// its handshake is done.
void ProxySession::send_to_client(pgwire::Bytes b) {
  if (b.empty() || !client_writable_) return;
  if (client_tls_) {
    if (!client_tls_->open()) return;
    if (!client_tls_->send(b, to_client_)) {
      client_writable_ = false;
      to_client_.release();
      client_gone(client_tls_->error());
      return;
    }
  } else {
    to_client_.append(b);
  }
  mark_dirty();
}

void ProxySession::send_to_server(pgwire::Bytes b) {
  if (b.empty() || upstream_ == Upstream::kClosed) return;
  if (upstream_ != Upstream::kConnected) {
    held_for_server_.append(b);
    return;
  }
  if (server_tls_) {
    if (!server_tls_->send(b, to_server_)) {
      server_gone(server_tls_->error());
      return;
    }
  } else {
    to_server_.append(b);
  }
  mark_dirty();
}

void ProxySession::mark_dirty() {
  if (dirty_) return;
  dirty_ = true;
  ctx_.dirty.push_back(this);
}

// A session that ends leaves the round's list: the proxy frees ended sessions
// after the round, and nothing may send for one afterwards.
void ProxySession::unmark_dirty() {
  if (!dirty_) return;
  dirty_ = false;
  auto& d = ctx_.dirty;
  d.erase(std::remove(d.begin(), d.end(), this), d.end());
}

bool ProxySession::client_write(PendingWrite& w) const {
  if (!client_writable_ || client_fd_ < 0 || to_client_.empty()) return false;
  w = {client_fd_, to_client_.view()};
  return true;
}

bool ProxySession::server_write(PendingWrite& w) const {
  if ((upstream_ != Upstream::kConnected && upstream_ != Upstream::kNegotiating) || server_fd_ < 0 ||
      to_server_.empty()) {
    return false;
  }
  w = {server_fd_, to_server_.view()};
  return true;
}

void ProxySession::flush_pending() {
  dirty_ = false;
  if (done()) return;
  flush_server();
  if (!done()) flush_client();
}

void ProxySession::flush_client() {
  if (!client_writable_ || to_client_.empty()) return;
  int err = 0;
  size_t written = 0;
  bool ok = write_some(client_fd_, to_client_, err, written);
  client_written(written, ok ? 0 : err);
}

void ProxySession::client_written(size_t written, int err) {
  if (done() || !client_writable_) return;
  to_client_.consume(written);
  if (err != 0) {
    client_writable_ = false;
    to_client_.release();
    client_gone(fmt::format("client connection error: {}", pgwire::errno_text(err)));
    return;
  }
  if (phase_ == Phase::kDraining) {
    if (written > 0) deadline_ms_ = pgwire::monotonic_ms() + kDrainTimeoutMs;
    check_drained();
  }
}

void ProxySession::flush_server() {
  if ((upstream_ != Upstream::kConnected && upstream_ != Upstream::kNegotiating) || to_server_.empty()) {
    if (phase_ == Phase::kDraining) check_drained();
    return;
  }
  int err = 0;
  size_t written = 0;
  bool ok = write_some(server_fd_, to_server_, err, written);
  server_written(written, ok ? 0 : err);
}

void ProxySession::server_written(size_t written, int err) {
  if (done() || (upstream_ != Upstream::kConnected && upstream_ != Upstream::kNegotiating)) return;
  to_server_.consume(written);
  if (err != 0) {
    server_gone(fmt::format("server connection error: {}", pgwire::errno_text(err)));
    return;
  }
  if (phase_ == Phase::kDraining) {
    if (written > 0) deadline_ms_ = pgwire::monotonic_ms() + kDrainTimeoutMs;
    check_drained();
  }
}

// --- ending ------------------------------------------------------------------

void ProxySession::fail_client(std::string_view sqlstate, std::string_view message, std::string reason) {
  // An ErrorResponse of our own can only go between two whole server messages.
  if (client_writable_ && client_fd_ >= 0 && monitor_.at_backend_boundary()) {
    pgwire::be::ErrorResponse err;
    err.fields = {{'S', "FATAL"}, {'V', "FATAL"}, {'C', sqlstate}, {'M', message}};
    pgwire::Buffer out;
    err.encode(out);
    send_to_client(out.view());
  }
  close_server();
  begin_drain(std::move(reason));
}

void ProxySession::protocol_violation(const pgwire::Error& e) {
  ++ctx_.stats.errors;
  diag("session {} client {}: protocol violation, closing the connection: {}", id_, client_addr_, e.describe());
  fail_client("08P01", fmt::format("protocol violation: {}", e.message),
              fmt::format("protocol violation: {}", e.describe()));
}

void ProxySession::client_gone(std::string reason) {
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

void ProxySession::server_gone(std::string reason) {
  close_server();
  if (phase_ == Phase::kDraining || phase_ == Phase::kLinger) {
    check_drained();
    return;
  }
  begin_drain(std::move(reason));
}

void ProxySession::close_server() {
  close_fd(server_fd_);
  to_server_.release();
  held_for_server_.release();
  if (upstream_ != Upstream::kNone) upstream_ = Upstream::kClosed;
}

void ProxySession::begin_drain(std::string reason) {
  if (phase_ == Phase::kDone) return;
  if (phase_ != Phase::kDraining && phase_ != Phase::kLinger) {
    if (close_reason_.empty()) close_reason_ = std::move(reason);
    phase_ = Phase::kDraining;
    deadline_ms_ = pgwire::monotonic_ms() + kDrainTimeoutMs;
  }
  check_drained();
}

// Ends the session once nothing is left to flush: toward a server still
// connected (or connecting) and toward a client still there.
void ProxySession::check_drained() {
  if (phase_ == Phase::kDone) return;
  // Each TLS peer still there gets close_notify after the last bytes it is owed.
  if (server_tls_ && upstream_ == Upstream::kConnected && server_tls_->open()) {
    server_tls_->close(to_server_);
    if (!to_server_.empty()) mark_dirty();
  }
  bool server_pending = (upstream_ == Upstream::kConnecting || upstream_ == Upstream::kNegotiating ||
                         upstream_ == Upstream::kConnected) &&
                        (!to_server_.empty() || !held_for_server_.empty());
  if (client_tls_ && client_writable_ && client_tls_->open()) {
    client_tls_->close(to_client_);
    if (!to_client_.empty()) mark_dirty();
  }
  bool client_pending = client_writable_ && !to_client_.empty();
  if (server_pending || client_pending) return;
  if (phase_ == Phase::kLinger) return;
  if (client_writable_ && client_readable_ && client_fd_ >= 0) {
    // Half-close and wait for the client to close: closing with unread input
    // would reset the connection and could destroy our last bytes in flight.
    close_server();
    if (shutdown(client_fd_, SHUT_WR) == 0) {
      phase_ = Phase::kLinger;
      deadline_ms_ = pgwire::monotonic_ms() + kLingerTimeoutMs;
      return;
    }
  }
  finish(close_reason_);
}

void ProxySession::finish(std::string_view reason) {
  if (phase_ == Phase::kDone) return;
  int64_t ts = pgwire::realtime_ns();
  monitor_.stop_tracking(ts);  // what is pending is logged with an unknown outcome
  csvlog_disconnected(ts);
  if (held_capture_) {
    // Ended before its startup packet (a CancelRequest, a bad first packet):
    // no user to match, so not one of the sessions asked for.
    held_capture_.reset();
    capturing_ = false;
    ++ctx_.stats.not_captured_sessions;
  }
  if (capturing_) capture(cap().session_close(id_, ts, reason));
  capturing_ = false;
  if (close_reason_.empty()) close_reason_ = std::string(reason);
  close_fd(client_fd_);
  close_server();
  to_client_.release();
  phase_ = Phase::kDone;
  deadline_ms_ = 0;
  unmark_dirty();
}

void ProxySession::abort(std::string_view reason) { finish(reason); }

void ProxySession::capture_reopened() {
  if (!capturing_ || done() || held_capture_) return;  // held records go to whichever file is current
  open_capture_session();
  if (!backend_key_.empty()) {
    capture(cap().session_meta(id_, pgwire::realtime_ns(), pgwire::kMetaBackendKeyData,
                               {backend_key_.data(), backend_key_.size()}));
  }
}

}  // namespace pgproxy
