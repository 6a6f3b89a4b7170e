#include "pgwire/csvlog.hpp"

#include <charconv>
#include <ctime>
#include <iterator>

#include <fmt/format.h>

#include "pgwire/binary_values.hpp"
#include "pgwire/bytes.hpp"

namespace pgwire {
namespace {

int64_t seconds_of(int64_t ns) { return ns >= 0 ? ns / 1000000000 : (ns - 999999999) / 1000000000; }

// "2026-12-03 07:28:32" of log_time and session_start_time (log_timezone
// is UTC here: a proxy does not know the server's).
void append_utc_seconds(std::string& out, int64_t secs) {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// log_time: milliseconds, cut (not rounded) as the server cuts them.
void append_log_time(std::string& out, int64_t ns) {
  const int64_t secs = seconds_of(ns);
  append_utc_seconds(out, secs);
  fmt::format_to(std::back_inserter(out), ".{:03} UTC", (ns - secs * 1000000000) / 1000000);
}

// appendCSVLiteral: between double quotes, inner ones doubled. Newlines stay
// as they are: a CSV reader takes them as part of the quoted field.
void append_csv(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// A network client's host and port ("127.0.0.1:5000", "[::1]:5000"); false
// for a unix-socket client, whose address says nothing of the client.
bool split_client(std::string_view client, std::string_view& host, std::string_view& port) {
  size_t colon = client.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= client.size() || client[0] == '/') return false;
  host = client.substr(0, colon);
  port = client.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return !host.empty();
}

// "host=127.0.0.1 port=5000" as the connection messages write it; a
// unix-socket client is "[local]", the server's word for a client without
// a network address.
void append_host_port(std::string& out, std::string_view client) {
  std::string_view host, port;
  if (!split_client(client, host, port)) {
    out += "host=[local]";
    return;
  }
  out += "host=";
  out += host;
  out += " port=";
  out += port;
}

// The first word of a CommandComplete tag ("SELECT" of "SELECT 1"), which the
// server shows as the command while it runs; our own "EMPTY" and "SUSPENDED"
// are none.
std::string_view command_of(const StatementEvent& ev) {
  if (ev.outcome != Outcome::kOk || ev.tag == "EMPTY" || ev.tag == "SUSPENDED") return {};
  std::string_view tag = ev.tag;
  return tag.substr(0, tag.find(' '));
}

// The columns after the message's DETAIL: hint .. location empty, then
// application_name, backend_type, leader_pid and query_id (not known: empty).
void append_tail(std::string& out, std::string_view application_name, std::string_view backend_type) {
  out += ",,,,,,,,";
  append_csv(out, application_name);
  out += ',';
  append_csv(out, backend_type);
  out += ",,\n";
}

// "parameters: $1 = '42', $2 = NULL": the DETAIL of an execute line, each
// value as the server writes it (log_parameter_max_length cuts it with
// "..."). A binary value is shown as its text form when it decodes, else as
// bytea's hex text: the server would show the type's text form, which the
// bytes alone do not give.
void append_parameters(std::string& detail, const StatementEvent& ev) {
  detail += "parameters: ";
  size_t slack = kTextBudgetSlack;
  thread_local std::string text;
  for (size_t i = 0; i < ev.params.size(); ++i) {
    const StatementParam& p = ev.params[i];
    if (i) detail += ", ";
    fmt::format_to(std::back_inserter(detail), "${} = ", i + 1);
    if (!p.value) {
      detail += "NULL";
      continue;
    }
    std::string_view value = *p.value;
    std::string hex;
    if (p.format == 1) {
      const Bytes bytes = as_bytes(*p.value);
      text.clear();
      const size_t own = proportional_text_budget(bytes.size());
      if (p.cut_size == 0 && render_binary_value(p.type_oid, bytes, text, own + slack)) {
        if (text.size() > own) slack -= text.size() - own;
        value = text;
      } else {
        hex = "\\x" + to_hex(bytes);
        value = hex;
      }
    }
    detail += '\'';
    for (char c : value) {
      if (c == '\'') detail += '\'';
      detail += c;
    }
    if (p.cut_size != 0) detail += "...";
    detail += '\'';
  }
  if (text.capacity() > kTextBudgetSlack) std::string().swap(text);
}

// "0:00:01.234": hours, minutes, seconds and milliseconds of a session.
void append_session_time(std::string& out, int64_t ns) {
  if (ns < 0) ns = 0;
  const int64_t ms = ns / 1000000;
  const int64_t secs = ms / 1000;
  fmt::format_to(std::back_inserter(out), "{}:{:02}:{:02}.{:03}", secs / 3600, secs / 60 % 60, secs % 60, ms % 1000);
}

}  // namespace

// log_time .. session_start_time, then the two transaction ids (not known):
// up to the comma before error_severity. `with_user`: the user and database
// columns, null on the server's first line of a session (before
// authentication).
void CsvlogSession::begin_line(const SessionInfo& s, int64_t ts_ns, bool with_user, std::string& out) {
  append_log_time(out, ts_ns);
  out += ',';
  if (with_user && !s.user.empty()) append_csv(out, s.user);
  out += ',';
  if (with_user && !s.database.empty()) append_csv(out, s.database);
  out += ',';
  if (s.backend_pid != 0) fmt::format_to(std::back_inserter(out), "{}", s.backend_pid);
  out += ',';
  std::string_view host, port;
  if (split_client(s.client, host, port)) {
    out += '"';
    out += host;
    out += ':';
    out += port;
    out += '"';
  }
  const int64_t start_secs = seconds_of(start_ns_);
  const uint32_t id = s.backend_pid != 0 ? static_cast<uint32_t>(s.backend_pid) : static_cast<uint32_t>(s.session_id);
  fmt::format_to(std::back_inserter(out), ",{:x}.{:x},{},", start_secs, id, ++lines_);
}

void CsvlogSession::connected(const SessionInfo& s, std::string& out) {
  if (announced_) return;
  announced_ = true;
  if (s.partial) return;
  connection_lines_ = true;
  begin_line(s, start_ns_, false, out);
  out += "\"\",";
  append_utc_seconds(out, seconds_of(start_ns_));
  out += " UTC,,,LOG,00000,";
  std::string message = "connection received: ";
  append_host_port(message, s.client);
  append_csv(out, message);
  out += ',';
  append_tail(out, "", "not initialized");

  begin_line(s, s.authenticated_ns != 0 ? s.authenticated_ns : start_ns_, true, out);
  out += "\"authentication\",";
  append_utc_seconds(out, seconds_of(start_ns_));
  out += " UTC,,,LOG,00000,";
  message = fmt::format("connection authorized: user={} database={}", s.user, s.database);
  if (!s.application_name.empty()) message += fmt::format(" application_name={}", s.application_name);
  append_csv(out, message);
  out += ',';
  append_tail(out, "", "client backend");
}

void CsvlogSession::statement(const StatementEvent& ev, const SessionInfo& s, std::string& out, ParamLogging params) {
  if (ev.outcome == Outcome::kNotExecuted || ev.sql_unknown || ev.kind == StatementKind::kFunctionCall) return;
  connected(s, out);
  auto line = [&](int64_t ts, std::string_view command, std::string_view severity, std::string_view sqlstate) {
    begin_line(s, ts, true, out);
    append_csv(out, command);
    out += ',';
    append_utc_seconds(out, seconds_of(start_ns_));
    out += " UTC,,,";
    out += severity;
    out += ',';
    out += sqlstate;
    out += ',';
  };

  // The Parse, Bind or Describe of an Execute failed: the server logged the
  // error alone, with the step as its command.
  if (ev.kind == StatementKind::kExecute && ev.outcome == Outcome::kError && ev.failed_step != FailedStep::kExecute) {
    line(ev.end_ns,
         ev.failed_step == FailedStep::kParse  ? "PARSE"
         : ev.failed_step == FailedStep::kBind ? "BIND"
                                               : "",
         "ERROR", ev.sqlstate);
    append_csv(out, ev.error_message);
    out += ',';
    append_tail(out, s.application_name, "client backend");
    return;
  }

  std::string message;
  std::string detail;
  if (ev.kind == StatementKind::kExecute) {
    message = "execute ";
    message += ev.statement.empty() ? std::string_view("<unnamed>") : std::string_view(ev.statement);
    if (!ev.portal.empty()) {
      message += '/';
      message += ev.portal;
    }
    message += ": ";
    if (!ev.params.empty() && params == ParamLogging::kFull) append_parameters(detail, ev);
  } else {
    message = "statement: ";
  }
  message += ev.sql;
  line(ev.start_ns, ev.kind == StatementKind::kExecute ? command_of(ev) : std::string_view("idle"), "LOG", "00000");
  append_csv(out, message);
  out += ',';
  if (!detail.empty()) append_csv(out, detail);
  append_tail(out, s.application_name, "client backend");

  if (ev.outcome == Outcome::kOk && ev.end_ns >= ev.start_ns) {
    line(ev.end_ns, command_of(ev), "LOG", "00000");
    const int64_t us = (ev.end_ns - ev.start_ns) / 1000;
    out += fmt::format("\"duration: {}.{:03} ms\",", us / 1000, us % 1000);
    append_tail(out, s.application_name, "client backend");
  } else if (ev.outcome == Outcome::kError) {
    line(ev.end_ns, "", "ERROR", ev.sqlstate);
    append_csv(out, ev.error_message);
    out += ',';
    append_tail(out, s.application_name, "client backend");
  }
}

void CsvlogSession::disconnected(const SessionInfo& s, int64_t ts_ns, std::string& out) {
  if (!connection_lines_ || closed_) return;
  closed_ = true;
  begin_line(s, ts_ns, true, out);
  out += "\"idle\",";
  append_utc_seconds(out, seconds_of(start_ns_));
  out += " UTC,,,LOG,00000,";
  std::string message = "disconnection: session time: ";
  append_session_time(message, ts_ns - start_ns_);
  message += fmt::format(" user={} database={} ", s.user, s.database);
  append_host_port(message, s.client);
  append_csv(out, message);
  out += ',';
  append_tail(out, s.application_name, "client backend");
}

}  // namespace pgwire
