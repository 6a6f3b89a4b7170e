#include "replay_connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "pgwire/messages.hpp"
#include "pgwire/net.hpp"
#include "pgwire/system.hpp"

namespace pgreplay {

using pgwire::Bytes;
using pgwire::Direction;
using pgwire::Frame;
using pgwire::FrameKind;

using pgwire::errno_text;

ReplayConnection::~ReplayConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void ReplayConnection::prepare(const pgwire::TrackerOptions& tracker, pgwire::ConnectionTracker::Sink on_statement,
                               std::string user, std::optional<std::string> password, MilestoneMatcher* milestones) {
  monitor_ = std::make_unique<pgwire::SessionMonitor>(tracker, std::move(on_statement));
  sink_ = [this](Direction dir, const Frame& f, int64_t ts) {
    if (dir == Direction::kBackend) on_backend_frame(f, ts);
  };
  auth_ = std::make_unique<pgwire::ClientAuthenticator>(std::move(user), std::move(password));
  milestones_ = milestones;
}

std::optional<ReplayConnection::SysError> ReplayConnection::connect(const Target& target, int64_t now,
                                                                    int64_t deadline) {
  bool in_progress = false;
  int err = 0;
  const int fd = pgwire::connect_nonblocking(target.address, in_progress, err);
  if (fd < 0) return SysError{"connect", err};
  fd_ = fd;
  phase_ = Phase::kConnecting;
  deadline_ = deadline;
  last_rx_ = now;
  return std::nullopt;
}

int ReplayConnection::connect_error() const { return pgwire::socket_error(fd_); }

void ReplayConnection::queue(Bytes message) { ctrl_.insert(ctrl_.end(), message.begin(), message.end()); }

void ReplayConnection::send_startup(uint32_t protocol, const std::vector<std::pair<std::string, std::string>>& params,
                                    const std::string& user, const std::string& database) {
  // The captured parameters in their order, user and database replaced.
  pgwire::fe::StartupMessage sm;
  sm.protocol = protocol;
  bool have_db = false;
  for (const auto& [k, v] : params) {
    if (k == "user") {
      sm.params.emplace_back(k, user);
    } else if (k == "database") {
      sm.params.emplace_back(k, database);
      have_db = true;
    } else {
      sm.params.emplace_back(k, v);
    }
  }
  if (!have_db) sm.params.emplace_back("database", database);
  pgwire::Buffer out;
  sm.encode(out);
  queue(out.view());
  phase_ = Phase::kLogin;
}

void ReplayConnection::send_cancel() {
  pgwire::fe::CancelRequest c;
  c.process_id = cancel_pid_;
  c.secret_key = Bytes{cancel_key_.data(), cancel_key_.size()};
  pgwire::Buffer out;
  c.encode(out);
  queue(out.view());
  cancel_ = true;
  phase_ = Phase::kLogin;
}

void ReplayConnection::send_copy_fail(const std::string& message) {
  pgwire::Buffer out;
  pgwire::fe::CopyFail{message}.encode(out);
  queue(out.view());
  copy_in_ = false;
}

ReplayConnection::Flushed ReplayConnection::flush(ByteQueue& bytes, size_t& released, int64_t now) {
  Flushed result;
  while (fd_ >= 0) {
    const std::byte* p;
    size_t n;
    const bool from_steps = released > 0;
    if (from_steps) {
      p = bytes.front();
      n = released;
    } else if (ctrl_off_ < ctrl_.size()) {
      p = ctrl_.data() + ctrl_off_;
      n = ctrl_.size() - ctrl_off_;
    } else {
      break;
    }
    const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const int e = errno;
      result.error = fatal_.empty() ? "write to the server failed: " + errno_text(e) : fatal_;
      return result;
    }
    const size_t written = static_cast<size_t>(w);
    if (monitor_) {
      // The replay's own tracker sees what the server saw (statement timing, compare).
      (void)monitor_->feed(Direction::kFrontend, Bytes{p, written}, now);
    }
    if (from_steps) {
      bytes.consume(written);
      released -= written;
      result.step_bytes += written;
    } else {
      ctrl_off_ += written;
      if (ctrl_off_ == ctrl_.size()) {
        ctrl_.clear();
        ctrl_off_ = 0;
      }
    }
  }
  return result;
}

