// render_binary_value against bytes written by hand from PostgreSQL's *send
// functions (int4send, float8send, numeric_send, date_send, timestamp_send,
// interval_send, network_send, uuid_send, jsonb_send, array_send), and the
// text its output functions print for them. Round trips through a real server
// are in tests/integration/binary_params_test.cpp.
#include "pgwire/binary_values.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "pgwire/statement_log.hpp"
#include "pgwire/tracker.hpp"

namespace {

using pgwire::render_binary_value;

// "00 00 00 2a" -> bytes; spaces are for reading only.
std::string unhex(std::string_view hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out += static_cast<char>(high * 16 + v);
      high = -1;
    }
  }
  return out;
}

constexpr const char* kRefused = "<refused>";

// The text, or kRefused; checks that a refusal leaves the output as it was.
std::string render(uint32_t oid, std::string_view hex) {
  std::string bytes = unhex(hex);
  std::string out = "prefix:";
  if (!render_binary_value(oid, pgwire::as_bytes(bytes), out)) {
    EXPECT_EQ(out, "prefix:") << "a refused value must leave the output untouched";
    return kRefused;
  }
  return out.substr(7);
}

constexpr uint32_t kBool = 16, kBytea = 17, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23, kText = 25, kOid = 26,
                   kJson = 114, kCidr = 650, kFloat4 = 700, kFloat8 = 701, kInet = 869, kBpchar = 1042, kVarchar = 1043,
                   kDate = 1082, kTime = 1083, kTimestamp = 1114, kTimestamptz = 1184, kInterval = 1186, kTimetz = 1266,
                   kNumeric = 1700, kUuid = 2950, kJsonb = 3802;
constexpr uint32_t kInt4Array = 1007, kTextArray = 1009, kByteaArray = 1001, kDateArray = 1182;

TEST(BinaryValues, Bool) {
  EXPECT_EQ(render(kBool, "01"), "t");
  EXPECT_EQ(render(kBool, "00"), "f");
  EXPECT_EQ(render(kBool, "02"), "t");  // boolrecv: any byte but zero
  EXPECT_EQ(render(kBool, ""), kRefused);
  EXPECT_EQ(render(kBool, "01 00"), kRefused);
}

TEST(BinaryValues, Integers) {
  EXPECT_EQ(render(kInt2, "ff ff"), "-1");
  EXPECT_EQ(render(kInt2, "7f ff"), "32767");
  EXPECT_EQ(render(kInt2, "80 00"), "-32768");
  EXPECT_EQ(render(kInt4, "00 00 00 2a"), "42");
  EXPECT_EQ(render(kInt4, "80 00 00 00"), "-2147483648");
  EXPECT_EQ(render(kInt8, "ff ff ff ff ff ff ff ff"), "-1");
  EXPECT_EQ(render(kInt8, "7f ff ff ff ff ff ff ff"), "9223372036854775807");
  EXPECT_EQ(render(kOid, "ff ff ff ff"), "4294967295");
  EXPECT_EQ(render(kInt4, "00 2a"), kRefused);
  EXPECT_EQ(render(kInt2, "00 00 00 2a"), kRefused);
  EXPECT_EQ(render(kInt8, "00 00 00 2a"), kRefused);
}

TEST(BinaryValues, Float8ShortestExact) {
  EXPECT_EQ(render(kFloat8, "3ff0000000000000"), "1");
  EXPECT_EQ(render(kFloat8, "3fb999999999999a"), "0.1");
  EXPECT_EQ(render(kFloat8, "c004000000000000"), "-2.5");
  EXPECT_EQ(render(kFloat8, "3fb0000000000000"), "0.0625");
  EXPECT_EQ(render(kFloat8, "3f10000000000000"), "6.103515625e-05");
  EXPECT_EQ(render(kFloat8, "3eb0000000000000"), "9.5367431640625e-07");
  EXPECT_EQ(render(kFloat8, "430c6bf526340000"), "1e+15");
  EXPECT_EQ(render(kFloat8, "4340000000000000"), "9.007199254740992e+15");
  EXPECT_EQ(render(kFloat8, "54b249ad2594c37d"), "1e+100");
  EXPECT_EQ(render(kFloat8, "8000000000000000"), "-0");
  EXPECT_EQ(render(kFloat8, "7ff8000000000000"), "NaN");
  EXPECT_EQ(render(kFloat8, "7ff0000000000000"), "Infinity");
  EXPECT_EQ(render(kFloat8, "fff0000000000000"), "-Infinity");
  EXPECT_EQ(render(kFloat8, "3ff00000"), kRefused);
}

