#include "pgwire/framer.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace pgwire {

const Error& FrameResult::no_error() {
  static const Error kNone{Errc::kBadValue, 0, {}};
  return kNone;
}

uint64_t Frame::wire_size() const {
  switch (kind) {
    case FrameKind::kTyped: return uint64_t{length} + 1;
    case FrameKind::kStartup: return length;
    case FrameKind::kAnswer: return 1;
    case FrameKind::kOpaque: return body.size();
  }
  return 0;
}

uint32_t Frame::startup_code() const {
  if (kind != FrameKind::kStartup || body_offset != 0 || body.size() < 4) return 0;
  return load_be32(body.data());
}

void Frame::append_header(Buffer& out) const {
  switch (kind) {
    case FrameKind::kTyped:
      out.u8(type);
      out.u32(length);
      break;
    case FrameKind::kStartup: out.u32(length); break;
    case FrameKind::kAnswer: out.u8(type); break;
    case FrameKind::kOpaque: break;
  }
}

Framer::Framer(Direction dir, FramerOptions opts)
    : dir_(dir), opts_(opts), state_(dir == Direction::kFrontend ? State::kStartup : State::kTyped) {
  // Startup packets are always returned whole.
  opts_.max_buffered = std::max(opts_.max_buffered, kMaxStartupPacket);
}

void Framer::resume_decrypted() {
  if (state_ == State::kFailed) return;
  if (state_ == State::kOpaque || (state_ == State::kAwaitAnswer && dir_ == Direction::kFrontend)) {
    state_ = dir_ == Direction::kFrontend ? State::kStartup : State::kTyped;
  }
}

void Framer::join_mid_stream(FrameKind kind) {
  if (state_ == State::kFailed || offset_ != 0) return;
  if (kind == FrameKind::kTyped) state_ = State::kTyped;
  if (kind == FrameKind::kOpaque) state_ = State::kOpaque;
}

FrameResult Framer::fail(Errc code, uint64_t at, std::string message) {
  set_failed(code, at, std::move(message));
  return FrameResult::failure(error_);
}

void Framer::set_failed(Errc code, uint64_t at, std::string message) {
  state_ = State::kFailed;
  error_ = Error{code, at, std::move(message)};
}

void Framer::on_peer_frame(const Frame& peer) {
  if (state_ == State::kFailed) return;
  if (dir_ == Direction::kBackend) {
    if (peer.kind == FrameKind::kStartup) {
      uint32_t code = peer.startup_code();
      if (code == kSslRequestCode || code == kGssEncRequestCode) {
        state_ = State::kAwaitAnswer;
        awaited_ = code;
      }
    } else if (peer.kind == FrameKind::kOpaque && state_ == State::kTyped && offset_ == 0) {
      state_ = State::kOpaque;  // direct TLS: the server answers with TLS too
    }
  } else if (peer.kind == FrameKind::kAnswer && state_ == State::kAwaitAnswer) {
    state_ = peer.type == 'N' ? State::kStartup : State::kOpaque;
  }
}

bool Framer::validate_header(const std::byte* header) {
  if (state_ == State::kStartup) {
    length_ = load_be32(header);
    // The length is an Int32 on the wire: a negative one is below the minimum, not too long.
    if (static_cast<int32_t>(length_) < 8) {
      set_failed(Errc::kBadLength, frame_offset_,
                 fmt::format("startup packet length {} is below 8", static_cast<int32_t>(length_)));
      return false;
    }
    if (length_ > kMaxStartupPacket) {
      set_failed(Errc::kTooLong, frame_offset_,
                 fmt::format("startup packet length {} exceeds the limit {}", length_, kMaxStartupPacket));
      return false;
    }
    return true;
  }
  type_ = std::to_integer<uint8_t>(header[0]);
  length_ = load_be32(header + 1);
  uint32_t max = dir_ == Direction::kFrontend ? frontend_max_length(type_) : backend_max_length(type_);
  if (max == 0) {
    set_failed(
        Errc::kUnknownType, frame_offset_,
        fmt::format("unknown {} message type 0x{:02x}", dir_ == Direction::kFrontend ? "frontend" : "backend", type_));
    return false;
  }
  if (static_cast<int32_t>(length_) < 4) {  // Int32 on the wire: negative is below 4 too
    set_failed(Errc::kBadLength, frame_offset_ + 1,
               fmt::format("message '{}' length {} is below 4: stream out of sync", static_cast<char>(type_),
                           static_cast<int32_t>(length_)));
    return false;
  }
  if (length_ > max) {
    set_failed(Errc::kTooLong, frame_offset_ + 1,
               fmt::format("message '{}' length {} exceeds the limit {}", static_cast<char>(type_), length_, max));
    return false;
  }
  return true;
}

