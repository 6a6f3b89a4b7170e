#include "pgwire/bytes.hpp"

#include <fmt/format.h>

namespace pgwire {

bool Reader::short_read(size_t n, const char* what) {
  if (failed_) return false;
  fail(Errc::kTruncated, fmt::format("{} needs {} bytes, {} left", what, n, remaining()));
  return false;
}

void Reader::fail(Errc code, std::string message) { fail_at(pos_, code, std::move(message)); }

void Reader::fail_at(size_t pos, Errc code, std::string message) {
  if (failed_) return;
  failed_ = true;
  error_ = Error{code, base_ + pos, std::move(message)};
}

std::string_view Reader::no_terminator() {
  fail(Errc::kMissingTerminator, "string without terminating NUL");
  return {};
}

Bytes Reader::bytes(size_t n) {
  if (!need(n, "Byte(n)")) return {};
  Bytes b = data_.subspan(pos_, n);
  pos_ += n;
  return b;
}

Bytes Reader::rest() {
  if (failed_) return {};
  Bytes b = data_.subspan(pos_);
  pos_ = data_.size();
  return b;
}

std::optional<Bytes> Reader::nullable_bytes() {
  size_t at = pos_;
  int32_t len = i32();
  if (failed_) return Bytes{};
  if (len == -1) return std::nullopt;
  if (len < 0) {
    fail_at(at, Errc::kBadLength, fmt::format("value length {} is negative", len));
    return Bytes{};
  }
  return bytes(static_cast<size_t>(len));
}

bool Reader::bad_count(int64_t count, size_t min_size, const char* what) {
  if (failed_) return false;
  if (count < 0) {
    fail(Errc::kBadCount, fmt::format("{} count {} is negative", what, count));
  } else {
    fail(Errc::kBadCount, fmt::format("{} count {} needs at least {} bytes, {} left", what, count,
                                      static_cast<uint64_t>(count) * min_size, remaining()));
  }
  return false;
}

bool Reader::not_finished(const char* what) {
  if (failed_) return false;
  fail(Errc::kTrailingBytes, fmt::format("{}: {} bytes left after the last field", what, remaining()));
  return false;
}

std::string to_hex(Bytes b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (std::byte c : b) {
    auto v = std::to_integer<unsigned>(c);
    out.push_back(kDigits[v >> 4]);
    out.push_back(kDigits[v & 15]);
  }
  return out;
}

std::optional<std::vector<std::byte>> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  int hi = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      continue;
    } else {
      return std::nullopt;
    }
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(std::byte(hi << 4 | v));
      hi = -1;
    }
  }
  if (hi >= 0) return std::nullopt;
  return out;
}

}  // namespace pgwire