TEST(BinaryValues, Float4ShortestExact) {
  EXPECT_EQ(render(kFloat4, "3fc00000"), "1.5");
  EXPECT_EQ(render(kFloat4, "3dcccccd"), "0.1");  // not 0.100000001: the shortest that reads back
  EXPECT_EQ(render(kFloat4, "47f12000"), "123456");
  EXPECT_EQ(render(kFloat4, "49742400"), "1e+06");  // float4 switches to exponents at 10^6
  EXPECT_EQ(render(kFloat4, "7fc00000"), "NaN");
  EXPECT_EQ(render(kFloat4, "ff800000"), "-Infinity");
  EXPECT_EQ(render(kFloat4, "3ff0000000000000"), kRefused);
}

// numeric_send: ndigits, weight, sign, dscale (int16 each), then base-10000 digits.
TEST(BinaryValues, Numeric) {
  EXPECT_EQ(render(kNumeric, "0000 0000 0000 0000"), "0");
  EXPECT_EQ(render(kNumeric, "0002 0000 0000 0002 007b 1194"), "123.45");
  EXPECT_EQ(render(kNumeric, "0001 ffff 4000 0003 000a"), "-0.001");
  EXPECT_EQ(render(kNumeric, "0002 0001 0000 0000 04d2 162e"), "12345678");
  EXPECT_EQ(render(kNumeric, "0001 0005 0000 0000 0001"), "100000000000000000000");
  EXPECT_EQ(render(kNumeric, "0001 0000 0000 0002 0005"), "5.00");
  EXPECT_EQ(render(kNumeric, "0002 0001 0000 0000 0000 0007"), "7");  // a leading zero digit
  EXPECT_EQ(render(kNumeric, "0000 0000 4000 0001"), "0.0");          // no negative zero
  // Digits the dscale hides are dropped (numeric_recv's trunc_var): 0.0005 with two decimals.
  EXPECT_EQ(render(kNumeric, "0001 ffff 4000 0002 0005"), "0.00");
  EXPECT_EQ(render(kNumeric, "0001 0000 0000 0001 0001 0000"), kRefused);  // ndigits says 1, 2 follow
  EXPECT_EQ(render(kNumeric, "0000 0000 c000 0000"), "NaN");
  EXPECT_EQ(render(kNumeric, "0000 0000 d000 0000"), "Infinity");
  EXPECT_EQ(render(kNumeric, "0000 0000 f000 0000"), "-Infinity");
  EXPECT_EQ(render(kNumeric, "0000 0000 8000 0000"), kRefused);       // no such sign
  EXPECT_EQ(render(kNumeric, "0001 0000 0000 0000 2710"), kRefused);  // digit 10000
  EXPECT_EQ(render(kNumeric, "0000 0000 0000 4000"), kRefused);       // dscale over 0x3fff
  EXPECT_EQ(render(kNumeric, "0001 0000 0000"), kRefused);
}

TEST(BinaryValues, TextLike) {
  EXPECT_EQ(render(kText, "68 c3 a9"), "h\xc3\xa9");
  EXPECT_EQ(render(kVarchar, ""), "");
  EXPECT_EQ(render(kBpchar, "61 20"), "a ");
  EXPECT_EQ(render(kJson, "7b 22 61 22 3a 31 7d"), "{\"a\":1}");
  EXPECT_EQ(render(kText, "61 00 62"), kRefused);  // no text holds a zero byte
  EXPECT_EQ(render(kName, "61 62"), "ab");
  EXPECT_EQ(render(kName, std::string(128, '6')), kRefused);  // 64 bytes: namerecv refuses
}

TEST(BinaryValues, JsonbVersionByte) {
  EXPECT_EQ(render(kJsonb, "01 7b 22 61 22 3a 20 31 7d"), "{\"a\": 1}");
  EXPECT_EQ(render(kJsonb, "02 7b 7d"), kRefused);
  EXPECT_EQ(render(kJsonb, ""), kRefused);
}

