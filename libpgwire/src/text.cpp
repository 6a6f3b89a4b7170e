#include "pgwire/text.hpp"

#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace pgwire {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if the byte starts none.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  size_t n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// Whether none of the 8 bytes needs escaping by append_escaped: each is
// printable ASCII (0x20..0x7e) and not a backslash. Bytewise tests on a word
// at a time; each is exact about whether any byte matches.
bool plain8(const char* p) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  uint64_t x;
  std::memcpy(&x, p, 8);
  const uint64_t below_space = (x - kOnes * 0x20) & ~x & kHigh;
  const uint64_t above_tilde = ((x + kOnes * (0x7f - 0x7e)) | x) & kHigh;
  const uint64_t y = x ^ (kOnes * '\\');
  const uint64_t backslash = (y - kOnes) & ~y & kHigh;
  return (below_space | above_tilde | backslash) == 0;
}

}  // namespace

bool is_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void append_escaped(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // Copy a run of plain printable ASCII in one go: most SQL is nothing else.
    size_t run = i;
    while (run + 8 <= s.size() && plain8(s.data() + run)) run += 8;
    while (run < s.size() && static_cast<uint8_t>(s[run]) >= 0x20 && static_cast<uint8_t>(s[run]) < 0x7f &&
           s[run] != '\\')
      ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    auto c = static_cast<uint8_t>(s[i]);
    switch (c) {
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      case '\\':
        out += "\\\\";
        ++i;
        continue;
      default: break;
    }
    size_t n = c >= 0x80 ? utf8_sequence(s, i) : 0;
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
      ++i;
    }
  }
}

void append_json_escaped(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t run = i;
    while (run < s.size() && static_cast<uint8_t>(s[run]) >= 0x20 && static_cast<uint8_t>(s[run]) < 0x80 &&
           s[run] != '"' && s[run] != '\\')
      ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    auto c = static_cast<uint8_t>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        ++i;
        continue;
      case '\\':
        out += "\\\\";
        ++i;
        continue;
      case '\n':
        out += "\\n";
        ++i;
        continue;
      case '\r':
        out += "\\r";
        ++i;
        continue;
      case '\t':
        out += "\\t";
        ++i;
        continue;
      default: break;
    }
    size_t n = c >= 0x80 ? utf8_sequence(s, i) : 0;
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
      ++i;
    }
  }
}

void append_iso8601_utc(std::string& out, int64_t ns) {
  int64_t secs = ns >= 0 ? ns / 1000000000 : (ns - 999999999) / 1000000000;
  int64_t micros = (ns - secs * 1000000000) / 1000;
  // Consecutive timestamps mostly share their second: format that part once.
  thread_local int64_t cached_secs = INT64_MIN;
  thread_local char cached[20];  // "YYYY-MM-DDTHH:MM:SS"
  if (secs != cached_secs) {
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    auto r = fmt::format_to_n(cached, sizeof cached, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (r.size != 19) {  // a year beyond 9999: no cache, format in full
      fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
      return;
    }
    cached_secs = secs;
  }
  char buf[28];
  std::memcpy(buf, cached, 19);
  buf[19] = '.';
  for (int i = 25; i >= 20; --i) {
    buf[i] = static_cast<char>('0' + micros % 10);
    micros /= 10;
  }
  buf[26] = 'Z';
  out.append(buf, 27);
}

bool parse_iso8601_utc(std::string_view s, int64_t* ns_out) {
  auto num = [&](size_t pos, size_t len, int* v) {
    if (pos + len > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, *v);
    return ec == std::errc() && p == s.data() + pos + len;
  };
  std::tm tm{};
  int year, mon, day, hour = 0, min = 0, sec = 0;
  if (!num(0, 4, &year) || s.size() < 10 || s[4] != '-' || !num(5, 2, &mon) || s[7] != '-' || !num(8, 2, &day))
    return false;
  size_t pos = 10;
  int64_t frac_ns = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    if (!num(pos + 1, 2, &hour) || s.size() < pos + 9 || s[pos + 3] != ':' || !num(pos + 4, 2, &min) ||
        s[pos + 6] != ':' || !num(pos + 7, 2, &sec))
      return false;
    pos += 9;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      int64_t scale = 100000000;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac_ns += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
    }
  }
  if (pos < s.size() && s[pos] == 'Z') ++pos;
  if (pos != s.size()) return false;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return false;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  *ns_out = static_cast<int64_t>(timegm(&tm)) * 1000000000 + frac_ns;
  return true;
}

}  // namespace pgwire
