// One connection to the replay server, as a replayed session uses it: the
// socket and its non-blocking connect, the login (the captured StartupMessage
// with the replay's user and database, or a CancelRequest with the key of the
// replayed session it cancels) and pgreplay's own authentication, writing
// what the session released plus our own messages, and reading what the
// server sends.
//
// Owns the socket, the replay-side SessionMonitor (both directions: the
// statement events of the replay), the authenticator, the BackendKeyData the
// server gave, and what the server owes (Query/Sync not yet answered, COPY
// in progress, a FATAL it sent). Milestones it reads (ReadyForQuery, COPY
// responses) go to the session's MilestoneMatcher.
//
// It decides neither when frames go out (session_pacing.cpp) nor what a
// failure means for the run: each call says what happened, with the reason.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "conninfo.hpp"
#include "pgwire/auth.hpp"
#include "pgwire/session_monitor.hpp"
#include "schedule.hpp"

namespace pgreplay {

class ReplayConnection {
 public:
  enum class Phase : uint8_t {
    kNone,        // not connected yet
    kConnecting,  // TCP/Unix connect in progress
    kLogin,       // startup packet (or cancel request) sent, authenticating
    kReady,       // logged in: the session's frames may go out
    kClosed,      // closed by close()
  };

  ReplayConnection() = default;
  ~ReplayConnection();
  ReplayConnection(const ReplayConnection&) = delete;  // the monitor's callbacks point here
  ReplayConnection& operator=(const ReplayConnection&) = delete;

  Phase phase() const { return phase_; }
  int fd() const { return fd_; }

  // A normal session, before connecting: its replay-side tracker (statement
  // events to `on_statement`), the login (`user`, `password`), and where the
  // milestones the server sends go. A cancel request needs none of it.
  void prepare(const pgwire::TrackerOptions& tracker, pgwire::ConnectionTracker::Sink on_statement, std::string user,
               std::optional<std::string> password, MilestoneMatcher* milestones);

  // Starts a non-blocking connect to `target`; connect and login must be done
  // by `deadline`. On failure: the call that failed ("socket", "connect") and its errno.
  struct SysError {
    const char* call;
    int err;
  };
  std::optional<SysError> connect(const Target& target, int64_t now, int64_t deadline);
  // Once the socket is writable while connecting: 0, or the connect's error.
  int connect_error() const;
  int64_t deadline() const { return deadline_; }

  // A cancel request, before connecting: the key of the replayed session it cancels.
  void prepare_cancel(int32_t pid, std::vector<std::byte> key) {
    cancel_pid_ = pid;
    cancel_key_ = std::move(key);
  }

  // Connected: queues the startup packet (`params` in their captured order,
  // user and database replaced), or the cancel request, and goes to login.
  void send_startup(uint32_t protocol, const std::vector<std::pair<std::string, std::string>>& params,
                    const std::string& user, const std::string& database);
  void send_cancel();
  // The server wants COPY data the captured client never sent: CopyFail.
  void send_copy_fail(const std::string& message);

  // The session released a frame of `type` (its last piece): what the server owes changes.
  void released_frame(uint8_t type) {
    // A Sync sent while the server copies is swallowed and never answered.
    if ((type == 'Q' || type == 'S' || type == 'F') && !(type == 'S' && copy_in_)) ++outstanding_;
    if (type == 'c' || type == 'f') copy_in_ = false;
    if (type == 'X') sent_terminate_ = true;
  }

  // Writes our own messages (when no released bytes are half-written), else
  // the first `released` bytes of `bytes`, until all is written or the socket
  // is full. Written step bytes are consumed from `bytes` and `released`.
  struct Flushed {
    size_t step_bytes = 0;  // of `released`, written
    std::string error;      // the write failed: the session fails with this
  };
  Flushed flush(ByteQueue& bytes, size_t& released, int64_t now);
  bool own_messages_pending() const { return ctrl_off_ < ctrl_.size(); }
  // A cancel request is written whole: the server answers it by closing, its job is done.
  bool cancel_delivered() const { return cancel_ && phase_ == Phase::kLogin && ctrl_.empty(); }

  // Reads what the server sent (up to 16 reads of `buffer`'s size).
  struct ReadResult {
    bool logged_in = false;  // the login's ReadyForQuery arrived (phase is now kReady)
    bool closed = false;     // the server closed the connection
    std::string error;       // the session fails with this (login refused, protocol error, read error)
  };
  ReadResult read(std::span<std::byte> buffer, int64_t now);
  // Why a closed connection was not a normal end: the server's FATAL, or where it closed.
  std::string closed_reason() const;

  // Closes the socket, then the tracker (its statements in flight get "no outcome").
  void close(int64_t now);

  // What the server owes and said.
  uint32_t outstanding() const { return outstanding_; }  // Query/Sync/FunctionCall not answered by 'Z'
  bool copy_in() const { return copy_in_; }              // the server is in COPY FROM STDIN
  bool sent_terminate() const { return sent_terminate_; }
  uint8_t last_backend() const { return last_backend_; }
  int64_t last_rx() const { return last_rx_; }

  // The server's BackendKeyData, for cancel requests aimed at this session.
  bool has_key() const { return have_key_; }
  int32_t pid() const { return pid_; }
  const std::vector<std::byte>& key() const { return key_; }

 private:
  void on_backend_frame(const pgwire::Frame& f, int64_t now);
  void on_login_frame(const pgwire::Frame& f);
  void queue(pgwire::Bytes message);

  Phase phase_ = Phase::kNone;
  int fd_ = -1;
  bool cancel_ = false;
  int64_t deadline_ = 0;

  std::unique_ptr<pgwire::SessionMonitor> monitor_;
  pgwire::SessionMonitor::FrameSink sink_;
  std::unique_ptr<pgwire::ClientAuthenticator> auth_;
  MilestoneMatcher* milestones_ = nullptr;

  std::vector<std::byte> ctrl_;  // our own messages, written when no released bytes are pending
  size_t ctrl_off_ = 0;

  int32_t cancel_pid_ = 0;  // a cancel request's target
  std::vector<std::byte> cancel_key_;

  int32_t pid_ = 0;  // the server's BackendKeyData
  std::vector<std::byte> key_;
  bool have_key_ = false;
  bool logged_in_now_ = false;  // set by on_login_frame during read()

  uint32_t outstanding_ = 0;
  bool copy_in_ = false;
  bool sent_terminate_ = false;
  uint8_t last_backend_ = 0;
  int64_t last_rx_ = 0;
  std::string fatal_;        // a FATAL error the server sent
  std::string fail_reason_;  // set inside the monitor's callbacks; acted on after
};

}  // namespace pgreplay
