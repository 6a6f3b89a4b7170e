// PostgreSQL's csvlog, as a PostgreSQL 15 server writes it with
// log_statement=all, log_duration=on, log_connections and log_disconnections:
// the SQL log format pgBadger (-f csv) and pgreplay (-c) read. pgproxy (live)
// and pgdump-log (offline) both write it through CsvlogSession, so the same
// traffic gives the same bytes.
//
// The 26 columns of PostgreSQL 15, quoted as the server quotes them (double
// quotes, inner ones doubled, nothing for null). The messages are the
// server's, word for word ("statement: ", "execute <unnamed>: ", "duration:
// 0.123 ms", "connection authorized: ...", "disconnection: session time:
// ..."). What the wire does not say is left empty, never made up: the
// virtual and real transaction ids, the query id, an error's DETAIL, HINT and
// CONTEXT, and the process id when the session's BackendKeyData was not seen.
// The session id is PostgreSQL's hex(start time in seconds).hex(pid), from
// the session's start (its SessionOpen) and the pid of its BackendKeyData;
// without one, hex(start).hex(our session id).
#pragma once

#include <cstdint>
#include <string>

#include "pgwire/statement_log.hpp"
#include "pgwire/tracker.hpp"

namespace pgwire {

// One session's part of a csvlog: its start and its line numbers. Each call
// appends whole CSV records to `out` (one record may hold newlines: those of
// the SQL, inside a quoted field).
class CsvlogSession {
 public:
  // The session began (the client connected) at `ts_ns`.
  explicit CsvlogSession(int64_t start_ns) : start_ns_(start_ns) {}

  // The session's first ReadyForQuery: "connection received" at the start
  // and "connection authorized" at AuthenticationOk. Nothing for a partial
  // session (its startup is not known) or once written.
  void connected(const SessionInfo& s, std::string& out);
  // "statement: " or "execute <name>: " (with the parameters as DETAIL),
  // then "duration: " or the ERROR line. Statements the server never ran
  // (Outcome::kNotExecuted), whose text is not known, and FunctionCalls (the
  // server logs them without their arguments) write nothing; one whose
  // outcome is unknown, only its statement line. Writes connected() first
  // if the session did not show it (a capture of the client's side only).
  void statement(const StatementEvent& ev, const SessionInfo& s, std::string& out,
                 ParamLogging params = ParamLogging::kFull);
  // The client or the server ended the session at `ts_ns`: "disconnection:
  // session time: ...", for a session whose connection lines were written.
  void disconnected(const SessionInfo& s, int64_t ts_ns, std::string& out);

 private:
  void begin_line(const SessionInfo& s, int64_t ts_ns, bool with_user, std::string& out);
  int64_t start_ns_;
  uint64_t lines_ = 0;
  bool announced_ = false;         // connected() was called (or made by statement())
  bool connection_lines_ = false;  // and wrote the connection lines
  bool closed_ = false;
};

}  // namespace pgwire
