#include "pgwire/binary_values.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>
#include <vector>

#include "pgwire/text.hpp"

namespace pgwire {
namespace {

enum class Kind : uint8_t {
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kOid,
  kFloat4,
  kFloat8,
  kNumeric,
  kText,  // text, varchar, bpchar: the bytes as they are
  kName,  // like text, at most 63 bytes
  kJson,  // like text, and JSON
  kBytea,
  kUuid,
  kDate,
  kTime,
  kTimeTz,
  kTimestamp,
  kTimestampTz,
  kInterval,
  kJsonb,
  kInet,
  kCidr,
  kArray,
};

struct TypeInfo {
  uint32_t oid;
  const char* name;  // pg_type.typname
  Kind kind;
  uint32_t element;  // kArray: the element type's OID
};

// The OIDs are fixed in PostgreSQL's pg_type.dat.
constexpr std::array kTypes{
    TypeInfo{16, "bool", Kind::kBool, 0},
    TypeInfo{17, "bytea", Kind::kBytea, 0},
    TypeInfo{19, "name", Kind::kName, 0},
    TypeInfo{20, "int8", Kind::kInt8, 0},
    TypeInfo{21, "int2", Kind::kInt2, 0},
    TypeInfo{23, "int4", Kind::kInt4, 0},
    TypeInfo{25, "text", Kind::kText, 0},
    TypeInfo{26, "oid", Kind::kOid, 0},
    TypeInfo{114, "json", Kind::kJson, 0},
    TypeInfo{199, "_json", Kind::kArray, 114},
    TypeInfo{650, "cidr", Kind::kCidr, 0},
    TypeInfo{651, "_cidr", Kind::kArray, 650},
    TypeInfo{700, "float4", Kind::kFloat4, 0},
    TypeInfo{701, "float8", Kind::kFloat8, 0},
    TypeInfo{869, "inet", Kind::kInet, 0},
    TypeInfo{1000, "_bool", Kind::kArray, 16},
    TypeInfo{1001, "_bytea", Kind::kArray, 17},
    TypeInfo{1003, "_name", Kind::kArray, 19},
    TypeInfo{1005, "_int2", Kind::kArray, 21},
    TypeInfo{1007, "_int4", Kind::kArray, 23},
    TypeInfo{1009, "_text", Kind::kArray, 25},
    TypeInfo{1014, "_bpchar", Kind::kArray, 1042},
    TypeInfo{1015, "_varchar", Kind::kArray, 1043},
    TypeInfo{1016, "_int8", Kind::kArray, 20},
    TypeInfo{1021, "_float4", Kind::kArray, 700},
    TypeInfo{1022, "_float8", Kind::kArray, 701},
    TypeInfo{1028, "_oid", Kind::kArray, 26},
    TypeInfo{1041, "_inet", Kind::kArray, 869},
    TypeInfo{1042, "bpchar", Kind::kText, 0},
    TypeInfo{1043, "varchar", Kind::kText, 0},
    TypeInfo{1082, "date", Kind::kDate, 0},
    TypeInfo{1083, "time", Kind::kTime, 0},
    TypeInfo{1114, "timestamp", Kind::kTimestamp, 0},
    TypeInfo{1115, "_timestamp", Kind::kArray, 1114},
    TypeInfo{1182, "_date", Kind::kArray, 1082},
    TypeInfo{1183, "_time", Kind::kArray, 1083},
    TypeInfo{1184, "timestamptz", Kind::kTimestampTz, 0},
    TypeInfo{1185, "_timestamptz", Kind::kArray, 1184},
    TypeInfo{1186, "interval", Kind::kInterval, 0},
    TypeInfo{1187, "_interval", Kind::kArray, 1186},
    TypeInfo{1231, "_numeric", Kind::kArray, 1700},
    TypeInfo{1266, "timetz", Kind::kTimeTz, 0},
    TypeInfo{1270, "_timetz", Kind::kArray, 1266},
    TypeInfo{1700, "numeric", Kind::kNumeric, 0},
    TypeInfo{2950, "uuid", Kind::kUuid, 0},
    TypeInfo{2951, "_uuid", Kind::kArray, 2950},
    TypeInfo{3802, "jsonb", Kind::kJsonb, 0},
    TypeInfo{3807, "_jsonb", Kind::kArray, 3802},
};

const TypeInfo* find_type(uint32_t oid) {
  for (const TypeInfo& t : kTypes) {
    if (t.oid == oid) return &t;
  }
  return nullptr;
}

uint8_t byte_at(Bytes b, size_t i) { return std::to_integer<uint8_t>(b[i]); }
int16_t i16_at(Bytes b, size_t i) { return static_cast<int16_t>(load_be16(b.data() + i)); }
int32_t i32_at(Bytes b, size_t i) { return static_cast<int32_t>(load_be32(b.data() + i)); }
int64_t i64_at(Bytes b, size_t i) { return static_cast<int64_t>(load_be64(b.data() + i)); }

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

// `v` in decimal, zero-padded to at least `width` digits (pg_ultostr_zeropad).
void append_padded(std::string& out, uint64_t v, size_t width) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  auto len = static_cast<size_t>(end - buf);
  if (len < width) out.append(width - len, '0');
  out.append(buf, len);
}

constexpr char kHexDigits[] = "0123456789abcdef";

void append_hex_byte(std::string& out, uint8_t b) {
  out += kHexDigits[b >> 4];
  out += kHexDigits[b & 15];
}

// ---- floats: float4out / float8out with extra_float_digits = 1 --------------

// PostgreSQL (since 12) prints the shortest decimal that reads back exactly
// (Ryu), in fixed notation when the decimal exponent is in [-4, 15) for
// float8 and [-4, 6) for float4, else as d.ddde+XX. std::to_chars without a
// precision gives the same shortest digits.
template <class Float>
void append_float(std::string& out, Float v, int fixed_limit) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(end - buf));
  size_t e = sci.find('e');
  int exponent = 0;
  std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exponent);
  if (exponent < -4 || exponent >= fixed_limit) {
    out += sci;  // "1e+16", "1.5e-05": the form PostgreSQL writes too
    return;
  }
  std::string_view mantissa = sci.substr(0, e);
  if (mantissa.front() == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  if (exponent < 0) {
    out += "0.";
    out.append(static_cast<size_t>(-exponent - 1), '0');
    out += digits;
    return;
  }
  const auto int_len = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_len) {
    out += digits;
    out.append(int_len - digits.size(), '0');
  } else {
    out.append(digits, 0, int_len);
    out += '.';
    out.append(digits, int_len);
  }
}

