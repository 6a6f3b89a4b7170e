// One connection's analysis — framing of both directions plus the tracker —
// and the demultiplexer that drives one per session from capture records.
//
// pgproxy feeds a SessionMonitor the live bytes; pgdump-log and pgreplay feed
// it the bytes of capture records through CaptureDecoder. Live logging and
// offline decoding therefore share one code path and print the same lines.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pgwire/capture.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/tracker.hpp"

namespace pgwire {

// Session metadata keys written by pgproxy.
inline constexpr std::string_view kMetaBackendKeyData = "backend_key_data";  // BackendKeyData body
inline constexpr std::string_view kMetaCaptureBackend = "capture_backend";   // "1" or "0"

class SessionMonitor {
 public:
  using FrameSink = std::function<void(Direction, const Frame&, int64_t ts_ns)>;

  SessionMonitor(TrackerOptions tracker_opts, ConnectionTracker::Sink events, FramerOptions framer_opts = {});

  // Frames `bytes` of one direction; every frame (or piece) goes to the
  // tracker, then to `frames` when given. Once a direction cannot be framed
  // any more, returns its error (again on every later call).
  Status feed(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink& frames) {
    return feed_to(dir, bytes, ts_ns, frames ? &frames : nullptr);
  }
  // Without a sink: spares building an empty std::function per call.
  Status feed(Direction dir, Bytes bytes, int64_t ts_ns) { return feed_to(dir, bytes, ts_ns, nullptr); }
  // The proxy answered an SSLRequest/GSSENCRequest itself: tell the framers.
  void local_answer(char answer, int64_t ts_ns);
  void close(int64_t ts_ns) { tracker_.on_close(ts_ns); }

  ConnectionTracker& tracker() { return tracker_; }
  ConnectionFramer& framer() { return framer_; }

 private:
  Status feed_to(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink* frames);
  ConnectionFramer framer_;
  ConnectionTracker tracker_;
};

// Drives one SessionMonitor per session id from a stream of capture records.
class CaptureDecoder {
 public:
  struct Callbacks {
    ConnectionTracker::Sink event;  // a statement event
    // Every frame as re-framed from the capture, with the 'p' kind known at
    // that point; redacted frames come with redacted = true and no body.
    std::function<void(const SessionInfo&, Direction, const Frame&, int64_t ts_ns, PasswordKind, bool redacted)> frame;
    std::function<void(const SessionInfo&, int64_t ts_ns, std::string_view server)> session_open;
    std::function<void(const SessionInfo&, int64_t ts_ns, std::string_view reason)> session_close;
    // A session's stream could not be framed; the session is ignored from there.
    std::function<void(const SessionInfo&, const Error&)> error;
  };

  CaptureDecoder(TrackerOptions tracker_opts, Callbacks callbacks);
  ~CaptureDecoder();

  void on_record(const CaptureRecord& rec);
  // The input ended: sessions still open are closed (pending requests get an unknown outcome).
  void finish(int64_t ts_ns);
  size_t open_sessions() const;

 private:
  struct Session;
  // The session of `id`, made if new: from recent_ when it is there (inline,
  // nearly every record), else from the map (session_slow).
  Session& session(uint64_t id) {
    Recent& r = recent_[id % recent_.size()];
    if (r.session != nullptr && r.id == id) return *r.session;
    return session_slow(id);
  }
  Session& session_slow(uint64_t id);
  TrackerOptions tracker_opts_;
  Callbacks cb_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  // Records of the sessions in flight interleave: the last few looked up,
  // one slot per id modulo their number, spare most hash lookups.
  struct Recent {
    uint64_t id = 0;
    Session* session = nullptr;
  };
  std::array<Recent, 64> recent_{};
};

}  // namespace pgwire
