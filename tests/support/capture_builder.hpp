// Test-only encoder of capture files, written from docs/capture-format.md
// and independent of CaptureWriter, so tests that need files of a rotated set
// (1.1 headers), cut files or repeated records never check the writer
// against itself. The CRC is crc32_ieee, which capture_test.cpp checks
// against the standard check value and a bitwise reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "pgwire/capture.hpp"

namespace pgwire::test {

class CapEnc {
 public:
  CapEnc& u8(uint8_t v) {
    b_.push_back(std::byte(v));
    return *this;
  }
  CapEnc& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  CapEnc& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  CapEnc& u64(uint64_t v) { return u32(static_cast<uint32_t>(v >> 32)).u32(static_cast<uint32_t>(v)); }
  CapEnc& raw(Bytes x) {
    b_.insert(b_.end(), x.begin(), x.end());
    return *this;
  }
  CapEnc& raw(std::string_view s) { return raw(as_bytes(s)); }
  CapEnc& str16(std::string_view s) { return u16(static_cast<uint16_t>(s.size())).raw(s); }
  const std::vector<std::byte>& bytes() const { return b_; }

 private:
  std::vector<std::byte> b_;
};

// The file header (section 3): version 1.0, or 1.1 with set_id and set_index when set_id != 0.
inline std::vector<std::byte> cap_header(uint64_t set_id = 0, uint32_t set_index = 0, int64_t created_ns = 42,
                                         std::string_view creator = "test", uint32_t pid = 7) {
  CapEnc rest;
  rest.u64(static_cast<uint64_t>(created_ns)).u32(pid).str16(creator);
  if (set_id != 0) rest.u64(set_id).u32(set_index);
  CapEnc h;
  h.raw(std::string_view("PGWCAP\r\n", 8)).u16(1).u16(set_id != 0 ? 1 : 0);
  h.u32(static_cast<uint32_t>(rest.bytes().size() + 4)).raw(rest.bytes());
  h.u32(crc32_ieee(h.bytes()));
  return h.bytes();
}

// A record (section 4.1) of `type` around `payload`.
inline std::vector<std::byte> cap_record(uint16_t type, Bytes payload, uint16_t flags = 0) {
  CapEnc r;
  r.u32(static_cast<uint32_t>(payload.size())).u16(type).u16(flags).raw(payload);
  r.u32(crc32_ieee(r.bytes()));
  return r.bytes();
}

inline std::vector<std::byte> cap_open(uint64_t sid, int64_t ts, std::string_view client = "10.0.0.1:5000",
                                       std::string_view server = "10.0.0.2:5432") {
  CapEnc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).str16(client).str16(server);
  return cap_record(1, p.bytes());
}

inline std::vector<std::byte> cap_frame(uint64_t sid, int64_t ts, uint8_t dir, uint8_t kind, Bytes data,
                                        uint8_t flags = kFrameFirst | kFrameLast) {
  CapEnc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).u8(dir).u8(flags).u8(kind).u32(static_cast<uint32_t>(data.size()));
  p.raw(data);
  return cap_record(2, p.bytes());
}

inline std::vector<std::byte> cap_close(uint64_t sid, int64_t ts, std::string_view reason = "eof") {
  CapEnc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).str16(reason);
  return cap_record(3, p.bytes());
}

inline std::vector<std::byte> cap_meta(uint64_t sid, int64_t ts, std::string_view key, std::string_view value) {
  CapEnc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).str16(key).u32(static_cast<uint32_t>(value.size())).raw(value);
  return cap_record(4, p.bytes());
}

inline std::vector<std::byte> cap_cat(std::initializer_list<std::vector<std::byte>> parts) {
  std::vector<std::byte> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace pgwire::test
