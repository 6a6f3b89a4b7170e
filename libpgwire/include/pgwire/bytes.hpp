// Big-endian wire helpers: the one place that knows byte order.
//
// Reader follows PostgreSQL's pqformat.c: read fields in order, the first
// failure is sticky (later reads return zero values), and finish() checks the
// message was consumed exactly. Decoders read everything, then check once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgwire/result.hpp"

namespace pgwire {

using Bytes = std::span<const std::byte>;

inline Bytes as_bytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
inline std::string_view as_string_view(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

inline uint16_t load_be16(const std::byte* p) {
  return static_cast<uint16_t>((std::to_integer<uint16_t>(p[0]) << 8) | std::to_integer<uint16_t>(p[1]));
}
inline uint32_t load_be32(const std::byte* p) {
  return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
         (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}
inline uint64_t load_be64(const std::byte* p) { return (static_cast<uint64_t>(load_be32(p)) << 32) | load_be32(p + 4); }
inline void store_be16(std::byte* p, uint16_t v) {
  p[0] = std::byte(v >> 8);
  p[1] = std::byte(v & 0xff);
}
inline void store_be32(std::byte* p, uint32_t v) {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte((v >> 16) & 0xff);
  p[2] = std::byte((v >> 8) & 0xff);
  p[3] = std::byte(v & 0xff);
}
inline void store_be64(std::byte* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}

class Reader {
 public:
  // base_offset is added to every error offset, so errors point into the stream.
  explicit Reader(Bytes data, uint64_t base_offset = 0) : data_(data), base_(base_offset) {}

  // The reads are inline: every message field goes through one, and a call
  // each cost more than the read. Only the failures are out of line.
  uint8_t u8() {
    if (!need(1, "Byte1")) return 0;
    return std::to_integer<uint8_t>(data_[pos_++]);
  }
  int16_t i16() {
    if (!need(2, "Int16")) return 0;
    auto v = static_cast<int16_t>(load_be16(data_.data() + pos_));
    pos_ += 2;
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(i16()); }
  int32_t i32() {
    if (!need(4, "Int32")) return 0;
    auto v = static_cast<int32_t>(load_be32(data_.data() + pos_));
    pos_ += 4;
    return v;
  }
  uint32_t u32() { return static_cast<uint32_t>(i32()); }
  // Up to the NUL, which is consumed.
  std::string_view cstring() {
    // remaining() == 0 is checked first: memchr must not see the null data() of an empty span.
    const void* nul = failed_ || remaining() == 0 ? nullptr : std::memchr(data_.data() + pos_, 0, remaining());
    if (nul == nullptr) return no_terminator();
    const char* start = reinterpret_cast<const char*>(data_.data() + pos_);
    const auto len = static_cast<size_t>(static_cast<const char*>(nul) - start);
    pos_ += len + 1;
    return {start, len};
  }
  Bytes bytes(size_t n);
  Bytes rest();  // everything left
  // Int32 length + bytes, -1 meaning NULL.
  std::optional<Bytes> nullable_bytes();

  // Checks that `count` elements of at least `min_size` bytes each can still
  // fit, before the caller allocates room for them.
  bool check_count(int64_t count, size_t min_size, const char* what) {
    if (!failed_ && count >= 0 && static_cast<uint64_t>(count) * min_size <= remaining()) return true;
    return bad_count(count, min_size, what);
  }

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool ok() const { return !failed_; }
  // Exact consumption; sets kTrailingBytes otherwise. Returns ok().
  bool finish(const char* what) { return (!failed_ && remaining() == 0) || not_finished(what); }
  void fail(Errc code, std::string message);
  void fail_at(size_t pos, Errc code, std::string message);
  const Error& error() const { return error_; }

 private:
  bool need(size_t n, const char* what) { return (!failed_ && remaining() >= n) || short_read(n, what); }
  // The failures of the inline reads: each sets the error (unless one is
  // set already) and returns false, or for cstring an empty view.
  bool short_read(size_t n, const char* what);
  std::string_view no_terminator();
  bool bad_count(int64_t count, size_t min_size, const char* what);
  bool not_finished(const char* what);

  Bytes data_;
  size_t pos_ = 0;
  uint64_t base_;
  bool failed_ = false;
  Error error_{Errc::kBadValue, 0, {}};
};

// Growable output buffer for encoders. Messages are appended whole.
class Buffer {
 public:
  void u8(uint8_t v) { data_.push_back(std::byte(v)); }
  void i16(int16_t v) { u16(static_cast<uint16_t>(v)); }
  void u16(uint16_t v) {
    size_t at = grow(2);
    store_be16(data_.data() + at, v);
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void u32(uint32_t v) {
    size_t at = grow(4);
    store_be32(data_.data() + at, v);
  }
  void cstring(std::string_view s) {
    append(as_bytes(s));
    u8(0);
  }
  void append(Bytes b) { data_.insert(data_.end(), b.begin(), b.end()); }
  void append(std::string_view s) { append(as_bytes(s)); }
  void nullable_bytes(const std::optional<Bytes>& b) {
    if (!b) {
      i32(-1);
    } else {
      i32(static_cast<int32_t>(b->size()));
      append(*b);
    }
  }

  // Typed message: writes type and a length placeholder; end_message patches it.
  size_t begin_message(char type) {
    u8(static_cast<uint8_t>(type));
    size_t at = data_.size();
    u32(0);
    return at;
  }
  // Untyped (startup-phase) packet.
  size_t begin_packet() {
    size_t at = data_.size();
    u32(0);
    return at;
  }
  void end_message(size_t length_at) {
    store_be32(data_.data() + length_at, static_cast<uint32_t>(data_.size() - length_at));
  }

  Bytes view() const { return {data_.data(), data_.size()}; }
  std::string_view string_view() const { return as_string_view(view()); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  void clear() { data_.clear(); }
  std::vector<std::byte>& storage() { return data_; }

 private:
  size_t grow(size_t n) {
    size_t at = data_.size();
    data_.resize(at + n);
    return at;
  }
  std::vector<std::byte> data_;
};

std::string to_hex(Bytes b);
// Parses hex digits, ignoring whitespace; returns nullopt on anything else.
std::optional<std::vector<std::byte>> from_hex(std::string_view hex);

}  // namespace pgwire
