// Incremental, I/O-free framing of one direction of a PostgreSQL connection.
//
// Feed bytes in any chunking with next(input): it consumes what it needs and
// returns a frame, "need more" (all input consumed), or an error with the
// stream offset where it was found. After an error the framer stays failed:
// a stream that lost sync cannot be recovered.
//
// A frame whose body fits in FramerOptions::max_buffered is returned whole.
// A larger one (a 1 GiB Query or CopyData) is returned in pieces as its bytes
// arrive, so no frame is ever held whole in memory; Frame::first/last mark
// the pieces. Frame bodies are views: into the caller's input when the frame
// arrived contiguously, otherwise into the framer's buffer. Either way they
// are valid until the next call to next() or until the input is released.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/result.hpp"

namespace pgwire {

enum class FrameKind : uint8_t {
  kTyped,    // Byte1 type + Int32 length + body
  kStartup,  // Int32 length + Int32 code + rest: startup, SSL/GSSENC/cancel request
  kAnswer,   // the server's one-byte answer to SSLRequest ('S'/'N') or GSSENCRequest ('G'/'N')
  kOpaque,   // bytes of an encrypted stream (TLS or GSS) that cannot be framed
};

struct Frame {
  FrameKind kind = FrameKind::kTyped;
  uint8_t type = 0;          // typed: type byte; answer: the byte; opaque: 0
  uint32_t length = 0;       // the wire length field (counts itself); 0 for answer and opaque
  Bytes body;                // this piece of the body: the bytes after the length field
  uint64_t offset = 0;       // stream offset of the frame's first byte
  uint32_t body_offset = 0;  // where this piece starts within the body
  bool first = true;
  bool last = true;

  bool whole() const { return first && last; }
  uint32_t body_length() const { return length >= 4 ? length - 4 : 0; }
  // Size of the whole frame on the wire.
  uint64_t wire_size() const;
  // Request code of a startup-phase packet (0 if not available).
  uint32_t startup_code() const;
  // Appends the header bytes (type and length, as they were on the wire).
  void append_header(Buffer& out) const;
};

// A frame copied out of the framer, for when a view must outlive it.
struct OwnedFrame {
  FrameKind kind = FrameKind::kTyped;
  uint8_t type = 0;
  uint32_t length = 0;
  uint64_t offset = 0;
  std::vector<std::byte> body;

  explicit OwnedFrame(const Frame& f)
      : kind(f.kind), type(f.type), length(f.length), offset(f.offset), body(f.body.begin(), f.body.end()) {}
  OwnedFrame() = default;
  Frame view() const {
    Frame f;
    f.kind = kind;
    f.type = type;
    f.length = length;
    f.offset = offset;
    f.body = {body.data(), body.size()};
    return f;
  }
};

struct FramerOptions {
  // Frames with a body up to this size are returned whole; larger ones in pieces.
  uint32_t max_buffered = 1 << 20;
};

class FrameResult {
 public:
  enum class Status : uint8_t { kNeedMore, kFrame, kError };

  static FrameResult more() { return FrameResult(Status::kNeedMore); }
  static FrameResult of(const Frame& f) {
    FrameResult r(Status::kFrame);
    r.frame_ = f;
    return r;
  }
  static FrameResult failure(const Error& e) {
    FrameResult r(Status::kError);
    r.error_ = e;
    return r;
  }

  Status status() const { return status_; }
  bool has_frame() const { return status_ == Status::kFrame; }
  bool needs_more() const { return status_ == Status::kNeedMore; }
  bool failed() const { return status_ == Status::kError; }
  const Frame& frame() const { return frame_; }
  const Error& error() const { return error_ ? *error_ : no_error(); }

 private:
  explicit FrameResult(Status s) : status_(s) {}
  static const Error& no_error();
  Status status_;
  Frame frame_;
  // Only a failure has one: a result is made per frame, and an Error (with
  // its string) in every one of them showed in profiles.
  std::optional<Error> error_;
};

class Framer {
 public:
  explicit Framer(Direction dir, FramerOptions opts = {});