// ---- numeric: numeric_recv's checks, get_str_from_var's text ----------------

constexpr uint16_t kNumericPos = 0x0000;
constexpr uint16_t kNumericNeg = 0x4000;
constexpr uint16_t kNumericNaN = 0xC000;
constexpr uint16_t kNumericPInf = 0xD000;
constexpr uint16_t kNumericNInf = 0xF000;
constexpr uint16_t kNumericDscaleMask = 0x3FFF;

// `d` (0..9999) in decimal: how many digits.
size_t decimal_digits(int d) { return d < 10 ? 1 : d < 100 ? 2 : d < 1000 ? 3 : 4; }

bool render_numeric(Bytes v, std::string& out, size_t max_out) {
  if (v.size() < 8) return false;
  const uint16_t ndigits = load_be16(v.data());
  int weight = i16_at(v, 2);
  const uint16_t sign = load_be16(v.data() + 4);
  const uint16_t dscale = load_be16(v.data() + 6);
  if (v.size() != 8 + size_t{2} * ndigits) return false;
  if ((dscale & kNumericDscaleMask) != dscale) return false;
  std::vector<int> digits(ndigits);
  for (size_t i = 0; i < ndigits; ++i) {
    digits[i] = load_be16(v.data() + 8 + 2 * i);
    if (digits[i] > 9999) return false;  // numeric_recv: "invalid digit in external numeric value"
  }
  switch (sign) {
    case kNumericNaN: out += "NaN"; return true;
    // PostgreSQL 14 and later; older servers refuse the infinities, but none
    // reads them as another value (unlike the interval extremes): rendered.
    case kNumericPInf: out += "Infinity"; return true;
    case kNumericNInf: out += "-Infinity"; return true;
    case kNumericPos:
    case kNumericNeg: break;
    default: return false;
  }
  // numeric_recv keeps dscale decimal digits after the point (trunc_var)...
  const long kept_decimals = (static_cast<long>(weight) + 1) * 4 + dscale;
  if (kept_decimals <= 0) {
    digits.clear();
  } else if (static_cast<size_t>((kept_decimals + 3) / 4) <= digits.size()) {
    digits.resize(static_cast<size_t>((kept_decimals + 3) / 4));
    static constexpr int kPowers[] = {1, 1000, 100, 10};
    digits.back() -= digits.back() % kPowers[kept_decimals % 4];
  }
  // ...then make_result drops the zero digits at both ends; zero is positive.
  size_t first = 0;
  while (first < digits.size() && digits[first] == 0) {
    ++first;
    --weight;
  }
  while (digits.size() > first && digits.back() == 0) digits.pop_back();
  bool negative = sign == kNumericNeg;
  if (first == digits.size()) {
    weight = 0;
    negative = false;
  } else if (weight < std::numeric_limits<int16_t>::min()) {
    return false;  // make_result: "value overflows numeric format"
  }
  auto digit = [&](long d) -> int {
    return d >= 0 && static_cast<size_t>(d) < digits.size() - first ? digits[first + static_cast<size_t>(d)] : 0;
  };
  // The text's length, before any of it is written: up to 131,072 integer
  // digits (weight 32767) and 16383 decimals from 10 bytes.
  const size_t length = (negative ? 1 : 0) +
                        (weight < 0 ? 1 : decimal_digits(digit(0)) + 4 * static_cast<size_t>(weight)) +
                        (dscale > 0 ? 1 + size_t{dscale} : 0);
  if (length > max_out) return false;
  // get_str_from_var: the integer part without leading zeros, then dscale decimals.
  if (negative) out += '-';
  if (weight < 0) {
    out += '0';
  } else {
    append_int(out, digit(0));
    for (long d = 1; d <= weight; ++d) append_padded(out, static_cast<uint64_t>(digit(d)), 4);
  }
  if (dscale > 0) {
    out += '.';
    size_t left = dscale;
    for (long d = static_cast<long>(weight) + 1; left > 0; ++d) {
      char four[4];
      int dig = digit(d);
      for (int k = 3; k >= 0; --k) {
        four[k] = static_cast<char>('0' + dig % 10);
        dig /= 10;
      }
      const size_t take = left < 4 ? left : 4;
      out.append(four, take);
      left -= take;
    }
  }
  return true;
}

// ---- dates and times: PostgreSQL's j2date, timestamp2tm, EncodeDateTime -----

constexpr int64_t kUsecsPerSec = 1000000;
constexpr int64_t kUsecsPerMinute = 60 * kUsecsPerSec;
constexpr int64_t kUsecsPerHour = 60 * kUsecsPerMinute;
constexpr int64_t kUsecsPerDay = 24 * kUsecsPerHour;
constexpr int32_t kPostgresEpochJdate = 2451545;  // 2000-01-01
constexpr int32_t kDateEndJulian = 2147483494;    // 5874898-01-01, the first date out of range
// Timestamps from 4714-11-24 BC 00:00 (Julian day 0) up to, not including, 294277-01-01.
constexpr int64_t kMinTimestamp = -211813488000000000;
constexpr int64_t kEndTimestamp = 9223371331200000000;

struct Ymd {
  int year;
  int month;
  int day;
};

Ymd j2date(int jd) {
  auto julian = static_cast<unsigned>(jd);
  julian += 32044;
  unsigned quad = julian / 146097;
  unsigned extra = (julian - quad * 146097) * 4 + 3;
  julian += 60 + quad * 3 + extra / 146097;
  quad = julian / 1461;
  julian -= quad * 1461;
  int y = static_cast<int>(julian * 4 / 1461);
  julian = ((y != 0) ? ((julian + 305) % 365) : ((julian + 306) % 366)) + 123;
  y += static_cast<int>(quad * 4);
  Ymd r{};
  r.year = y - 4800;
  quad = julian * 2141 / 65536;
  r.day = static_cast<int>(julian - 7834 * quad / 256);
  r.month = static_cast<int>((quad + 10) % 12 + 1);
  return r;
}

// "YYYY-MM-DD"; the " BC" suffix, when the year is not positive, is the caller's.
void append_ymd(std::string& out, const Ymd& d) {
  append_padded(out, static_cast<uint64_t>(d.year > 0 ? d.year : -(d.year - 1)), 4);
  out += '-';
  append_padded(out, static_cast<uint64_t>(d.month), 2);
  out += '-';
  append_padded(out, static_cast<uint64_t>(d.day), 2);
}

