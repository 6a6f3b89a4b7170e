// One-line text rendering of decoded messages, in the spirit of libpq's
// PQtrace: the message name, then every field in wire order.
//
//   Parse "stmt1" "SELECT $1" 1 23
//   Bind "" "stmt1" 1 0 1 2 '42' 1 0
//   DataRow 2 1 '1' -1
//   ErrorResponse S "ERROR" V "ERROR" C "42P01" M "relation \"x\" does not exist"
//
// Conventions:
//   "..."     a String field (names, SQL, tags, error fields)
//   N '...'   a value with an Int32 length: the length, then the bytes; -1 alone is NULL
//   \x0a1b    bytes known to be binary (binary-format values, cancel keys, salts, tokens)
//   integers  in decimal; Byte1 codes (Describe target, status) as the bare character
// Inside quotes, \n \r \t \\ and the quote itself are backslash-escaped, and
// control characters and bytes that are not valid UTF-8 become \xNN, so the
// output is always exactly one line whatever the message holds.
#pragma once

#include <string>
#include <string_view>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/protocol.hpp"

namespace pgwire {

struct TraceOptions {
  // Replace what differs from run to run with placeholders so two traces can
  // be diffed: process ids (<pid>), cancel keys (<key>), SCRAM nonces, salts,
  // proofs and signatures (r=<nonce> s=<salt> p=<proof> v=<signature>), MD5
  // salts and hashes (<salt>, <md5>) and GSSAPI tokens (<token>).
  bool hide_volatile = false;
};

std::string trace_message(const fe::Message& msg, const TraceOptions& opts = {});
std::string trace_message(const be::Message& msg, const TraceOptions& opts = {});

// Decodes a frame and renders it as "<F|B> <length> <message>", e.g.
// "F 26 Parse \"stmt1\" \"SELECT $1\" 1 23". Never fails: a frame that cannot be
// decoded (malformed, only a piece of a large frame, encrypted bytes) gives a
// line saying so in angle brackets, e.g. "F 17 Bind <undecodable: bad count at ...>".
std::string trace_frame(Direction dir, const Frame& frame, PasswordKind password_kind = PasswordKind::kPassword,
                        const TraceOptions& opts = {});

// The escaping used above, for tools that print protocol text themselves.
std::string trace_quote(std::string_view s, char quote = '"');

}  // namespace pgwire