// textrecv, varchar_recv, bpcharrecv and namerecv read the bytes as the
// client's encoding (the log takes it to be UTF-8) and refuse any that is not
// valid: overlong forms, surrogates, code points past U+10FFFF, a cut sequence.
TEST(BinaryValues, TextThatIsNotUtf8IsRefused) {
  EXPECT_EQ(render(kText, "f0 9f 98 80"), "\xf0\x9f\x98\x80");  // U+1F600
  EXPECT_EQ(render(kText, "f4 8f bf bf"), "\xf4\x8f\xbf\xbf");  // U+10FFFF, the last
  EXPECT_EQ(render(kText, "ef bf bf"), "\xef\xbf\xbf");         // U+FFFF
  EXPECT_EQ(render(kText, "ff"), kRefused);
  EXPECT_EQ(render(kText, "80"), kRefused);           // a continuation byte alone
  EXPECT_EQ(render(kText, "61 c3"), kRefused);        // a cut sequence
  EXPECT_EQ(render(kText, "c3 28"), kRefused);        // a sequence without its continuation
  EXPECT_EQ(render(kText, "c0 af"), kRefused);        // '/' overlong in two bytes
  EXPECT_EQ(render(kVarchar, "e0 80 af"), kRefused);  // and in three
  EXPECT_EQ(render(kVarchar, "f0 8f bf bf"), kRefused);
  EXPECT_EQ(render(kBpchar, "ed a0 80"), kRefused);   // U+D800, a surrogate
  EXPECT_EQ(render(kBpchar, "ed bf bf"), kRefused);   // U+DFFF
  EXPECT_EQ(render(kName, "f4 90 80 80"), kRefused);  // U+110000
  EXPECT_EQ(render(kName, "f5 80 80 80"), kRefused);
  EXPECT_EQ(render(kTextArray, "00000001 00000000 00000019 00000002 00000001 00000001 61 00000001 ff"), kRefused);
}

// The text of a json or jsonb value, or kRefused.
std::string render_json(uint32_t oid, std::string_view text) {
  std::string bytes = oid == kJsonb ? "\x01" + std::string(text) : std::string(text);
  std::string out;
  if (!render_binary_value(oid, pgwire::as_bytes(bytes), out)) {
    EXPECT_EQ(out, "");
    return kRefused;
  }
  return out;
}

// Texts that are not JSON, for json_recv and jsonb_recv alike: a row per kind of mistake.
// clang-format off
const char* const kNotJson[] = {
    "", " ", "{", "}", "[1,]", "[,1]", "[1 2]", "[}", "{]", "[1]]", "[1]x", "1 2", "\f1",
    "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{1:2}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
    "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x1",
    "tru", "truex", "nul", "True", "'a'",
    "\"a", "\"\\x\"", "\"\\u12g4\"", "\"\\u12\"", "\"a\tb\"", "\"\xff\"", "\"\xed\xa0\x80\"",
};
// clang-format on

// json_recv and jsonb_recv parse the text (RFC 8259's grammar) and refuse it
// when it is not JSON; jsonb_recv also turns escapes into characters and
// numbers into numerics, and refuses those that do not convert.
TEST(BinaryValues, JsonThatIsNotJsonIsRefused) {
  const std::string good =
      " [1, -0.5e+3, 10E-2, 0, \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\", true, false, null, {}, [], "
      "{\"k\": {\"l\": [0]}, \"m\": \"\xc3\xa9\"}]\n";
  for (uint32_t oid : {kJson, kJsonb}) {
    SCOPED_TRACE(oid);
    EXPECT_EQ(render_json(oid, good), good);
    EXPECT_EQ(render_json(oid, "\t\"top-level string\"\r\n"), "\t\"top-level string\"\r\n");
    EXPECT_EQ(render_json(oid, "-12.5"), "-12.5");
    EXPECT_EQ(render_json(oid, "\"\\ud83d\\ude00\""), "\"\\ud83d\\ude00\"");
    EXPECT_EQ(render_json(oid, std::string(20000, '[') + std::string(19999, ']')), kRefused);
    for (const char* bad : kNotJson) {
      EXPECT_EQ(render_json(oid, bad), kRefused) << bad;
    }
    EXPECT_EQ(render_json(oid, "\"a\nb\""), kRefused);  // a control character, not escaped
    EXPECT_EQ(render_json(oid, std::string("\"a\0b\"", 5)), kRefused);
  }
  // json keeps its text: any four hex digits pass. jsonb makes characters of
  // them: no U+0000 (text has none), surrogates only as high-low pairs.
  for (const char* escapes : {"\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\ud800\"", "\"\\ud800x\"",
                              "\"\\ud800\\n\"", "\"\\ude00\\ud83d\""}) {
    EXPECT_EQ(render_json(kJson, escapes), escapes);
    EXPECT_EQ(render_json(kJsonb, escapes), kRefused) << escapes;
  }
  // jsonb's numbers become numerics: a base-10000 weight up to 32767, at most 16383 decimals.
  for (const char* fits :
       {"1e131071", "-1E+131071", "1e-16383", "0.0e-16382", "1.5e-16382", "123456789e-16383", "0e-16383", "0.00000"}) {
    EXPECT_EQ(render_json(kJsonb, fits), fits);
  }
  for (const char* overflows : {"1e131072", "10e131071", "1e-16384", "0.0e-16383", "0e-16384", "1e1073741823",
                                "0e1073741823", "1e99999999999999999999", "1e-99999999999999999999"}) {
    EXPECT_EQ(render_json(kJsonb, overflows), kRefused) << overflows;
    EXPECT_EQ(render_json(kJson, overflows), overflows);
  }
}

