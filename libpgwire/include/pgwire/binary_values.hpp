// Binary-format (format code 1) parameter values as PostgreSQL's own text
// output would print them, for the SQL log: the inverse of the server's
// *send functions (int4send, numeric_send, timestamp_send, array_send, ...),
// checked the way its *recv functions check them.
//
// The text is the type's output function's, with the settings the server
// starts with: DateStyle=ISO, IntervalStyle=postgres, extra_float_digits=1
// (shortest exact floats), bytea_output=hex. Two choices, since the session's
// settings are not known:
//   - timestamptz is printed in UTC, "+00" (the server prints it in the
//     session's TimeZone: the same instant, written for another zone);
//   - jsonb is printed as the client sent its text, not normalized the way
//     jsonb_out would (same value; key order, spacing and duplicate keys may
//     differ from the server's output).
// A value that a server would refuse (wrong length, out of range, a bad array
// header, text that is not UTF-8, json that does not parse, ...), a type not
// listed in type_name(), and anything not sure to print exactly as the server
// would (an interval of only INT32/INT64 extremes, which PostgreSQL 17 reads
// as infinity and older servers as a number) is not rendered: the caller
// falls back to hex. The client encoding is taken to be UTF-8.
//
// Work is bounded by the input: array element counts are checked against the
// bytes left before anything is read, dimensions are at most 6 (MAXDIM), json
// and jsonb are nested at most kMaxJsonDepth levels (see there), and nothing
// recurses. So is the text, by a budget (max_out): a numeric of 10
// bytes can print 147,456 digits (weight 32767, 16383 decimals), an array of
// them just under 64 KiB 690 MB. A value whose text would be longer than the
// budget is not rendered; a numeric's length is known before it is written,
// an array's checked after each element. Nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pgwire/bytes.hpp"

namespace pgwire {

// The text budget every value gets: 8 bytes of text per byte of value, plus
// 64. Every value of the types listed fits in it (a byte of bytea prints 2, of
// a timestamptz 4, an array's length words and braces less than that) except
// numerics that print thousands of digits from a few bytes.
constexpr size_t proportional_text_budget(size_t value_size) { return 8 * value_size + 64; }
// What a value may print beyond that, for such numerics: 16383 decimals fit,
// 131,072 integer digits do not. The SQL log shares it between the values of
// a line, so a Bind of many of them cannot build a line of gigabytes.
constexpr size_t kTextBudgetSlack = size_t{64} << 10;

// json and jsonb values nested deeper than this (arrays and objects inside
// one another, the outermost counting 1) are not rendered: PostgreSQL's JSON
// parser recurses once per level and refuses a value whose nesting exceeds
// its max_stack_depth ("stack depth limit exceeded"), a depth that depends on
// the server's settings. Measured on PostgreSQL 15 with the default 2 MB:
// 10000 levels accepted, 20000 refused; 1000 leaves room for a server with a
// much smaller stack and is deeper than any document we have seen. A hostile
// client sending 100,000 '[' costs the log a scan, never a deep stack.
inline constexpr size_t kMaxJsonDepth = 1000;

// True when `value`, a binary value of type json or jsonb, is nested deeper
// than kMaxJsonDepth (valid JSON or not): why render_binary_value did not
// render it, for a caller that marks such a value ("json nested deeper than
// 1000 levels"). False for every other type.
[[nodiscard]] bool json_nested_too_deep(uint32_t type_oid, Bytes value);

// Appends the text form of `value`, a binary value of type `type_oid`, to
// `out` and returns true; returns false and leaves `out` as it was when the
// type is not known, the value is not one the server would accept, or its
// text would be longer than `max_out` bytes.
[[nodiscard]] bool render_binary_value(uint32_t type_oid, Bytes value, std::string& out, size_t max_out);

// With the budget proportional_text_budget(value.size()) + kTextBudgetSlack.
[[nodiscard]] inline bool render_binary_value(uint32_t type_oid, Bytes value, std::string& out) {
  return render_binary_value(type_oid, value, out, proportional_text_budget(value.size()) + kTextBudgetSlack);
}

// PostgreSQL's pg_type.typname for the built-in types the log knows ("int4",
// "_int4" for int4[], "timestamptz", "bpchar"); nullptr for any other OID.
const char* type_name(uint32_t type_oid);

}  // namespace pgwire
