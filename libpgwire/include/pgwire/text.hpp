// Escaping for one-line text and for JSON strings, shared by every output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgwire {

// Whether `s` is valid UTF-8: no overlong forms, no surrogates (U+D800 to
// U+DFFF), nothing past U+10FFFF, no sequence cut short. Zero bytes are valid.
[[nodiscard]] bool is_utf8(std::string_view s);

// Appends `s` with \n \r \t \\ escaped and every other control byte, and
// every byte that is not part of valid UTF-8, written as \xNN: the result is
// one line of valid UTF-8 whatever the input.
void append_escaped(std::string& out, std::string_view s);

// Appends `s` as the inside of a JSON string (no quotes). Bytes that are not
// valid UTF-8 are written as \u00NN (read as Latin-1), so the output is
// always valid JSON.
void append_json_escaped(std::string& out, std::string_view s);

// "2026-11-28T03:01:08.123456Z"
void append_iso8601_utc(std::string& out, int64_t ns_since_epoch);

// Parses "2026-11-28T03:01:08Z", "2026-11-28 03:01:08.5", "2026-11-28" as
// UTC; returns false on anything else.
bool parse_iso8601_utc(std::string_view s, int64_t* ns_since_epoch);

}  // namespace pgwire