void Framer::after_frame(const Frame& f) {
  header_have_ = 0;
  if (f.kind != FrameKind::kStartup) return;
  switch (f.startup_code()) {
    case kSslRequestCode:
    case kGssEncRequestCode: state_ = State::kAwaitAnswer; break;
    case kCancelRequestCode: state_ = State::kClosed; break;
    default: state_ = State::kTyped; break;
  }
}

FrameResult Framer::emit_whole(Bytes body) {
  Frame f;
  f.kind = state_ == State::kStartup ? FrameKind::kStartup : FrameKind::kTyped;
  f.type = f.kind == FrameKind::kTyped ? type_ : 0;
  f.length = length_;
  f.body = body;
  f.offset = frame_offset_;
  if (f.kind == FrameKind::kStartup) {
    uint32_t code = load_be32(body.data());
    bool known = code == kSslRequestCode || code == kGssEncRequestCode || code == kCancelRequestCode ||
                 protocol_major(code) == 3;
    if (!known) {
      return fail(protocol_major(code) < 3 ? Errc::kUnsupported : Errc::kUnknownType, frame_offset_ + 4,
                  protocol_major(code) < 3 ? fmt::format("protocol version {}.{} is not supported",
                                                         protocol_major(code), protocol_minor(code))
                                           : fmt::format("unknown startup request code {}", code));
    }
    if ((code == kSslRequestCode || code == kGssEncRequestCode) && length_ != 8) {
      return fail(Errc::kBadLength, frame_offset_, fmt::format("encryption request length {} is not 8", length_));
    }
  }
  after_frame(f);
  return FrameResult::of(f);
}

FrameResult Framer::stream_piece(Bytes& input) {
  if (input.empty()) return FrameResult::more();
  uint32_t body_len = length_ - 4;
  auto n = static_cast<uint32_t>(std::min<size_t>(input.size(), body_len - body_done_));
  Frame f;
  f.kind = FrameKind::kTyped;
  f.type = type_;
  f.length = length_;
  f.body = input.first(n);
  f.offset = frame_offset_;
  f.body_offset = body_done_;
  f.first = body_done_ == 0;
  body_done_ += n;
  f.last = body_done_ == body_len;
  input = input.subspan(n);
  offset_ += n;
  if (f.last) {
    streaming_ = false;
    after_frame(f);
  }
  return FrameResult::of(f);
}

