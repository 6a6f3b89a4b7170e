// The SQL log line: one line per statement event, shared by pgproxy (live)
// and pgdump-log (offline) so both print the same bytes for the same traffic.
#pragma once

#include <string>

#include "pgwire/tracker.hpp"

namespace pgwire {

// kCsvlog is PostgreSQL's own csvlog: its lines belong to sessions as much
// as to statements (connection, disconnection, line numbers), so it is
// written through CsvlogSession (pgwire/csvlog.hpp), not format_statement.
enum class LogFormat : uint8_t { kText, kJson, kCsvlog };

// What of the parameters goes into a line: everything; their positions and
// types, no values (an audit log that must not hold the data: text
// "params=($1::23, $2)", JSON "params":null with the formats and types kept);
// nothing (text: no params=, JSON: null for params and their formats and types).
enum class ParamLogging : uint8_t { kFull, kRedacted, kNone };

// Appends one line, '\n' included (nothing for LogFormat::kCsvlog). Newlines
// and control characters inside SQL and parameters are escaped, so one
// statement is always one line.
void format_statement(LogFormat format, const StatementEvent& ev, const SessionInfo& session, std::string& out,
                      ParamLogging params = ParamLogging::kFull);

}  // namespace pgwire
