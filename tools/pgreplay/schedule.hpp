// The capture side of a replay: what one captured session sent, when, and
// what it had waited for before sending each frame.
//
// SessionModel is fed the capture records of one session in order (no I/O)
// and turns each frontend frame worth replaying into a PlannedFrame: the raw
// bytes as recorded, the capture timestamp, and `need`, the number of
// milestones the original client had received before it sent the frame.
//
// Milestones are the backend messages a client waits for: ReadyForQuery
// ('Z'), CopyInResponse ('G'), CopyOutResponse ('H'), CopyBothResponse ('W'),
// counted from after the login's ReadyForQuery. The model keeps the list of
// milestones in capture order (milestone(i)); the replay side matches the
// milestones its own server sends against that list (MilestoneMatcher).
//
// With backend frames in the capture (pgproxy --capture-backend) the list and
// every `need` are exact. Without them they are inferred:
//   - every Query, Sync and FunctionCall will be answered by a ReadyForQuery;
//   - a frame with the same timestamp as the preceding Query/Sync (pgproxy
//     stamps all frames parsed from one read() alike) was pipelined: it waits
//     only for what that Query/Sync itself waited for; any other frame waited
//     for the ReadyForQuery of every Query/Sync before it;
//   - CopyData/CopyDone/CopyFail after a Query waited for a CopyInResponse,
//     which the model inserts before that Query's ReadyForQuery (after an
//     Execute+Sync the server swallows the Sync while copying, so that Sync's
//     ReadyForQuery is replaced by the CopyInResponse); a CopyDone/CopyFail
//     then plays the part of the Sync for what is pipelined with it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/capture.hpp"

namespace pgreplay {

// One frontend frame, or piece of a large one, to send during the replay.
struct PlannedFrame {
  int64_t ts_ns = 0;  // capture time
  uint64_t need = 0;  // milestones the client had received before sending it
  uint8_t type = 0;   // frame type (of the whole frame, for every piece)
  bool first = true;
  bool last = true;
  pgwire::Bytes data;  // raw bytes as recorded (valid until the next record is read)
};

inline bool is_milestone(uint8_t backend_type) {
  return backend_type == 'Z' || backend_type == 'G' || backend_type == 'H' || backend_type == 'W';
}

class SessionModel {
 public:
  enum class Kind : uint8_t {
    kUnknown,    // nothing decisive seen yet
    kStartup,    // a StartupMessage: a normal session
    kCancel,     // a CancelRequest
    kEncrypted,  // TLS or GSS encrypted after the startup: cannot be replayed
  };

  explicit SessionModel(int64_t open_ts) : open_ts_(open_ts) {}

  void on_meta(std::string_view key, pgwire::Bytes value);
  // A frame record of this session. Returns what to replay, if anything.
  std::optional<PlannedFrame> on_frame(const pgwire::CaptureRecord& rec);
  // The session ended in the capture (or the capture did).
  void on_close(int64_t ts_ns);

  Kind kind() const { return kind_; }
  int64_t open_ts() const { return open_ts_; }
  int64_t startup_ts() const { return startup_ts_; }
  bool closed() const { return closed_; }
  int64_t close_ts() const { return close_ts_; }

  // Startup packet: protocol code and parameters in their captured order.
  uint32_t protocol() const { return protocol_; }
  const std::vector<std::pair<std::string, std::string>>& params() const { return params_; }
  std::string param(std::string_view name) const;

  // CancelRequest sessions.
  int32_t cancel_pid() const { return cancel_pid_; }

  // The BackendKeyData the captured server sent (meta record or 'K' frame).
  bool has_backend_key() const { return has_backend_key_; }
  int32_t backend_pid() const { return backend_pid_; }

  // True when `need` values are exact (backend frames captured).
  bool exact() const { return mode_ == Mode::kBackend; }
  bool login_failed() const { return login_error_; }

  // Milestones in capture order: indexes [milestones_base(), milestones_total()).
  uint64_t milestones_total() const { return ms_base_ + ms_.size(); }
  uint64_t milestones_base() const { return ms_base_; }
  char milestone(uint64_t index) const { return ms_[index - ms_base_]; }
  void forget_milestones_before(uint64_t index);

