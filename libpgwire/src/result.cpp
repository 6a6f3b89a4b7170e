#include "pgwire/result.hpp"

#include <fmt/format.h>

namespace pgwire {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kBadLength: return "bad length";
    case Errc::kTooLong: return "too long";
    case Errc::kTruncated: return "truncated";
    case Errc::kMissingTerminator: return "missing terminator";
    case Errc::kTrailingBytes: return "trailing bytes";
    case Errc::kBadCount: return "bad count";
    case Errc::kUnknownType: return "unknown type";
    case Errc::kBadValue: return "bad value";
    case Errc::kUnexpected: return "unexpected";
    case Errc::kBadChecksum: return "bad checksum";
    case Errc::kBadMagic: return "bad magic";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kIo: return "I/O error";
  }
  return "error";
}

const Error& Status::no_error() {
  static const Error kNone{Errc::kBadValue, 0, {}};
  return kNone;
}

std::string Error::describe() const { return fmt::format("{} at offset {}: {}", errc_name(code), offset, message); }

}  // namespace pgwire
