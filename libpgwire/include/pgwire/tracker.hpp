// Connection tracker: turns the frames of both directions of one connection
// into "statement executed" events.
//
// Feed every frame (pieces of large frames too) in the order they crossed the
// wire, each direction in its own order; responses are matched to requests in
// FIFO order, as the server answers them. The tracker knows:
//   - the startup parameters and the authentication phase (so it can tell
//     which 'p' message a frame is, and never keeps a password);
//   - named and unnamed prepared statements and portals;
//   - pipelining: several Sync groups in flight;
//   - the server skipping the rest of an extended batch after an error (those
//     Executes are reported with Outcome::kNotExecuted);
//   - multi-statement Query strings (one event per Query message);
//   - COPY in and out, PortalSuspended, asynchronous Notice/ParameterStatus/
//     Notification, a connection ending mid-request (Outcome::kUnknown).
// With frontend frames only (TrackerOptions::frontend_only) it emits an event
// per request as it is sent, with Outcome::kUnknown.
//
// Backend messages of any size: one larger than the framer keeps whole
// (FramerOptions::max_buffered) comes in pieces, and is read field by field as
// they arrive, keeping only bounded prefixes of what the events show (the
// SQLSTATE, the error message up to TrackerOptions::max_error_bytes, the
// command tag); it drives the requests exactly as the same message whole would.
//
// Nothing here throws or asserts on input. A frontend frame that does not
// decode is counted in stats().decode_errors and skipped. A backend frame that
// does not decode is counted too, but still acts by its type (an ErrorResponse
// still fails the batch up to Sync, a CommandComplete still completes its
// Execute): the request it answers then ends with Outcome::kUnknown, never
// kOk, and error_message says why ("undecodable ErrorResponse: ...").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"

