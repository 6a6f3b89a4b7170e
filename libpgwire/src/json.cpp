#include "pgwire/json.hpp"

#include <cmath>

namespace pgwire {

JsonWriter& JsonWriter::fixed(double v, int decimals) {
  if (!std::isfinite(v)) return null();
  separate();
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (r.ec != std::errc()) {  // beyond 64 characters: too large to be a count or a time
    out_ += "null";
    return *this;
  }
  out_.append(buf, r.ptr);
  return *this;
}

}  // namespace pgwire