TEST(BinaryValues, ByteaAndUuid) {
  EXPECT_EQ(render(kBytea, "de ad be ef"), "\\xdeadbeef");
  EXPECT_EQ(render(kBytea, ""), "\\x");
  EXPECT_EQ(render(kUuid, "a0eebc99 9c0b 4ef8 bb6d 6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(render(kUuid, "a0eebc99 9c0b 4ef8 bb6d 6bb9bd380a"), kRefused);
}

// date_send: days since 2000-01-01; INT32_MIN and INT32_MAX are the infinities.
TEST(BinaryValues, Date) {
  EXPECT_EQ(render(kDate, "00000000"), "2000-01-01");
  EXPECT_EQ(render(kDate, "ffffffff"), "1999-12-31");
  EXPECT_EQ(render(kDate, "00002279"), "2024-02-29");
  EXPECT_EQ(render(kDate, "ffda97a7"), "4714-11-24 BC");  // Julian day 0, the first date
  EXPECT_EQ(render(kDate, "ffda97a6"), kRefused);
  EXPECT_EQ(render(kDate, "7fffffff"), "infinity");
  EXPECT_EQ(render(kDate, "80000000"), "-infinity");
}

// time_send: microseconds since midnight; timetz_send adds the zone in seconds west of UTC.
TEST(BinaryValues, TimeAndTimetz) {
  EXPECT_EQ(render(kTime, "0000000000000000"), "00:00:00");
  EXPECT_EQ(render(kTime, "0000000b883f73a0"), "13:45:30.5");
  EXPECT_EQ(render(kTime, "000000141dd76000"), "24:00:00");
  EXPECT_EQ(render(kTime, "000000141dd76001"), kRefused);
  EXPECT_EQ(render(kTime, "ffffffffffffffff"), kRefused);
  EXPECT_EQ(render(kTimetz, "0000000a0eebb000 ffffb2a8"), "12:00:00+05:30");
  EXPECT_EQ(render(kTimetz, "0000000a0eebb000 00007080"), "12:00:00-08");
  EXPECT_EQ(render(kTimetz, "0000000a0eebb000 0000e100"), kRefused);  // 16 hours west
}

// timestamp_send: microseconds since 2000-01-01 00:00; INT64_MIN and INT64_MAX are the infinities.
TEST(BinaryValues, Timestamps) {
  EXPECT_EQ(render(kTimestamp, "0000000000000000"), "2000-01-01 00:00:00");
  EXPECT_EQ(render(kTimestamp, "0000000000000001"), "2000-01-01 00:00:00.000001");
  EXPECT_EQ(render(kTimestamp, "ffffffffffffffff"), "1999-12-31 23:59:59.999999");
  EXPECT_EQ(render(kTimestamp, "fd0f7cc1411fa000"), "4714-11-24 00:00:00 BC");
  EXPECT_EQ(render(kTimestamp, "fd0f7cc1411f9fff"), kRefused);
  EXPECT_EQ(render(kTimestamp, "7fffffffffffffff"), "infinity");
  EXPECT_EQ(render(kTimestamp, "8000000000000000"), "-infinity");
  // In UTC: the session's TimeZone is not known.
  EXPECT_EQ(render(kTimestamptz, "0000000000000000"), "2000-01-01 00:00:00+00");
  EXPECT_EQ(render(kTimestamptz, "fd0f7cc1411fa000"), "4714-11-24 00:00:00+00 BC");
  EXPECT_EQ(render(kTimestamptz, "7fffffffffffffff"), "infinity");
  EXPECT_EQ(render(kTimestamptz, "00000000"), kRefused);
}

// interval_send: microseconds (int64), days (int32), months (int32).
TEST(BinaryValues, IntervalPostgresStyle) {
  EXPECT_EQ(render(kInterval, "0000000000000000 00000000 00000000"), "00:00:00");
  EXPECT_EQ(render(kInterval, "000000036c97ca88 00000003 0000000e"), "1 year 2 mons 3 days 04:05:06.789");
  EXPECT_EQ(render(kInterval, "0000000000000000 00000001 ffffffff"), "-1 mons +1 day");
  EXPECT_EQ(render(kInterval, "ffffffffffffffff 00000000 00000000"), "-00:00:00.000001");
  EXPECT_EQ(render(kInterval, "00000000d693a400 ffffffff 00000000"), "-1 days +01:00:00");
  EXPECT_EQ(render(kInterval, "0000000000000000 00000000 0000000c"), "1 year");
  // PostgreSQL 17's infinities, numbers to older servers: not rendered.
  EXPECT_EQ(render(kInterval, "7fffffffffffffff 7fffffff 7fffffff"), kRefused);
  EXPECT_EQ(render(kInterval, "8000000000000000 80000000 80000000"), kRefused);
  EXPECT_EQ(render(kInterval, "0000000000000000 00000000"), kRefused);
}

// network_send: family (2 inet, 3 inet6), bits, is_cidr, address length, address.
TEST(BinaryValues, InetAndCidr) {
  EXPECT_EQ(render(kInet, "02 20 00 04 c0a80001"), "192.168.0.1");
  EXPECT_EQ(render(kInet, "02 18 00 04 c0a80001"), "192.168.0.1/24");
  EXPECT_EQ(render(kCidr, "02 18 01 04 c0a80000"), "192.168.0.0/24");
  EXPECT_EQ(render(kCidr, "02 20 01 04 0a000001"), "10.0.0.1/32");
  EXPECT_EQ(render(kCidr, "02 18 01 04 c0a80001"), kRefused);  // bits right of the mask
  EXPECT_EQ(render(kInet, "03 80 00 10 20010db8000000000000000000000001"), "2001:db8::1");
  EXPECT_EQ(render(kInet, "03 80 00 10 00000000000000000000000000000001"), "::1");
  EXPECT_EQ(render(kInet, "03 80 00 10 00000000000000000000000000000000"), "::");
  EXPECT_EQ(render(kInet, "03 80 00 10 00000000000000000000ffff01020304"), "::ffff:1.2.3.4");
  EXPECT_EQ(render(kInet, "03 40 00 10 fe800000000000000000000000000000"), "fe80::/64");
  EXPECT_EQ(render(kInet, "03 80 00 10 00010000000100000000000000000001"), "1:0:1::1");
  EXPECT_EQ(render(kInet, "03 80 00 10 00010000000000010000000000010001"), "1::1:0:0:1:1");  // the first of two
  EXPECT_EQ(render(kInet, "04 20 00 04 c0a80001"), kRefused);
  EXPECT_EQ(render(kInet, "02 21 00 04 c0a80001"), kRefused);
  EXPECT_EQ(render(kInet, "02 20 00 10 c0a80001"), kRefused);
}

// array_send: ndim, has-nulls flag, element type, (length, lower bound) per
// dimension, then each element as length (-1 for NULL) and bytes.
TEST(BinaryValues, Arrays) {
  const std::string one = "00000004 00000001", two = "00000004 00000002", three = "00000004 00000003",
                    four = "00000004 00000004";
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000002 00000001" + one + two), "{1,2}");
  EXPECT_EQ(render(kInt4Array, "00000001 00000001 00000017 00000002 00000001" + one + "ffffffff"), "{1,NULL}");
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000002 00000000" + one + two), "[0:1]={1,2}");
  EXPECT_EQ(
      render(kInt4Array, "00000002 00000000 00000017 00000002 00000001 00000002 00000001" + one + two + three + four),
      "{{1,2},{3,4}}");
  EXPECT_EQ(
      render(kInt4Array, "00000002 00000000 00000017 00000002 00000002 00000002 ffffffff" + one + two + three + four),
      "[2:3][-1:0]={{1,2},{3,4}}");
  EXPECT_EQ(render(kInt4Array, "00000003 00000000 00000017 00000002 00000001 00000001 00000001 00000002 00000001" +
                                   one + two + three + four),
            "{{{1,2}},{{3,4}}}");
  EXPECT_EQ(render(kInt4Array, "00000000 00000000 00000017"), "{}");
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000000 00000001"), "{}");
  // Elements that would not read back as themselves are quoted, " and \ escaped.
  EXPECT_EQ(render(kTextArray,
                   "00000001 00000000 00000019 00000007 00000001"
                   "00000003 612062 00000000 00000004 4e554c4c 00000004 6e756c6c 00000002 7122 00000003 785c79"
                   "00000005 706c61696e"),
            R"({"a b","","NULL","null","q\"","x\\y",plain})");
  EXPECT_EQ(render(kByteaArray, "00000001 00000000 00000011 00000001 00000001 00000002 dead"), R"({"\\xdead"})");
  EXPECT_EQ(render(kDateArray, "00000001 00000000 0000043a 00000001 00000001 00000004 7fffffff"), "{infinity}");
}

TEST(BinaryValues, MalformedArraysAreRefused) {
  const std::string one = "00000004 00000001";
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000019 00000001 00000001" + one), kRefused);  // text elements
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 00000001" + one + "00"), kRefused);  // trailing
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000002 00000001" + one), kRefused);         // one missing
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 7fffffff 00000001" + one), kRefused);         // count
  EXPECT_EQ(render(kInt4Array, "00000001 00000002 00000017 00000001 00000001" + one), kRefused);         // flags
  EXPECT_EQ(render(kInt4Array, "00000007 00000000 00000017"), kRefused);                                 // ndim > 6
  EXPECT_EQ(render(kInt4Array, "ffffffff 00000000 00000017"), kRefused);
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 ffffffff 00000001"), kRefused);  // negative length
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000002 7fffffff" + one + one), kRefused);    // upper
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 00000001 00000002 0001"), kRefused);  // int4 of 2
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 00000001 fffffffe"), kRefused);       // length -2
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 00000001 00000005 00000001"), kRefused);
  EXPECT_EQ(render(kInt4Array, "00000000 00000000 00000017 00"), kRefused);
}

// ArrayCheckBounds refuses a lower bound plus length past INT32_MAX: no array
// has INT32_MAX as its last subscript, '[2147483647:2147483647]={1}' included.
TEST(BinaryValues, ArrayEndingAtInt32MaxIsRefused) {
  const std::string one = "00000004 00000001";
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 7fffffff" + one), kRefused);
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000001 7ffffffe" + one), "[2147483646:2147483646]={1}");
  EXPECT_EQ(render(kInt4Array, "00000001 00000000 00000017 00000000 7fffffff"), "{}");  // no element: no sum overflows
  EXPECT_EQ(render(kInt4Array, "00000002 00000000 00000017 00000001 00000001 00000001 7fffffff" + one), kRefused);
}

TEST(BinaryValues, TypeNames) {
  EXPECT_STREQ(pgwire::type_name(23), "int4");
  EXPECT_STREQ(pgwire::type_name(1007), "_int4");
  EXPECT_STREQ(pgwire::type_name(1184), "timestamptz");
  EXPECT_STREQ(pgwire::type_name(1042), "bpchar");
  EXPECT_EQ(pgwire::type_name(0), nullptr);
  EXPECT_EQ(pgwire::type_name(16384), nullptr);
  EXPECT_EQ(render(16384, "00000001"), kRefused);
  EXPECT_EQ(render(0, "00000001"), kRefused);
}

// The OID whose type_name is `name`; 0 if none.
uint32_t oid_named(std::string_view name) {
  for (uint32_t oid = 1; oid < 4000; ++oid) {
    const char* n = pgwire::type_name(oid);
    if (n != nullptr && name == n) return oid;
  }
  return 0;
}

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// A _numeric array (ndim 1, no NULLs, element type 1700, lower bound 1) of
// `count` copies of the numeric_send bytes `element`.
std::string numeric_array(uint32_t count, std::string_view element) {
  std::string out;
  for (uint32_t v : {1u, 0u, 1700u, count, 1u}) put_be32(out, v);
  for (uint32_t i = 0; i < count; ++i) {
    put_be32(out, static_cast<uint32_t>(element.size()));
    out += element;
  }
  return out;
}

// numeric_send of 9999 * 10000^32767 with 16383 decimals: 10 bytes that
// would print 147,456 characters. render_binary_value's budget (8 bytes of
// text per input byte, plus 64, plus 64 KiB) refuses it before writing.
const std::string kHugeNumeric = unhex("0001 7fff 0000 3fff 270f");
// Zero with 16383 decimals: 8 bytes, "0." and 16383 zeros.
const std::string kZeroWithAllDecimals = unhex("0000 0000 0000 3fff");

TEST(BinaryValues, NumericLongerThanTheBudgetIsRefused) {
  EXPECT_EQ(render(kNumeric, "0001 7fff 0000 3fff 270f"), kRefused);
  EXPECT_EQ(render(kNumeric, "0001 7fff 4000 0000 0001"), kRefused);  // -10000^32767: 131,070 characters
  EXPECT_EQ(render(kNumeric, "0000 0000 0000 3fff"), "0." + std::string(16383, '0'));  // 16,385: within
  // The length is known before anything is written, to the character.
  std::string out;
  EXPECT_FALSE(render_binary_value(kNumeric, pgwire::as_bytes(kZeroWithAllDecimals), out, 16384));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.capacity(), std::string().capacity()) << "nothing was written";
  EXPECT_TRUE(render_binary_value(kNumeric, pgwire::as_bytes(kZeroWithAllDecimals), out, 16385));
  EXPECT_EQ(out.size(), 16385u);
  out.clear();
  EXPECT_FALSE(render_binary_value(kNumeric, pgwire::as_bytes(unhex("0001 0000 4000 0000 0001")), out, 1));  // "-1"
  EXPECT_TRUE(render_binary_value(kNumeric, pgwire::as_bytes(unhex("0001 0000 4000 0000 0001")), out, 2));
  EXPECT_EQ(out, "-1");
  out.clear();
  EXPECT_FALSE(render_binary_value(kInt4, pgwire::as_bytes(unhex("80000000")), out, 10));  // "-2147483648"
  EXPECT_TRUE(out.empty());
}