namespace pgwire {

struct SessionInfo {
  uint64_t session_id = 0;
  std::string client;  // "127.0.0.1:51234", set by the caller
  std::string user;
  std::string database;
  std::string application_name;
  uint32_t protocol = 0;  // 196608 (3.0) or 196610 (3.2); 0 before the startup packet
  int32_t backend_pid = 0;
  std::vector<std::byte> cancel_key;
  bool authenticated = false;
  int64_t authenticated_ns = 0;  // when AuthenticationOk was seen; 0 before (or never seen)
  std::string auth_method;       // "trust", "password", "md5", "SCRAM-SHA-256", ...
  // TLS of the client's and of the server's connection as a proxy recorded
  // it (kMetaClientTls / kMetaServerTls): empty when not known or not used.
  std::string client_tls;
  std::string server_tls;
  // The session began before the data it is decoded from (a capture that
  // starts after its startup packet): user, database, application_name and
  // protocol are not known, and stay empty (CaptureDecoder::Callbacks::partial).
  bool partial = false;
};

struct StatementParam {
  std::optional<std::string> value;  // nullopt = SQL NULL; raw bytes (binary values are not converted)
  int16_t format = 0;                // 0 text, 1 binary
  uint32_t type_oid = 0;             // from Parse, else ParameterDescription, else 0
  // The value was longer than TrackerOptions::max_param_bytes and `value`
  // holds only its first bytes: its whole size. 0 when `value` is whole.
  uint32_t cut_size = 0;
};

enum class StatementKind : uint8_t { kQuery, kExecute, kFunctionCall };
const char* statement_kind_name(StatementKind k);  // "query", "execute", "function_call"

enum class Outcome : uint8_t {
  kOk,           // CommandComplete / EmptyQueryResponse / PortalSuspended / FunctionCallResponse
  kError,        // ErrorResponse
  kNotExecuted,  // skipped by the server after an earlier error in the same batch
  kUnknown,      // connection ended first, frontend-only capture, or an undecodable response
};

// "ok", "error", "not_executed", "unknown": the words of the SQL log and reports.
const char* statement_outcome_name(Outcome o);

// Which extended-protocol step the ErrorResponse of a failed Execute
// answered: the Execute itself, or the Parse, Bind or Describe that prepared
// it, in which case the Execute never began (the server logs no "execute"
// line for it, only the error).
enum class FailedStep : uint8_t { kExecute, kParse, kBind, kDescribe };

struct StatementEvent {
  StatementKind kind = StatementKind::kQuery;
  std::string sql;             // Query text, or Parse text resolved through portal and statement
  bool sql_truncated = false;  // the text was longer than TrackerOptions::max_sql_bytes
  // Execute of a portal, or of a portal bound to a statement, that the tracker
  // does not know (never seen, or forgotten over max_statements / max_portals):
  // the text is not known and `sql` is empty. The SQL log says so.
  bool sql_unknown = false;
  std::string statement;      // prepared statement name ("" = unnamed)
  std::string portal;         // portal name
  uint32_t function_oid = 0;  // FunctionCall
  std::vector<StatementParam> params;
  Outcome outcome = Outcome::kUnknown;
  std::string tag;  // "SELECT 1", "INSERT 0 5", "EMPTY", "SUSPENDED"
  std::optional<uint64_t> rows;
  std::string sqlstate;
  // The ErrorResponse's message, cut at TrackerOptions::max_error_bytes (the cut
  // marked: "...(cut, N bytes in all)"); with Outcome::kUnknown, why the
  // outcome is not known, if a response could not be decoded.
  std::string error_message;
  // Of an Execute with Outcome::kError: the step its ErrorResponse answered.
  FailedStep failed_step = FailedStep::kExecute;
  uint64_t rows_digest = 0;  // FNV-1a of the DataRow messages, when TrackerOptions::digest_rows
  int64_t start_ns = 0;      // when the request frame was seen (Execute / Query / FunctionCall)
  int64_t end_ns = 0;        // when its outcome was seen; always 0 when the outcome is kUnknown
};

struct TrackerOptions {
  bool frontend_only = false;
  uint32_t max_sql_bytes = 1 << 20;    // longer SQL texts are cut (and flagged)
  uint32_t max_param_bytes = 1 << 16;  // longer parameter values are cut (StatementParam::cut_size)
  uint32_t max_error_bytes = 4096;     // longer error messages are cut (and the cut marked)
  // Named prepared statements and named portals remembered per session (at
  // least one each): beyond that the least recently used one (parsed, bound,
  // described; executed, for a portal) is forgotten, and counted in
  // TrackerStats. The unnamed statement and portal are never forgotten.
  size_t max_statements = 10000;
  size_t max_portals = 10000;
  bool digest_rows = false;  // fill StatementEvent::rows_digest (for result comparison)
};

struct TrackerStats {
  uint64_t frontend_frames = 0;
  uint64_t backend_frames = 0;
  uint64_t decode_errors = 0;  // frames that did not decode (backend ones: see the file comment)
  uint64_t events = 0;
  uint64_t statements_evicted = 0;  // named statements forgotten over TrackerOptions::max_statements
  uint64_t portals_evicted = 0;     // named portals forgotten over TrackerOptions::max_portals
  std::string last_error;           // description of the last decode error
};

class ConnectionTracker {
 public:
  using Sink = std::function<void(const StatementEvent&, const SessionInfo&)>;

  ConnectionTracker(TrackerOptions opts, Sink sink);
  ~ConnectionTracker();
  ConnectionTracker(const ConnectionTracker&) = delete;
  ConnectionTracker& operator=(const ConnectionTracker&) = delete;

  // One frame or piece, as returned by a Framer, with its capture time.
  void on_frame(Direction dir, const Frame& frame, int64_t ts_ns);
  // The connection ended: every request still waiting is emitted with Outcome::kUnknown.
  void on_close(int64_t ts_ns);

  // Called once, at the session's first ReadyForQuery: the startup is over,
  // and what the server says of the session (BackendKeyData, the
  // authentication) is in session(). The csvlog's "connection authorized".
  using ReadySink = std::function<void(const SessionInfo&, int64_t ts_ns)>;
  void set_ready_sink(ReadySink sink);

  SessionInfo& session();
  const SessionInfo& session() const;
  // What the client's next 'p' frame is (from the last authentication request).
  PasswordKind password_kind() const;
  const TrackerStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwire
