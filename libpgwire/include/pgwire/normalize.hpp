// Statement normalization for statistics: literals, numbers and $n
// parameters become '?', comments go, whitespace folds, and a list of
// placeholders "(?, ?, ?)" becomes "(?, ...)". Two executions of the same
// statement with different values normalize to the same text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgwire {

std::string normalize_sql(std::string_view sql);

// A statement's fingerprint: FNV-1a (64 bits: offset basis 0xcbf29ce484222325,
// prime 0x100000001b3) of the bytes of normalize_sql(sql). The same in
// pgproxy's JSON log, pgdump-log's JSON and --stats, and pgreplay's report, so
// their lines can be joined on it. docs/fingerprints.md pins both steps.
uint64_t fingerprint_of_normalized(std::string_view normalized);
inline uint64_t statement_fingerprint(std::string_view sql) { return fingerprint_of_normalized(normalize_sql(sql)); }
// 16 lower-case hex digits.
std::string fingerprint_hex(uint64_t fingerprint);

}  // namespace pgwire
