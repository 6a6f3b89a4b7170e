// Test-only builder of wire bytes, written from the protocol documentation's
// "Message Formats" section and independent of the library's encoders (as
// pg-protocol's tests do), so tests never check the code against itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace pgwire::test {

class Wire {
 public:
  Wire& byte(uint8_t b) {
    b_.push_back(std::byte(b));
    return *this;
  }
  Wire& i16(int v) {
    byte(static_cast<uint8_t>((v >> 8) & 0xff));
    return byte(static_cast<uint8_t>(v & 0xff));
  }
  Wire& i32(int64_t v) {
    auto u = static_cast<uint32_t>(v);
    for (int s = 24; s >= 0; s -= 8) byte(static_cast<uint8_t>((u >> s) & 0xff));
    return *this;
  }
  Wire& str(std::string_view s) {  // String: bytes then NUL
    raw(s);
    return byte(0);
  }
  Wire& raw(std::string_view s) {
    for (char c : s) byte(static_cast<uint8_t>(c));
    return *this;
  }
  Wire& value(std::string_view s) {  // Int32 length + bytes
    i32(static_cast<int64_t>(s.size()));
    return raw(s);
  }
  Wire& null() { return i32(-1); }
  Wire& append(const Wire& o) {
    b_.insert(b_.end(), o.b_.begin(), o.b_.end());
    return *this;
  }
  // Byte1 type, Int32 length (counting itself) and the body.
  Wire& msg(char type, const Wire& body) {
    byte(static_cast<uint8_t>(type));
    i32(static_cast<int64_t>(body.b_.size()) + 4);
    b_.insert(b_.end(), body.b_.begin(), body.b_.end());
    return *this;
  }
  Wire& startup(std::initializer_list<std::pair<std::string_view, std::string_view>> params, int64_t code = 196608) {
    Wire body;
    body.i32(code);
    for (auto [k, v] : params) body.str(k).str(v);
    body.byte(0);
    i32(static_cast<int64_t>(body.b_.size()) + 4);
    b_.insert(b_.end(), body.b_.begin(), body.b_.end());
    return *this;
  }
  const std::vector<std::byte>& bytes() const { return b_; }

 private:
  std::vector<std::byte> b_;
};

inline Wire W() { return Wire(); }

}  // namespace pgwire::test