// AppendSeconds: two digits, then the microseconds without their trailing zeros.
void append_seconds(std::string& out, int64_t sec, int64_t usec) {
  append_padded(out, static_cast<uint64_t>(sec < 0 ? -sec : sec), 2);
  if (usec == 0) return;
  uint64_t frac = static_cast<uint64_t>(usec < 0 ? -usec : usec);
  char six[6];
  for (int k = 5; k >= 0; --k) {
    six[k] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  size_t len = 6;
  while (len > 0 && six[len - 1] == '0') --len;
  out += '.';
  out.append(six, len);
}

// "HH:MM:SS[.ffffff]" for 0 <= t <= 24:00:00.
void append_time_of_day(std::string& out, int64_t t) {
  append_padded(out, static_cast<uint64_t>(t / kUsecsPerHour), 2);
  out += ':';
  append_padded(out, static_cast<uint64_t>(t / kUsecsPerMinute % 60), 2);
  out += ':';
  append_seconds(out, t / kUsecsPerSec % 60, t % kUsecsPerSec);
}

// EncodeTimezone: "+HH", ":MM" if minutes or seconds, ":SS" if seconds. `gmtoff` is east of UTC.
void append_utc_offset(std::string& out, int32_t gmtoff) {
  out += gmtoff < 0 ? '-' : '+';
  int32_t a = gmtoff < 0 ? -gmtoff : gmtoff;
  int32_t hour = a / 3600;
  int32_t min = a / 60 % 60;
  int32_t sec = a % 60;
  append_padded(out, static_cast<uint64_t>(hour), 2);
  if (min != 0 || sec != 0) {
    out += ':';
    append_padded(out, static_cast<uint64_t>(min), 2);
  }
  if (sec != 0) {
    out += ':';
    append_padded(out, static_cast<uint64_t>(sec), 2);
  }
}

bool render_date(Bytes v, std::string& out) {
  if (v.size() != 4) return false;
  const int32_t days = i32_at(v, 0);
  if (days == std::numeric_limits<int32_t>::min()) {
    out += "-infinity";
    return true;
  }
  if (days == std::numeric_limits<int32_t>::max()) {
    out += "infinity";
    return true;
  }
  const int64_t jd = int64_t{days} + kPostgresEpochJdate;
  if (jd < 0 || jd >= kDateEndJulian) return false;  // date_recv: "date out of range"
  const Ymd d = j2date(static_cast<int>(jd));
  append_ymd(out, d);
  if (d.year <= 0) out += " BC";
  return true;
}

bool render_time(Bytes v, std::string& out) {
  if (v.size() != 8) return false;
  const int64_t t = i64_at(v, 0);
  if (t < 0 || t > kUsecsPerDay) return false;
  append_time_of_day(out, t);
  return true;
}

bool render_timetz(Bytes v, std::string& out) {
  if (v.size() != 12) return false;
  const int64_t t = i64_at(v, 0);
  const int32_t zone = i32_at(v, 8);  // seconds west of UTC
  constexpr int32_t kTzDispLimit = (15 + 1) * 3600;
  if (t < 0 || t > kUsecsPerDay || zone <= -kTzDispLimit || zone >= kTzDispLimit) return false;
  append_time_of_day(out, t);
  append_utc_offset(out, -zone);
  return true;
}

bool render_timestamp(Bytes v, bool with_zone, std::string& out) {
  if (v.size() != 8) return false;
  const int64_t ts = i64_at(v, 0);
  if (ts == std::numeric_limits<int64_t>::min()) {
    out += "-infinity";
    return true;
  }
  if (ts == std::numeric_limits<int64_t>::max()) {
    out += "infinity";
    return true;
  }
  if (ts < kMinTimestamp || ts >= kEndTimestamp) return false;  // timestamp_recv: "timestamp out of range"
  int64_t date = ts / kUsecsPerDay;
  int64_t time = ts % kUsecsPerDay;
  if (time < 0) {
    time += kUsecsPerDay;
    date -= 1;
  }
  const Ymd d = j2date(static_cast<int>(date + kPostgresEpochJdate));
  append_ymd(out, d);
  out += ' ';
  append_time_of_day(out, time);
  if (with_zone) out += "+00";
  if (d.year <= 0) out += " BC";
  return true;
}

// AddPostgresIntPart: " -1 years", "+2 mons" after a negative field.
void append_interval_part(std::string& out, int64_t value, const char* unit, bool& is_zero, bool& is_before) {
  if (value == 0) return;
  if (!is_zero) out += ' ';
  if (is_before && value > 0) out += '+';
  append_int(out, value);
  out += ' ';
  out += unit;
  if (value != 1) out += 's';
  is_before = value < 0;
  is_zero = false;
}

bool render_interval(Bytes v, std::string& out) {
  if (v.size() != 16) return false;
  const int64_t time = i64_at(v, 0);
  const int32_t day = i32_at(v, 8);
  const int32_t month = i32_at(v, 12);
  // PostgreSQL 17 reads these two as -infinity and infinity, older servers
  // as numbers: the server's version is not known here.
  const bool all_min = time == std::numeric_limits<int64_t>::min() && day == std::numeric_limits<int32_t>::min() &&
                       month == std::numeric_limits<int32_t>::min();
  const bool all_max = time == std::numeric_limits<int64_t>::max() && day == std::numeric_limits<int32_t>::max() &&
                       month == std::numeric_limits<int32_t>::max();
  if (all_min || all_max) return false;
  bool is_zero = true;
  bool is_before = false;
  append_interval_part(out, month / 12, "year", is_zero, is_before);
  append_interval_part(out, month % 12, "mon", is_zero, is_before);
  append_interval_part(out, day, "day", is_zero, is_before);
  const int64_t hour = time / kUsecsPerHour;
  const int64_t min = time / kUsecsPerMinute % 60;
  const int64_t sec = time / kUsecsPerSec % 60;
  const int64_t usec = time % kUsecsPerSec;
  if (is_zero || time != 0) {
    const bool minus = hour < 0 || min < 0 || sec < 0 || usec < 0;
    if (!is_zero) out += ' ';
    if (minus) {
      out += '-';
    } else if (is_before) {
      out += '+';
    }
    append_padded(out, hour < 0 ? 0 - static_cast<uint64_t>(hour) : static_cast<uint64_t>(hour), 2);
    out += ':';
    append_padded(out, static_cast<uint64_t>(min < 0 ? -min : min), 2);
    out += ':';
    append_seconds(out, sec, usec);
  }
  return true;
}

// ---- network addresses: network_recv's checks, network_out's text ----------

constexpr uint8_t kPgsqlAfInet = 2;   // AF_INET + 0
constexpr uint8_t kPgsqlAfInet6 = 3;  // AF_INET + 1

void append_ipv6(std::string& out, Bytes a) {
  uint16_t words[8];
  for (size_t i = 0; i < 8; ++i) words[i] = load_be16(a.data() + 2 * i);
  // The first longest run of two or more zero words becomes "::".
  int best_base = -1, best_len = 0, cur_base = -1, cur_len = 0;
  for (int i = 0; i < 8; ++i) {
    if (words[i] == 0) {
      if (cur_base == -1) {
        cur_base = i;
        cur_len = 1;
      } else {
        ++cur_len;
      }
    } else if (cur_base != -1) {
      if (best_base == -1 || cur_len > best_len) best_base = cur_base, best_len = cur_len;
      cur_base = -1;
    }
  }
  if (cur_base != -1 && (best_base == -1 || cur_len > best_len)) best_base = cur_base, best_len = cur_len;
  if (best_base != -1 && best_len < 2) best_base = -1;
  for (int i = 0; i < 8; ++i) {
    if (best_base != -1 && i >= best_base && i < best_base + best_len) {
      if (i == best_base) out += ':';
      continue;
    }
    if (i != 0) out += ':';
    // An IPv4-compatible or IPv4-mapped address ends in dotted quad form.
    if (i == 6 && best_base == 0 &&
        (best_len == 6 || (best_len == 7 && words[7] != 0x0001) || (best_len == 5 && words[5] == 0xffff))) {
      for (size_t k = 12; k < 16; ++k) {
        if (k != 12) out += '.';
        append_int(out, byte_at(a, k));
      }
      return;  // the address ends here: no trailing run to mark
    }
    char buf[8];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, words[i], 16);
    out.append(buf, static_cast<size_t>(end - buf));
  }
  if (best_base != -1 && best_base + best_len == 8) out += ':';
}