ReplayConnection::ReadResult ReplayConnection::read(std::span<std::byte> buffer, int64_t now) {
  ReadResult result;
  logged_in_now_ = false;
  for (int i = 0; i < 16; ++i) {
    const ssize_t r = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (r > 0) {
      pgwire::Status st =
          monitor_ ? monitor_->feed(Direction::kBackend, Bytes{buffer.data(), static_cast<size_t>(r)}, now, sink_)
                   : pgwire::Status{};
      if (!st && fail_reason_.empty()) fail_reason_ = "protocol error from the server: " + st.error().describe();
      if (!fail_reason_.empty()) {
        result.error = fail_reason_;
        break;
      }
      if (static_cast<size_t>(r) < buffer.size()) break;
      continue;
    }
    if (r == 0) {
      result.closed = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const int e = errno;
    result.error = !fatal_.empty() ? fatal_ : "read from the server failed: " + errno_text(e);
    break;
  }
  result.logged_in = logged_in_now_;
  return result;
}

std::string ReplayConnection::closed_reason() const {
  if (!fatal_.empty()) return fatal_;
  return phase_ == Phase::kLogin ? "server closed the connection during login" : "server closed the connection";
}

void ReplayConnection::close(int64_t now) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  phase_ = Phase::kClosed;
  ctrl_.clear();
  ctrl_off_ = 0;
  if (monitor_) monitor_->close(now);  // in-flight statements get "no outcome"
}

void ReplayConnection::on_backend_frame(const Frame& f, int64_t now) {
  last_rx_ = now;
  if (!f.first || f.kind != FrameKind::kTyped || !fail_reason_.empty()) return;
  const uint8_t t = f.type;
  last_backend_ = t;
  if (phase_ == Phase::kLogin) {
    on_login_frame(f);
    return;
  }
  if (phase_ != Phase::kReady) return;
  switch (t) {
    case 'Z':
      if (outstanding_ > 0) --outstanding_;
      copy_in_ = false;
      milestones_->received('Z');
      return;
    case 'G':
      copy_in_ = true;
      milestones_->received('G');
      return;
    case 'H':
    case 'W': milestones_->received(static_cast<char>(t)); return;
    case 'E': {
      if (!f.last) return;
      auto e = pgwire::be::ErrorResponse::decode(f.body, f.offset);
      if (e && (e->severity() == "FATAL" || e->severity() == "PANIC"))
        fatal_ = fmt::format("{} {}: {}", e->severity(), e->sqlstate(), e->message());
      return;
    }
    default: return;
  }
}

void ReplayConnection::on_login_frame(const Frame& f) {
  switch (f.type) {
    case 'R': {
      auto m = f.last ? pgwire::be::Authentication::decode(f.body, f.offset)
                      : pgwire::Result<pgwire::be::Authentication>(
                            pgwire::Error{pgwire::Errc::kTooLong, f.offset, "huge Authentication message"});
      if (!m) {
        fail_reason_ = "protocol error from the server: " + m.error().describe();
        return;
      }
      pgwire::Buffer out;
      auto r = auth_->on_message(*m, out);
      if (!r) {
        fail_reason_ = "authentication failed: " + r.error().message;
        return;
      }
      queue(out.view());
      return;
    }
    case 'E': {
      auto e = pgwire::be::ErrorResponse::decode(f.body, f.offset);
      fail_reason_ = e ? fmt::format("login refused: {} {}: {}", e->severity(), e->sqlstate(), e->message())
                       : std::string("login refused (unreadable ErrorResponse)");
      return;
    }
    case 'K': {
      auto k = pgwire::be::BackendKeyData::decode(f.body, f.offset);
      if (k) {
        pid_ = k->process_id;
        key_.assign(k->secret_key.begin(), k->secret_key.end());
        have_key_ = true;
      }
      return;
    }
    case 'Z':
      phase_ = Phase::kReady;
      logged_in_now_ = true;
      return;
    default: return;  // ParameterStatus, NoticeResponse, NegotiateProtocolVersion
  }
}

}  // namespace pgreplay
