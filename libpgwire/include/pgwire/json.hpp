// JSON written straight into a string: objects, arrays, keys and values, with
// the commas where they belong and strings escaped (RFC 8259). No tree is
// built and nothing is allocated beyond the output, so it serves the hot path
// (one JSON line per statement) as well as the reports. Used by the SQL log's
// JSON lines, pgdump-log --stats-format json and pgreplay --report.
//
//   JsonWriter j(out);
//   j.begin_object().key("rows").value(5).key("tag").value("SELECT 5").end_object();
//
// The caller keeps the shape right (a key before each value in an object);
// nesting deeper than 64 levels is not supported.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "pgwire/text.hpp"

namespace pgwire {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& key(std::string_view k) {
    separate();
    quoted(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

  JsonWriter& value(std::string_view s) {
    separate();
    quoted(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  JsonWriter& value(T v) {
    separate();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    return *this;
  }
  JsonWriter& boolean(bool b) {
    separate();
    out_ += b ? "true" : "false";
    return *this;
  }
  JsonWriter& null() {
    separate();
    out_ += "null";
    return *this;
  }
  // A number with `decimals` digits after the point ("1.500"); null if not finite.
  JsonWriter& fixed(double v, int decimals);
  // A value already encoded as JSON.
  JsonWriter& raw(std::string_view json) {
    separate();
    out_ += json;
    return *this;
  }
  // A string whose characters `write(out)` appends, already safe inside a
  // JSON string (a timestamp, hex digits): spares building it first.
  template <class F>
  JsonWriter& string_by(F&& write) {
    separate();
    out_ += '"';
    write(out_);
    out_ += '"';
    return *this;
  }
  // A value whose JSON `write(out)` appends (a number formatted elsewhere).
  template <class F>
  JsonWriter& raw_by(F&& write) {
    separate();
    write(out_);
    return *this;
  }
  // The value, or null when there is none.
  template <class T>
  JsonWriter& value_or_null(const std::optional<T>& v) {
    return v ? value(*v) : null();
  }
  // A string, or null when it is empty.
  JsonWriter& string_or_null(std::string_view s) { return s.empty() ? null() : value(s); }

  // key(k) followed by the value.
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    return key(k).value(v);
  }

 private:
  // Every element of an object or array but the first is preceded by a
  // comma; a value right after its key is not.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ == 0) return;
    const uint64_t bit = uint64_t{1} << (depth_ - 1);
    if (first_ & bit) {
      first_ &= ~bit;
    } else {
      out_ += ',';
    }
  }
  JsonWriter& open(char c) {
    separate();
    out_ += c;
    ++depth_;
    first_ |= uint64_t{1} << (depth_ - 1);
    return *this;
  }
  JsonWriter& close(char c) {
    out_ += c;
    if (depth_ > 0) --depth_;
    after_key_ = false;
    return *this;
  }
  void quoted(std::string_view s) {
    out_ += '"';
    append_json_escaped(out_, s);
    out_ += '"';
  }

  std::string& out_;
  uint64_t first_ = 0;  // bit d-1: level d has no element yet
  int depth_ = 0;
  bool after_key_ = false;
};

}  // namespace pgwire