bool render_network(Bytes v, bool is_cidr, std::string& out) {
  if (v.size() < 4) return false;
  const uint8_t family = byte_at(v, 0);
  const uint8_t bits = byte_at(v, 1);
  const uint8_t nb = byte_at(v, 3);  // byte 2, the is_cidr flag, is ignored by the server
  const unsigned max_bits = family == kPgsqlAfInet ? 32 : family == kPgsqlAfInet6 ? 128 : 0;
  if (max_bits == 0 || bits > max_bits || nb != max_bits / 8 || v.size() != 4u + nb) return false;
  const Bytes addr = v.subspan(4);
  if (is_cidr) {  // no bits set right of the netmask (addressOK)
    for (unsigned i = bits; i < max_bits; ++i) {
      if (byte_at(addr, i / 8) & (0x80 >> (i % 8))) return false;
    }
  }
  if (family == kPgsqlAfInet) {
    for (size_t k = 0; k < 4; ++k) {
      if (k != 0) out += '.';
      append_int(out, byte_at(addr, k));
    }
  } else {
    append_ipv6(out, addr);
  }
  if (is_cidr || bits != max_bits) {
    out += '/';
    append_int(out, bits);
  }
  return true;
}

// ---- text: what pq_getmsgtext accepts ---------------------------------------

// The text types' recv functions read the bytes in the client's encoding,
// which the log takes to be UTF-8 (the server refuses bytes that are not),
// into a text value, which cannot hold a zero byte.
bool is_pg_text(std::string_view s) { return s.find('\0') == std::string_view::npos && is_utf8(s); }