// A _numeric array just under max_param_bytes (64 KiB) of such values would
// print some 690 MB (4,679 x 147,456) or, of the 8-byte ones, 82 MB: refused
// once the text passes the budget, after little work and little memory.
TEST(BinaryValues, NumericArrayLongerThanTheBudgetIsRefusedQuickly) {
  for (const std::string& element : {kHugeNumeric, kZeroWithAllDecimals}) {
    const std::string array = numeric_array(65000 / (4 + static_cast<uint32_t>(element.size())), element);
    ASSERT_LT(array.size(), 65536u);
    std::string out;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(render_binary_value(1231, pgwire::as_bytes(array), out));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_TRUE(out.empty());
    EXPECT_LE(out.capacity(), size_t{2} << 20) << "the budget is 8 * 65,000 + 64 + 65,536 bytes";
  }
  // Four of the 8-byte ones fit: 65,545 characters of 66,144 (68 bytes in).
  const std::string four = numeric_array(4, kZeroWithAllDecimals);
  const std::string element = "0." + std::string(16383, '0');
  std::string out;
  ASSERT_TRUE(render_binary_value(1231, pgwire::as_bytes(four), out));
  EXPECT_EQ(out, "{" + element + "," + element + "," + element + "," + element + "}");
  out.clear();
  EXPECT_FALSE(render_binary_value(1231, pgwire::as_bytes(four), out, 65544));
  EXPECT_TRUE(out.empty());
}