FrameResult Framer::next(Bytes& input) {
  // The common case first: a whole typed frame at the front of the input,
  // returned as a view into it. Anything else (the startup phase, a frame
  // split across inputs or too large to return whole, a bad header) goes
  // the general way below, which also reports the errors.
  if (state_ == State::kTyped && header_have_ == 0 && !streaming_ && input.size() >= 5) {
    const uint8_t type = std::to_integer<uint8_t>(input[0]);
    const uint32_t length = load_be32(input.data() + 1);
    const uint32_t max = dir_ == Direction::kFrontend ? frontend_max_length(type) : backend_max_length(type);
    if (length >= 4 && length <= max && length - 4 <= opts_.max_buffered && length - 4 <= input.size() - 5) {
      // As at the start of every frame below: the buffer of a large frame
      // that came in pieces is given back.
      if (buf_.capacity() > (64u << 10)) std::vector<std::byte>().swap(buf_);
      type_ = type;
      length_ = length;
      frame_offset_ = offset_;
      Frame f;
      f.kind = FrameKind::kTyped;
      f.type = type;
      f.length = length;
      f.body = input.subspan(5, length - 4);
      f.offset = offset_;
      input = input.subspan(size_t{length} + 1);
      offset_ += uint64_t{length} + 1;
      return FrameResult::of(f);
    }
  }

  switch (state_) {
    case State::kFailed: return FrameResult::failure(error_);
    case State::kOpaque: {
      if (input.empty()) return FrameResult::more();
      Frame f;
      f.kind = FrameKind::kOpaque;
      f.body = input;
      f.offset = offset_;
      offset_ += input.size();
      input = {};
      return FrameResult::of(f);
    }
    case State::kClosed:
      if (input.empty()) return FrameResult::more();
      return fail(Errc::kUnexpected, offset_, "data after CancelRequest");
    case State::kAwaitAnswer:
      if (input.empty()) return FrameResult::more();
      if (dir_ == Direction::kFrontend) {
        return fail(Errc::kUnexpected, offset_, "data sent after an encryption request before the server's answer");
      } else {
        auto b = std::to_integer<uint8_t>(input[0]);
        if (b == 'E') {  // a server too old to know the request answers with an error
          state_ = State::kTyped;
          break;
        }
        // 'S' answers only SSLRequest, 'G' only GSSENCRequest; 'N' either.
        const uint8_t yes = awaited_ == kGssEncRequestCode ? 'G' : 'S';
        if (b != yes && b != 'N') {
          return fail(Errc::kBadValue, offset_, fmt::format("answer to encryption request is 0x{:02x}", b));
        }
        Frame f;
        f.kind = FrameKind::kAnswer;
        f.type = b;
        f.offset = offset_;
        input = input.subspan(1);
        offset_ += 1;
        state_ = b == 'N' ? State::kTyped : State::kOpaque;
        return FrameResult::of(f);
      }
    case State::kStartup:
    case State::kTyped: break;
  }

  if (streaming_) return stream_piece(input);

  if (header_have_ == 0) {
    buf_.clear();
    // A large frame that came in pieces may have grown the buffer to
    // max_buffered: give that back, so idle connections stay small.
    if (buf_.capacity() > (64u << 10)) std::vector<std::byte>().swap(buf_);
    body_done_ = 0;
    if (input.empty()) return FrameResult::more();
    frame_offset_ = offset_;
    if (state_ == State::kStartup && std::to_integer<uint8_t>(input[0]) == kTlsHandshakeByte) {
      state_ = State::kOpaque;  // direct TLS (sslnegotiation=direct): nothing more can be framed
      return next(input);
    }
  }

  const size_t header_size = state_ == State::kStartup ? 4 : 5;
  if (header_have_ == 0 && input.size() >= header_size) {
    // The usual case, the whole header in the input: read it there.
    const std::byte* header = input.data();
    header_have_ = header_size;
    input = input.subspan(header_size);
    offset_ += header_size;
    if (!validate_header(header)) return FrameResult::failure(error_);
  } else if (header_have_ < header_size) {
    size_t n = std::min(header_size - header_have_, input.size());
    std::copy_n(input.begin(), n, header_ + header_have_);
    header_have_ += n;
    input = input.subspan(n);
    offset_ += n;
    if (header_have_ < header_size) return FrameResult::more();
    if (!validate_header(header_)) return FrameResult::failure(error_);
  }

  const uint32_t body_len = length_ - 4;
  if (body_len > opts_.max_buffered) {
    streaming_ = true;
    return stream_piece(input);
  }
  if (body_done_ == 0 && input.size() >= body_len) {  // whole body in the input: no copy
    Bytes body = input.first(body_len);
    input = input.subspan(body_len);
    offset_ += body_len;
    return emit_whole(body);
  }
  size_t n = std::min<size_t>(body_len - body_done_, input.size());
  buf_.insert(buf_.end(), input.begin(), input.begin() + static_cast<ptrdiff_t>(n));
  body_done_ += static_cast<uint32_t>(n);
  input = input.subspan(n);
  offset_ += n;
  if (body_done_ < body_len) return FrameResult::more();
  return emit_whole({buf_.data(), buf_.size()});
}

}  // namespace pgwire
