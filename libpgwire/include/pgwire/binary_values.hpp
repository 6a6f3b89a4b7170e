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
// header, ...), a type not listed in type_name(), and anything not sure to
// print exactly as the server would (an interval of only INT32/INT64 extremes,
// which PostgreSQL 17 reads as infinity and older servers as a number) is not
// rendered: the caller falls back to hex.
//
// Work is bounded by the input: array element counts are checked against the
// bytes left before anything is read, dimensions are at most 6 (MAXDIM), and
// nothing recurses. Nothing throws.
#pragma once

#include <cstdint>
#include <string>

#include "pgwire/bytes.hpp"

namespace pgwire {

// Appends the text form of `value`, a binary value of type `type_oid`, to
// `out` and returns true; returns false and leaves `out` as it was when the
// type is not known or the value is not one the server would accept.
[[nodiscard]] bool render_binary_value(uint32_t type_oid, Bytes value, std::string& out);

// PostgreSQL's pg_type.typname for the built-in types the log knows ("int4",
// "_int4" for int4[], "timestamptz", "bpchar"); nullptr for any other OID.
const char* type_name(uint32_t type_oid);

}  // namespace pgwire
