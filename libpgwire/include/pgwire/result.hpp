// Errors as values. Nothing on the data path throws: every decoder, framer and
// reader returns Result<T>, and the caller decides whether a connection dies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pgwire {

enum class Errc : uint8_t {
  kBadLength,          // a length field below its minimum or not matching the frame
  kTooLong,            // a length above the per-type maximum
  kTruncated,          // the data ended inside a field
  kMissingTerminator,  // a C string without its NUL
  kTrailingBytes,      // the message was not consumed exactly
  kBadCount,           // an element count that cannot fit in what is left
  kUnknownType,        // a type byte or request code this direction never sends
  kBadValue,           // a field outside its allowed values
  kUnexpected,         // a valid message at a point of the protocol where it cannot be
  kBadChecksum,        // capture record checksum mismatch
  kBadMagic,           // not a capture file
  kUnsupported,        // a newer version than this reader knows
  kIo,                 // an operating-system error (errno in the message)
};

const char* errc_name(Errc code);

struct Error {
  Errc code;
  uint64_t offset = 0;  // byte offset in the stream, file or message where it was found
  std::string message;

  std::string describe() const;  // "bad length at offset 12: ..."
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_ ? *error_ : no_error(); }

 private:
  static const Error& no_error();
  // Empty when ok: a Status is returned per record and per frame on hot
  // paths, and constructing an Error (a string) for each showed in profiles.
  std::optional<Error> error_;
};

}  // namespace pgwire
