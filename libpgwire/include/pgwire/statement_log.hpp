// The SQL log line: one line per statement event, shared by pgproxy (live)
// and pgdump-log (offline) so both print the same bytes for the same traffic.
#pragma once

#include <string>

#include "pgwire/tracker.hpp"

namespace pgwire {

enum class LogFormat : uint8_t { kText, kJson };

// Appends one line, '\n' included. Newlines and control characters inside SQL
// and parameters are escaped, so one statement is always one line.
void format_statement(LogFormat format, const StatementEvent& ev, const SessionInfo& session, std::string& out);

}  // namespace pgwire
