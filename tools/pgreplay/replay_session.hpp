// One captured session being replayed, as the parts of the replay see it.
// Each part owns its own sub-object of ReplaySession:
//   - CaptureSide: the capture feed's (capture_feed.hpp): the session model
//     built from the capture records, and what a CancelRequest cancels;
//   - Outbox: the loop's (session_pacing.cpp): frames planned and not yet written,
//     and how far the replay server got through the captured milestones;
//   - ReplayConnection: the server connection (replay_connection.hpp);
//   - StatementMatch: --compare's queues (statement_match.hpp);
// plus the session's lifecycle (finished, failed) and its slot in the loop.
//
// Also here: what those parts share, the Timeline (capture time -> replay
// time) and the ReadAhead budget (bytes read ahead of the replay).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "replay_connection.hpp"
#include "report.hpp"
#include "schedule.hpp"
#include "statement_match.hpp"

namespace pgreplay {

// Capture timestamps -> monotonic replay time.
struct Timeline {
  bool speed_max = false;
  double speed = 1.0;
  int64_t start_ns = 0;  // when the replay started
  bool have_t0 = false;
  int64_t capture_t0 = 0;    // the capture's first record
  int64_t capture_last = 0;  // its latest record so far
  // When a frame captured at `capture_ts` is due (0 at --speed max: at once).
  int64_t at(int64_t capture_ts) const {
    if (speed_max) return 0;
    return start_ns + static_cast<int64_t>(static_cast<double>(capture_ts - capture_t0) / speed);
  }
};

enum class State : uint8_t {
  kPlanned,     // read from the capture, not started
  kConnecting,  // TCP/Unix connect in progress
  kLogin,       // startup packet sent, authenticating
  kRunning,     // logged in, replaying frames
  kFinished,    // done, failed or skipped; the record stays until the capture closes it
};

// What the capture feed knows of a session.
struct CaptureSide {
  explicit CaptureSide(int64_t open_ts) : model(open_ts) {}
  SessionModel model;
  bool done = false;  // the capture's close record was read (or the capture ended)
  bool pid_registered = false;
  bool touched = false;   // got records since the loop last looked
  bool partial = false;   // began before the capture data read: its startup is unknown
  uint32_t max_conc = 1;  // sessions open in the capture when this one opened

  // CancelRequest sessions: the session they cancel, and when.
  bool cancel_resolved = false;
  uint64_t cancel_target = 0;
  uint64_t cancel_after_frames = 0;  // frames the target had sent when the cancel was captured
  int64_t cancel_gap = 0;            // capture time between the target's last frame and the cancel
  std::string cancel_problem;
};

// One planned frame (or piece) waiting to be released; its bytes are in Outbox::bytes.
struct Step {
  int64_t ts = 0;
  uint64_t need = 0;
  uint32_t size = 0;
  uint8_t type = 0;
  bool first = true;
  bool last = true;
};

// The loop's: what the session will send, and what it waits for.
struct Outbox {
  MilestoneMatcher matcher;  // the replay server's milestones against the capture's
  std::deque<Step> steps;
  ByteQueue bytes;  // the steps' bytes; the first `released` are being written
  size_t released = 0;
  uint64_t frames_released = 0;
  int64_t last_release = 0;  // when a frame was last released
  int64_t unblocked_at = 0;  // when the last milestone arrived
  bool over_budget = false;  // holds more than --session-buffer
  bool starved = false;      // running, nothing queued, more to come in the capture
};

struct ReplaySession {
  ReplaySession(uint64_t session_id, int64_t open_ts) : id(session_id), capture(open_ts) { label.id = session_id; }
  ReplaySession(const ReplaySession&) = delete;
  ReplaySession& operator=(const ReplaySession&) = delete;

  State state() const {
    if (finished) return State::kFinished;
    switch (conn.phase()) {
      case ReplayConnection::Phase::kNone: return State::kPlanned;
      case ReplayConnection::Phase::kConnecting: return State::kConnecting;
      case ReplayConnection::Phase::kLogin: return State::kLogin;
      case ReplayConnection::Phase::kReady: return State::kRunning;
      case ReplayConnection::Phase::kClosed: break;
    }
    return State::kFinished;
  }
  bool is_cancel() const { return capture.model.kind() == SessionModel::Kind::kCancel; }

  const uint64_t id;
  SessionLabel label;
  bool finished = false;  // done, failed or skipped
  bool failed = false;
  CaptureSide capture;
  Outbox out;
  ReplayConnection conn;
  StatementMatch statements;

  // The loop's bookkeeping.
  size_t slot = SIZE_MAX;  // index in the pollfd array
  int64_t timer_at = INT64_MAX;
  bool counted_open = false;  // counted in the replay's open connections
};

using SessionTable = std::unordered_map<uint64_t, std::unique_ptr<ReplaySession>>;

// Bytes read ahead of the replay by all sessions together (planned frames and
// queued statements): the capture feed adds, the loop and the matching take
// away; the feed stops reading at --max-memory, or while a session that
// could go on holds more than --session-buffer.
struct ReadAhead {
  size_t buffered = 0;
  size_t starved = 0;  // sessions with Outbox::starved set
  std::unordered_set<uint64_t> over_budget;

  void set_starved(ReplaySession& s, bool on) {
    if (s.out.starved == on) return;
    s.out.starved = on;
    if (on) {
      ++starved;
    } else {
      --starved;
    }
  }
};

}  // namespace pgreplay
