// One connection's analysis — framing of both directions plus the tracker —
// and the demultiplexer that drives one per session from capture records.
//
// SessionMonitor::next() is the one step every tool takes: pgproxy calls it
// on the bytes it forwards, pgdump-log and pgreplay (through CaptureDecoder)
// on the bytes of capture records, pgreplay's replay side on what its own
// server sends. Live logging and offline decoding therefore share one code
// path and print the same lines.
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

// The reason CaptureDecoder::finish gives the sessions still open: the
// capture ended, not the session.
inline constexpr std::string_view kCaptureEndedReason = "capture ended";

// Session metadata keys written by pgproxy.
inline constexpr std::string_view kMetaBackendKeyData = "backend_key_data";  // BackendKeyData body
inline constexpr std::string_view kMetaCaptureBackend = "capture_backend";   // "1" or "0"
// The client's TLS was terminated by pgproxy, whose records from here on hold
// the decrypted bytes: "TLSv1.3 TLS_AES_256_GCM_SHA384", with " direct" for a
// connection that opened with TLS (no SSLRequest).
inline constexpr std::string_view kMetaClientTls = "client_tls";
// How pgproxy's own connection to the server is protected: as client_tls, or
// "none" when the server refused TLS and --upstream-sslmode allowed plaintext.
inline constexpr std::string_view kMetaServerTls = "server_tls";

// What a startup-phase packet asks for.
enum class StartupRequest : uint8_t {
  kNone,        // not a startup-phase packet (or a piece that does not start one)
  kStartup,     // StartupMessage: the session proper begins
  kCancel,      // CancelRequest: forwarded, then nothing more
  kEncryption,  // SSLRequest or GSSENCRequest: answered before anything else is sent
};
StartupRequest startup_request(const Frame& f);

// The answers a proxy gives to an encryption request itself: no, continue in
// plaintext (without TLS of its own, and always to GSSENCRequest); yes, a
// TLS handshake follows (the proxy terminates the client's TLS).
inline constexpr char kEncryptionRefused = 'N';
inline constexpr char kEncryptionAccepted = 'S';

class SessionMonitor {
 public:
  using FrameSink = std::function<void(Direction, const Frame&, int64_t ts_ns)>;

  SessionMonitor(TrackerOptions tracker_opts, ConnectionTracker::Sink events, FramerOptions framer_opts = {});

  // The one step: frames the next frame (or piece of a large one) of `dir`
  // from the front of `input`, gives it to the tracker, and returns it, with
  // its bytes as a view valid until the next call. Returns need-more once
  // `input` is used up, or the error of a direction that cannot be framed
  // (again on every later call: a stream that lost sync stays lost).
  [[nodiscard]] FrameResult next(Direction dir, Bytes& input, int64_t ts_ns) {
    FrameResult r = framer_.next(dir, input);
    if (r.has_frame()) {
      const Frame& f = r.frame();
      if (tracking_) tracker_.on_frame(dir, f, ts_ns);
      if (dir == Direction::kBackend && f.last) backend_boundary_ = f.offset + f.wire_size();
    }
    return r;
  }

  // next() over all of `bytes`; every frame goes to `frames` when given.
  Status feed(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink& frames) {
    return feed_to(dir, bytes, ts_ns, frames ? &frames : nullptr);
  }
  // Without a sink: spares building an empty std::function per call.
  Status feed(Direction dir, Bytes bytes, int64_t ts_ns) { return feed_to(dir, bytes, ts_ns, nullptr); }

  // The proxy answers the client's encryption request itself (`answer`:
  // kEncryptionRefused or kEncryptionAccepted). The answer goes through the server
  // direction's framer as if the server had sent it, so both directions go
  // on exactly as after a real answer, and is returned for the caller to send
  // and record. Fails when no request is waiting for an answer.
  [[nodiscard]] FrameResult answer_locally(char answer, int64_t ts_ns);
  // True between an encryption request and its answer: the client may send
  // nothing until it has the answer.
  bool awaiting_answer() const { return framer_.backend().awaiting_answer(); }
  // The caller terminates the client's TLS (after answering 'S', or on a
  // direct-TLS connection) and hands over the decrypted bytes from now on:
  // both directions go on in plaintext, the frontend with its startup packet.
  void tls_terminated() {
    framer_.frontend().resume_decrypted();
    framer_.backend().resume_decrypted();
  }
  // The bytes of `dir` are joined after the connection's start, at a frame
  // of `kind` (Framer::join_mid_stream): capture data that begins mid-session.
  void join_mid_stream(Direction dir, FrameKind kind) {
    (dir == Direction::kFrontend ? framer_.frontend() : framer_.backend()).join_mid_stream(kind);
  }