  // Consumes bytes from the front of `input` and returns at most one frame.
  [[nodiscard]] FrameResult next(Bytes& input);

  // Cross-direction coupling: the startup phase of one direction depends on
  // what the other said. ConnectionFramer calls these for you.
  void on_peer_frame(const Frame& peer);
  // The connection's TLS is terminated by whoever feeds this framer, who
  // passes on the decrypted bytes from here: an encrypted stream (after an
  // 'S', or a direct-TLS ClientHello) goes on as after an 'N' -- the frontend
  // expects a startup packet, the backend typed messages. No effect on a
  // failed framer or on one past the startup phase.
  void resume_decrypted();
  // The stream is joined after its start, at a frame boundary (capture data
  // that begins in the middle of a session): frames of `kind` follow, typed
  // ones (the startup phase is over) or opaque ones (an encrypted stream).
  // Only before the first byte, on a framer not failed; no effect otherwise.
  void join_mid_stream(FrameKind kind);

  Direction direction() const { return dir_; }
  uint64_t offset() const { return offset_; }  // bytes consumed so far
  bool failed() const { return state_ == State::kFailed; }
  bool in_startup() const { return state_ == State::kStartup; }
  bool encrypted() const { return state_ == State::kOpaque; }
  // Frontend: an encryption request was sent, nothing may follow until the
  // answer. Backend: the one-byte answer to it comes next.
  bool awaiting_answer() const { return state_ == State::kAwaitAnswer; }
  // True between a frame's first and last piece.
  bool mid_frame() const { return streaming_; }

 private:
  enum class State : uint8_t {
    kStartup,      // frontend: expecting an untyped packet
    kAwaitAnswer,  // frontend: sent SSL/GSSENC request, no bytes allowed; backend: one answer byte next
    kTyped,
    kOpaque,
    kClosed,  // frontend after CancelRequest: nothing may follow
    kFailed,
  };

  FrameResult fail(Errc code, uint64_t at, std::string message);
  void set_failed(Errc code, uint64_t at, std::string message);
  // Reads the header (type and length, or a startup packet's length) from
  // `header`; false, with the framer failed, when it cannot be a valid frame.
  bool validate_header(const std::byte* header);
  FrameResult emit_whole(Bytes body);
  FrameResult stream_piece(Bytes& input);
  void after_frame(const Frame& f);

  Direction dir_;
  FramerOptions opts_;
  State state_;
  uint64_t offset_ = 0;        // stream offset of the next byte to consume
  uint64_t frame_offset_ = 0;  // stream offset of the current frame
  std::byte header_[8];        // type+length (5) or length+code (8)
  size_t header_have_ = 0;
  uint8_t type_ = 0;
  uint32_t length_ = 0;
  uint32_t awaited_ = kSslRequestCode;  // backend: the request whose answer comes next
  bool streaming_ = false;              // returning a large frame in pieces
  uint32_t body_done_ = 0;              // body bytes already returned or buffered
  std::vector<std::byte> buf_;          // body of a frame that arrived in several chunks
  Error error_{Errc::kBadValue, 0, {}};
};

// Both directions of one connection, with the startup-phase coupling done.
class ConnectionFramer {
 public:
  explicit ConnectionFramer(FramerOptions opts = {})
      : fe_(Direction::kFrontend, opts), be_(Direction::kBackend, opts) {}

  [[nodiscard]] FrameResult next(Direction dir, Bytes& input) {
    Framer& me = dir == Direction::kFrontend ? fe_ : be_;
    Framer& peer = dir == Direction::kFrontend ? be_ : fe_;
    FrameResult r = me.next(input);
    // Only the startup phase and encryption couple the directions: a typed
    // frame, nearly every frame, never changes the peer's state.
    if (r.has_frame() && r.frame().first && r.frame().kind != FrameKind::kTyped) peer.on_peer_frame(r.frame());
    return r;
  }
  Framer& frontend() { return fe_; }
  Framer& backend() { return be_; }
  const Framer& frontend() const { return fe_; }
  const Framer& backend() const { return be_; }

 private:
  Framer fe_;
  Framer be_;
};

}  // namespace pgwire