// ---- json and jsonb: json_recv's and jsonb_recv's parse ----------------------

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
int hex_value(char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

// Checks a JSON text the way PostgreSQL's parser does: RFC 8259's grammar,
// which is also PostgreSQL's. For jsonb (`as_jsonb`) it also checks what
// jsonb_recv then does with the tokens: \u escapes become characters (none
// may be U+0000, a surrogate only in a high-low pair) and numbers numerics
// (which must fit). json_recv keeps the text and checks neither.
//
// No recursion: the containers open at a point are an explicit stack, at most
// kMaxJsonDepth entries (deeper is refused, as a server with a small stack
// would: see binary_values.hpp).
class JsonChecker {
 public:
  JsonChecker(std::string_view text, bool as_jsonb) : s_(text), jsonb_(as_jsonb) {}

  bool valid() {
    std::vector<char> open;  // '[' or '{' for each container not yet closed
    for (;;) {
      // A value, or the start of a container's first one.
      skip_space();
      if (at_end()) return false;
      const char c = s_[i_];
      if (c == '[' || c == '{') {
        if (open.size() >= kMaxJsonDepth) return false;  // this one would be level kMaxJsonDepth + 1
        ++i_;
        skip_space();
        if (!at_end() && s_[i_] == (c == '[' ? ']' : '}')) {
          ++i_;  // empty: a whole value
        } else {
          open.push_back(c);
          if (c == '{' && !member_name()) return false;
          continue;
        }
      } else if (!scalar()) {
        return false;
      }
      // After a value: close containers, or go on to the next value of one.
      for (;;) {
        skip_space();
        if (open.empty()) return at_end();
        if (at_end()) return false;
        const char next = s_[i_++];
        if (next == ',') {
          if (open.back() == '{' && !member_name()) return false;
          break;
        }
        if (next != (open.back() == '[' ? ']' : '}')) return false;
        open.pop_back();
      }
    }
  }

 private:
  bool at_end() const { return i_ == s_.size(); }
  void skip_space() {
    while (!at_end() && is_json_space(s_[i_])) ++i_;
  }

  // "name" and the colon after it.
  bool member_name() {
    skip_space();
    if (at_end() || s_[i_] != '"' || !string()) return false;
    skip_space();
    if (at_end() || s_[i_] != ':') return false;
    ++i_;
    return true;
  }

  bool scalar() {
    const char c = s_[i_];
    if (c == '"') return string();
    if (c == '-' || is_digit(c)) return number();
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return true;
      }
    }
    return false;
  }

  // From the opening quote past the closing one. No control characters;
  // escapes \" \\ \/ \b \f \n \r \t and \u with four hex digits.
  bool string() {
    ++i_;
    bool want_low = false;  // jsonb: after a high surrogate's escape, only a low one's may follow
    while (!at_end()) {
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return !want_low;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        if (want_low) return false;
        ++i_;
        continue;
      }
      if (s_.size() - i_ < 2) return false;
      const char e = s_[i_ + 1];
      if (e != 'u') {
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || want_low) return false;
        i_ += 2;
        continue;
      }
      if (s_.size() - i_ < 6) return false;
      uint32_t code = 0;
      for (size_t k = 2; k < 6; ++k) {
        if (!is_hex_digit(s_[i_ + k])) return false;
        code = code * 16 + static_cast<uint32_t>(hex_value(s_[i_ + k]));
      }
      i_ += 6;
      if (!jsonb_) continue;
      const bool high = code >= 0xD800 && code <= 0xDBFF;
      const bool low = code >= 0xDC00 && code <= 0xDFFF;
      if (high ? want_low : low != want_low) return false;  // a pair's halves in order, nothing between
      if (code == 0) return false;                          // jsonb: "\u0000 cannot be converted to text"
      want_low = high;
    }
    return false;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    if (s_[i_] == '-') ++i_;
    if (at_end() || !is_digit(s_[i_])) return false;
    const size_t int_begin = i_;
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (!at_end() && is_digit(s_[i_])) ++i_;
    }
    const size_t int_end = i_;
    size_t frac_end = i_;
    if (!at_end() && s_[i_] == '.') {
      ++i_;
      if (at_end() || !is_digit(s_[i_])) return false;
      while (!at_end() && is_digit(s_[i_])) ++i_;
      frac_end = i_;
    }
    int64_t exponent = 0;
    if (!at_end() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      bool negative = false;
      if (!at_end() && (s_[i_] == '+' || s_[i_] == '-')) negative = s_[i_++] == '-';
      if (at_end() || !is_digit(s_[i_])) return false;
      for (; !at_end() && is_digit(s_[i_]); ++i_) {
        exponent = std::min<int64_t>(exponent * 10 + (s_[i_] - '0'), kExponentCap);
      }
      if (negative) exponent = -exponent;
    }
    return !jsonb_ || fits_numeric(int_begin, int_end, frac_end, exponent);
  }

  // numeric_in on the number: an exponent under INT_MAX / 2 either way, at
  // most 16383 decimals (NUMERIC_DSCALE_MAX) once it is applied, and the
  // first nonzero digit's base-10000 weight in int16 (make_result: "value
  // overflows numeric format"). The digits are s_[int_begin, int_end), then
  // after the point up to frac_end.
  bool fits_numeric(size_t int_begin, size_t int_end, size_t frac_end, int64_t exponent) const {
    constexpr int64_t kMaxExponent = std::numeric_limits<int32_t>::max() / 2;
    if (exponent >= kMaxExponent || exponent <= -kMaxExponent) return false;
    const size_t frac_begin = int_end == frac_end ? int_end : int_end + 1;
    const auto decimals = static_cast<int64_t>(frac_end - frac_begin);
    if (decimals - exponent > 16383) return false;
    // The first nonzero digit's decimal weight (10^dweight); none: zero, weight 0.
    int64_t dweight = 0;
    bool zero = true;
    for (size_t k = int_begin; k < frac_end && zero; ++k) {
      if (s_[k] == '.' || s_[k] == '0') continue;
      zero = false;
      dweight = k < int_end ? static_cast<int64_t>(int_end - k) - 1 : -static_cast<int64_t>(k - frac_begin) - 1;
    }
    if (zero) return true;
    dweight += exponent;
    const int64_t weight = dweight >= 0 ? dweight / 4 : -((-dweight - 1) / 4 + 1);
    return weight <= std::numeric_limits<int16_t>::max() && weight >= std::numeric_limits<int16_t>::min();
  }

  static constexpr int64_t kExponentCap = int64_t{1} << 40;  // well past what fits: no overflow

  std::string_view s_;
  bool jsonb_;
  size_t i_ = 0;
};