// Every known type, given random bytes and every prefix of them: no crash (the
// ASan build checks memory), a refusal leaves the output as it was, and the
// SQL log line then shows the value as hex with its type OID; a value that is
// rendered is shown quoted. Array types get a well-formed header and elements
// of random lengths (0 to 8 bytes, or NULL), so their element loop runs.
TEST(BinaryValues, RandomAndTruncatedBytesNeverCrashAndFallBackToHex) {
  std::mt19937 rng(20261202);
  std::vector<uint32_t> oids;
  for (uint32_t oid = 0; oid < 4000; ++oid) {
    if (pgwire::type_name(oid) != nullptr) oids.push_back(oid);
  }
  ASSERT_EQ(oids.size(), 48u);
  size_t rendered = 0, refused = 0, arrays_rendered = 0;
  for (uint32_t oid : oids) {
    const std::string_view name = pgwire::type_name(oid);
    const uint32_t element = name[0] == '_' ? oid_named(name.substr(1)) : 0;
    for (int round = 0; round < 200; ++round) {
      std::string bytes;
      if (element != 0 && round % 2 == 0) {
        const uint32_t count = rng() % 4 + 1;
        put_be32(bytes, 1);
        put_be32(bytes, rng() % 2);
        put_be32(bytes, element);
        put_be32(bytes, count);
        put_be32(bytes, rng() % 3);
        for (uint32_t i = 0; i < count; ++i) {
          const uint32_t len = rng() % 10;
          put_be32(bytes, len == 9 ? 0xffffffff : len);
          for (uint32_t k = 0; k < len && len != 9; ++k) bytes += static_cast<char>(rng() % 4 == 0 ? 0 : rng());
        }
      } else {
        bytes.resize(rng() % 64);
        for (char& c : bytes) c = static_cast<char>(rng());
      }
      for (size_t len = 0; len <= bytes.size(); ++len) {
        const std::string value = bytes.substr(0, len);
        std::string out;
        const bool ok = render_binary_value(oid, pgwire::as_bytes(value), out);
        pgwire::StatementEvent ev;
        ev.params.push_back(pgwire::StatementParam{value, 1, oid});
        std::string line;
        format_statement(pgwire::LogFormat::kText, ev, pgwire::SessionInfo{}, line);
        if (ok) {
          ++rendered;
          arrays_rendered += element != 0 && len == bytes.size() && round % 2 == 0;
          EXPECT_NE(line.find(" params=($1='"), std::string::npos) << line;
        } else {
          ++refused;
          EXPECT_TRUE(out.empty());
          const std::string hex =
              " params=($1=x'" + pgwire::to_hex(pgwire::as_bytes(value)) + "'::" + std::to_string(oid) + ") ";
          EXPECT_NE(line.find(hex), std::string::npos) << line;
        }
      }
    }
  }
  EXPECT_GT(rendered, 1000u);
  EXPECT_GT(refused, 1000u);
  EXPECT_GT(arrays_rendered, 100u);
}