  uint64_t frames_planned() const { return frames_planned_; }
  int64_t last_planned_ts() const { return last_planned_ts_; }
  uint64_t bytes_planned() const { return bytes_planned_; }

 private:
  enum class Mode : uint8_t { kUndecided, kBackend, kFrontendOnly };

  void on_backend(const pgwire::CaptureRecord& rec);
  void on_startup_packet(const pgwire::CaptureRecord& rec);
  uint64_t need_exact() const { return milestones_total(); }
  uint64_t need_inferred(uint8_t type, int64_t ts);
  void flush_pending(uint64_t keep);
  void push(char m) { ms_.push_back(m); }

  Kind kind_ = Kind::kUnknown;
  Mode mode_ = Mode::kUndecided;
  bool meta_backend_ = false;   // capture_backend meta said "1"
  bool meta_frontend_ = false;  // capture_backend meta said "0"
  bool seen_backend_ = false;
  bool login_done_ = false;  // the captured login's ReadyForQuery was seen
  bool login_error_ = false;
  int64_t open_ts_ = 0;
  int64_t startup_ts_ = 0;
  int64_t close_ts_ = 0;
  bool closed_ = false;

  uint32_t protocol_ = 0;
  std::vector<std::pair<std::string, std::string>> params_;
  int32_t cancel_pid_ = 0;
  bool has_backend_key_ = false;
  int32_t backend_pid_ = 0;

  // Frame in pieces: the type and need of its first piece.
  uint8_t cur_type_ = 0;
  uint64_t cur_need_ = 0;
  bool cur_skip_ = false;
  uint8_t cur_backend_type_ = 0;

  std::deque<char> ms_;
  uint64_t ms_base_ = 0;

  // Inference without backend frames.
  uint32_t pending_z_ = 0;  // Query/Sync/FunctionCall whose 'Z' is not in ms_ yet
  int64_t last_sync_ts_ = INT64_MIN;
  uint64_t last_sync_need_ = 0;
  uint8_t last_sync_type_ = 0;
  bool in_copy_ = false;

  uint64_t frames_planned_ = 0;
  uint64_t bytes_planned_ = 0;
  int64_t last_planned_ts_ = 0;
};

// Matches the milestones the replay server sends against the captured list.
// A replayed 'Z' moves past the next captured 'Z' (skipping copy responses
// the replay did not get: a COPY that failed this time); a replayed copy
// response moves past the next captured one of its kind before the next 'Z',
// or is unexpected (the COPY failed in the capture): the caller answers an
// unexpected CopyInResponse with CopyFail. Matching waits (pending()) when
// the reader has not read that far into the capture yet.
class MilestoneMatcher {
 public:
  enum class Verdict : uint8_t { kMatched, kUnexpected, kWait };
  // Queues a milestone the replay server sent.
  void received(char m) { pending_.push_back(m); }
  // Matches what it can; calls on_unexpected(m) for each unexpected one.
  template <class F>
  void match(const SessionModel& model, bool capture_complete, F&& on_unexpected) {
    while (!pending_.empty()) {
      Verdict v = match_one(model, pending_.front(), capture_complete);
      if (v == Verdict::kWait) return;
      char m = pending_.front();
      pending_.pop_front();
      if (v == Verdict::kUnexpected) on_unexpected(m);
    }
  }
  uint64_t position() const { return pos_; }  // captured milestones passed
  // Stall breaker: the server owes nothing, yet the capture says wait.
  void force_to(uint64_t pos) {
    if (pos > pos_) pos_ = pos;
  }
  bool waiting() const { return !pending_.empty(); }

 private:
  Verdict match_one(const SessionModel& model, char m, bool capture_complete);
  std::deque<char> pending_;
  uint64_t pos_ = 0;
};

// Bytes of planned frames waiting to be sent, in order: append at the back,
// consume from the front, storage reused.
class ByteQueue {
 public:
  void append(pgwire::Bytes b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  const std::byte* front() const { return buf_.data() + head_; }
  size_t size() const { return buf_.size() - head_; }
  void consume(size_t n);
  void clear() {
    buf_.clear();
    buf_.shrink_to_fit();
    head_ = 0;
  }

 private:
  std::vector<std::byte> buf_;
  size_t head_ = 0;
};

}  // namespace pgreplay