// ---- the scalar types --------------------------------------------------------

// `max_out` bounds only the numeric's text, the one that can be much longer
// than its bytes; render_binary_value checks the others' when they are written.
bool render_scalar(Kind kind, Bytes v, std::string& out, size_t max_out) {
  switch (kind) {
    case Kind::kBool:
      if (v.size() != 1) return false;
      out += byte_at(v, 0) != 0 ? 't' : 'f';  // boolrecv: any byte but 0 is true
      return true;
    case Kind::kInt2:
      if (v.size() != 2) return false;
      append_int(out, i16_at(v, 0));
      return true;
    case Kind::kInt4:
      if (v.size() != 4) return false;
      append_int(out, i32_at(v, 0));
      return true;
    case Kind::kInt8:
      if (v.size() != 8) return false;
      append_int(out, i64_at(v, 0));
      return true;
    case Kind::kOid:
      if (v.size() != 4) return false;
      append_int(out, load_be32(v.data()));
      return true;
    case Kind::kFloat4: {
      if (v.size() != 4) return false;
      uint32_t bits = load_be32(v.data());
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      append_float(out, f, 6);
      return true;
    }
    case Kind::kFloat8: {
      if (v.size() != 8) return false;
      uint64_t bits = load_be64(v.data());
      double d = 0;
      std::memcpy(&d, &bits, sizeof d);
      append_float(out, d, 15);
      return true;
    }
    case Kind::kNumeric: return render_numeric(v, out, max_out);
    case Kind::kName:
      if (v.size() >= 64) return false;  // namerecv: "identifier too long"
      [[fallthrough]];
    case Kind::kText:
      if (!is_pg_text(as_string_view(v))) return false;
      out += as_string_view(v);
      return true;
    case Kind::kJson:
      if (!is_pg_text(as_string_view(v)) || !JsonChecker(as_string_view(v), false).valid()) return false;
      out += as_string_view(v);
      return true;
    case Kind::kJsonb: {
      if (v.empty() || byte_at(v, 0) != 1) return false;  // jsonb_recv: version 1 only
      const std::string_view text = as_string_view(v.subspan(1));
      if (!is_pg_text(text) || !JsonChecker(text, true).valid()) return false;
      out += text;
      return true;
    }
    case Kind::kBytea:
      out += "\\x";
      for (std::byte b : v) append_hex_byte(out, std::to_integer<uint8_t>(b));
      return true;
    case Kind::kUuid:
      if (v.size() != 16) return false;
      for (size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        append_hex_byte(out, byte_at(v, i));
      }
      return true;
    case Kind::kDate: return render_date(v, out);
    case Kind::kTime: return render_time(v, out);
    case Kind::kTimeTz: return render_timetz(v, out);
    case Kind::kTimestamp: return render_timestamp(v, false, out);
    case Kind::kTimestampTz: return render_timestamp(v, true, out);
    case Kind::kInterval: return render_interval(v, out);
    case Kind::kInet: return render_network(v, false, out);
    case Kind::kCidr: return render_network(v, true, out);
    case Kind::kArray: return false;  // arrays of arrays do not exist
  }
  return false;
}

// ---- arrays: array_recv's checks, array_out's text ---------------------------

constexpr int32_t kMaxDim = 6;
constexpr uint64_t kMaxArraySize = 0x3FFFFFFF / 8;  // MaxAllocSize / sizeof(Datum)