// JSON nested deeper than kMaxJsonDepth (1000) levels is not rendered: a
// server refuses it past its max_stack_depth (PostgreSQL 15, default 2 MB:
// 10000 levels accepted, 20000 refused), and the checker's stack stays
// bounded whatever a hostile client sends. The SQL log shows such a value as
// hex with a comment that says why.
TEST(BinaryValues, JsonNestedTooDeepIsHexWithAMarker) {
  auto nested = [](size_t depth, std::string_view open, std::string_view close) {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += open;
    s += "1";
    for (size_t i = 0; i < depth; ++i) s += close;
    return s;
  };
  auto bytes = [](uint32_t oid, const std::string& text) { return oid == kJsonb ? "\x01" + text : text; };
  for (uint32_t oid : {kJson, kJsonb}) {
    SCOPED_TRACE(oid);
    const std::string at_cap = nested(1000, "[", "]");
    EXPECT_EQ(render_json(oid, at_cap), at_cap);
    EXPECT_FALSE(pgwire::json_nested_too_deep(oid, pgwire::as_bytes(bytes(oid, at_cap))));
    const std::string empty_at_cap = std::string(1000, '[') + std::string(1000, ']');  // the innermost is level 1000
    EXPECT_EQ(render_json(oid, empty_at_cap), empty_at_cap);
    for (const std::string& deep :
         {nested(1001, "[", "]"), nested(1001, "{\"a\":", "}"), std::string(1001, '[') + std::string(1001, ']'),
          std::string(100000, '['), std::string(100000, '[') + std::string(100000, ']')}) {
      EXPECT_EQ(render_json(oid, deep), kRefused) << deep.substr(0, 20);
      EXPECT_TRUE(pgwire::json_nested_too_deep(oid, pgwire::as_bytes(bytes(oid, deep)))) << deep.substr(0, 20);
    }
    // Brackets inside strings are not nesting.
    const std::string in_string = "[\"" + std::string(5000, '[') + "\\\"" + std::string(5000, '{') + "\"]";
    EXPECT_EQ(render_json(oid, in_string), in_string);
    EXPECT_FALSE(pgwire::json_nested_too_deep(oid, pgwire::as_bytes(bytes(oid, in_string))));
  }
  EXPECT_FALSE(pgwire::json_nested_too_deep(25, pgwire::as_bytes(std::string(2000, '['))));  // text: not json

  // The SQL log: hex, and why.
  const std::string hostile = std::string(100000, '[');
  pgwire::StatementEvent ev;
  ev.params.push_back(pgwire::StatementParam{hostile, 1, kJson});
  ev.params.push_back(
      pgwire::StatementParam{"\x01"
                             "[[1]]",
                             1, kJsonb});
  std::string line;
  format_statement(pgwire::LogFormat::kText, ev, pgwire::SessionInfo{}, line);
  std::string hex;
  for (size_t i = 0; i < 100000; ++i) hex += "5b";
  EXPECT_NE(line.find("$1=x'" + hex + "'/* json nested deeper than 1000 levels */::114, $2='[[1]]'::3802)"),
            std::string::npos)
      << line.substr(0, 80) << "..." << line.substr(line.size() - 120);
}

}  // namespace