  // Whether a message of our own (an ErrorResponse) can be sent to the
  // client now without cutting into one of the server's: the server's stream
  // is framed, plaintext, and its last frame was passed on whole.
  bool at_backend_boundary() const;

  // Stops interpreting (a stream the framer rejected, say): requests still
  // pending are settled as unknown, no more events; framing goes on.
  void stop_tracking(int64_t ts_ns);
  bool tracking() const { return tracking_; }
  // The connection ended: requests still pending are settled as unknown.
  void close(int64_t ts_ns) {
    if (tracking_) tracker_.on_close(ts_ns);
  }

  ConnectionTracker& tracker() { return tracker_; }
  const ConnectionTracker& tracker() const { return tracker_; }
  const ConnectionFramer& framer() const { return framer_; }

 private:
  Status feed_to(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink* frames);
  ConnectionFramer framer_;
  ConnectionTracker tracker_;
  bool tracking_ = true;
  uint64_t backend_boundary_ = 0;  // backend stream offset where the last whole frame ended
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
    // A SessionMeta record, after the decoder has applied what it knows of it.
    std::function<void(const SessionInfo&, int64_t ts_ns, std::string_view key, Bytes value)> session_meta;
    // A session's stream could not be framed; the session is ignored from there.
    std::function<void(const SessionInfo&, const Error&)> error;
    // A partial session: its start is not in the records (they begin after
    // its startup packet: a later file of a rotated set read without the
    // earlier ones, or the data after a gap). Called once per session, at the
    // first record that shows it; SessionInfo::partial is set from then on.
    std::function<void(const SessionInfo&, int64_t ts_ns)> partial;
    // The session's first ReadyForQuery (ConnectionTracker::set_ready_sink).
    ConnectionTracker::ReadySink ready;
  };

  CaptureDecoder(TrackerOptions tracker_opts, Callbacks callbacks);
  ~CaptureDecoder();

  void on_record(const CaptureRecord& rec);
  // The input ended: sessions still open are closed (pending requests get an unknown outcome).
  void finish(int64_t ts_ns);
  size_t open_sessions() const;
  // Encryption refusals that were not in the capture and were inferred: the
  // client went on in plaintext after its request, which only an 'N' allows
  // (captures of pgproxy before it recorded its own answers).
  uint64_t inferred_answers() const { return inferred_answers_; }
  // Sessions found partial so far (Callbacks::partial).
  uint64_t partial_sessions() const { return partial_sessions_; }

 private:
  struct DecodedSession;
  // The session of `id`, made if new: from recent_ when it is there (inline,
  // nearly every record), else from the map (session_slow).
  DecodedSession& session(uint64_t id) {
    Recent& r = recent_[id % recent_.size()];
    if (r.session != nullptr && r.id == id) return *r.session;
    return session_slow(id);
  }
  DecodedSession& session_slow(uint64_t id);
  void on_frame_record(DecodedSession& s, const CaptureRecord& rec);
  bool start_direction(DecodedSession& s, const CaptureRecord& rec);
  void mark_partial(DecodedSession& s, int64_t ts_ns);
  TrackerOptions tracker_opts_;
  Callbacks cb_;
  std::unordered_map<uint64_t, std::unique_ptr<DecodedSession>> sessions_;
  // Records of the sessions in flight interleave: the last few looked up,
  // one slot per id modulo their number, spare most hash lookups.
  struct Recent {
    uint64_t id = 0;
    DecodedSession* session = nullptr;
  };
  std::array<Recent, 64> recent_{};
  uint64_t inferred_answers_ = 0;
  uint64_t partial_sessions_ = 0;
};

}  // namespace pgwire