bool array_isspace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// One element as array_out writes it: between double quotes, with quotes and backslashes
// escaped, when it is empty, reads as NULL, or holds a brace, a comma or space.
void append_array_element(std::string& out, std::string_view text) {
  bool quote = text.empty() || (text.size() == 4 && (text[0] | 0x20) == 'n' && (text[1] | 0x20) == 'u' &&
                                (text[2] | 0x20) == 'l' && (text[3] | 0x20) == 'l');
  for (char c : text) quote = quote || c == '"' || c == '\\' || c == '{' || c == '}' || c == ',' || array_isspace(c);
  if (!quote) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

// Refuses an array whose text would be longer than `max_out`, checked after
// each element.
bool render_array(uint32_t element_oid, Bytes v, std::string& out, size_t max_out) {
  const size_t start = out.size();
  const TypeInfo* element = find_type(element_oid);
  if (element == nullptr || v.size() < 12) return false;
  const int32_t ndim = i32_at(v, 0);
  const int32_t flags = i32_at(v, 4);
  if (ndim < 0 || ndim > kMaxDim || (flags != 0 && flags != 1)) return false;
  if (load_be32(v.data() + 8) != element_oid) return false;  // array_recv: "wrong element type"
  size_t at = 12;
  if (v.size() - at < size_t{8} * static_cast<size_t>(ndim)) return false;
  int32_t dims[kMaxDim] = {};
  int32_t lbounds[kMaxDim] = {};
  // Every element takes at least its 4-byte length: a count beyond what the
  // bytes left can hold is refused before anything is read.
  const uint64_t max_items = (v.size() - at - size_t{8} * static_cast<size_t>(ndim)) / 4;
  bool empty = ndim == 0;
  for (int32_t d = 0; d < ndim; ++d) {
    dims[d] = i32_at(v, at);
    lbounds[d] = i32_at(v, at + 4);
    at += 8;
    if (dims[d] < 0) return false;  // ArrayGetNItems refuses a negative length
    // ArrayCheckBounds: "array lower bound is too large" when lower bound plus
    // length overflows int32: the last subscript is at most INT32_MAX - 1.
    if (int64_t{lbounds[d]} + dims[d] > std::numeric_limits<int32_t>::max()) return false;
    empty = empty || dims[d] == 0;
  }
  uint64_t nitems = empty ? 0 : 1;
  for (int32_t d = 0; d < ndim && nitems != 0; ++d) {
    nitems *= static_cast<uint64_t>(dims[d]);  // < 2^30 * 2^31: no overflow
    if (nitems > max_items) return false;
  }
  if (nitems > kMaxArraySize) return false;  // ArrayGetNItems: "array size exceeds the maximum allowed"
  if (nitems == 0) {
    if (at != v.size()) return false;
    out += "{}";
    return true;
  }
  bool decorate = false;
  for (int32_t d = 0; d < ndim; ++d) decorate = decorate || lbounds[d] != 1;
  if (decorate) {
    for (int32_t d = 0; d < ndim; ++d) {
      out += '[';
      append_int(out, lbounds[d]);
      out += ':';
      append_int(out, int64_t{lbounds[d]} + dims[d] - 1);
      out += ']';
    }
    out += '=';
  }
  std::string text;
  int32_t index[kMaxDim] = {};
  out.append(static_cast<size_t>(ndim), '{');
  if (out.size() - start > max_out) return false;
  for (uint64_t i = 0; i < nitems; ++i) {
    if (v.size() - at < 4) return false;
    const int32_t len = i32_at(v, at);
    at += 4;
    if (len == -1) {
      out += "NULL";
    } else {
      if (len < -1 || static_cast<size_t>(len) > v.size() - at) return false;
      text.clear();
      const size_t left = max_out - (out.size() - start);
      if (!render_scalar(element->kind, v.subspan(at, static_cast<size_t>(len)), text, left)) return false;
      at += static_cast<size_t>(len);
      append_array_element(out, text);
    }
    if (out.size() - start > max_out) return false;
    // Close the dimensions this element completes, and open them again if more follow.
    int32_t d = ndim - 1;
    size_t closed = 0;
    while (d >= 0) {
      if (++index[d] < dims[d]) break;
      index[d] = 0;
      ++closed;
      --d;
    }
    out.append(closed, '}');
    if (d >= 0) {
      out += ',';
      out.append(closed, '{');
    }
  }
  return at == v.size();
}

}  // namespace

bool json_nested_too_deep(uint32_t type_oid, Bytes value) {
  const TypeInfo* type = find_type(type_oid);
  if (type == nullptr || (type->kind != Kind::kJson && type->kind != Kind::kJsonb)) return false;
  if (type->kind == Kind::kJsonb && !value.empty()) value = value.subspan(1);  // the version byte
  // Brackets outside strings; the text need not be valid JSON.
  size_t depth = 0;
  bool in_string = false;
  const std::string_view s = as_string_view(value);
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

bool render_binary_value(uint32_t type_oid, Bytes value, std::string& out, size_t max_out) {
  const TypeInfo* type = find_type(type_oid);
  if (type == nullptr) return false;
  const size_t start = out.size();
  const bool ok = type->kind == Kind::kArray ? render_array(type->element, value, out, max_out)
                                             : render_scalar(type->kind, value, out, max_out);
  if (!ok || out.size() - start > max_out) {
    out.resize(start);
    return false;
  }
  return true;
}

const char* type_name(uint32_t type_oid) {
  const TypeInfo* type = find_type(type_oid);
  return type == nullptr ? nullptr : type->name;
}

}  // namespace pgwire
