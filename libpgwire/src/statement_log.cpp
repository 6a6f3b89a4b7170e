#include "pgwire/statement_log.hpp"

#include <fmt/format.h>

#include "pgwire/bytes.hpp"
#include "pgwire/text.hpp"

namespace pgwire {
namespace {

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kError: return "error";
    case Outcome::kNotExecuted: return "not_executed";
    case Outcome::kUnknown: return "unknown";
  }
  return "unknown";
}

bool has_duration(const StatementEvent& ev) { return ev.end_ns != 0 && ev.end_ns >= ev.start_ns; }

double duration_ms(const StatementEvent& ev) { return static_cast<double>(ev.end_ns - ev.start_ns) / 1e6; }

// key=value, the value quoted when it would not read back as one word.
void append_field(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  bool plain = !value.empty();
  for (char c : value) plain = plain && c > ' ' && c != '"' && c != '\\' && c < 0x7f;
  if (plain) {
    out += value;
    return;
  }
  out += '"';
  std::string escaped;
  append_escaped(escaped, value);
  for (char c : escaped) {
    if (c == '"') out += '\\';
    out += c;
  }
  out += '"';
}

void append_text_param(std::string& out, const StatementParam& p) {
  if (!p.value) {
    out += "NULL";
  } else if (p.format == 1) {
    out += "x'";
    out += to_hex(as_bytes(*p.value));
    out += '\'';
  } else {
    out += '\'';
    std::string escaped;
    append_escaped(escaped, *p.value);
    for (char c : escaped) {
      if (c == '\'') out += '\'';
      out += c;
    }
    out += '\'';
  }
  if (p.type_oid != 0) fmt::format_to(std::back_inserter(out), "::{}", p.type_oid);
}

void format_text(const StatementEvent& ev, const SessionInfo& s, std::string& out) {
  append_iso8601_utc(out, ev.start_ns);
  fmt::format_to(std::back_inserter(out), " session={}", s.session_id);
  append_field(out, "client", s.client);
  append_field(out, "user", s.user);
  append_field(out, "db", s.database);
  out += ' ';
  out += statement_kind_name(ev.kind);
  out += ' ';
  out += outcome_name(ev.outcome);
  if (has_duration(ev)) {
    fmt::format_to(std::back_inserter(out), " duration_ms={:.3f}", duration_ms(ev));
  }
  if (!ev.tag.empty()) append_field(out, "tag", ev.tag);
  if (ev.rows) fmt::format_to(std::back_inserter(out), " rows={}", *ev.rows);
  if (!ev.sqlstate.empty()) {
    append_field(out, "sqlstate", ev.sqlstate);
    append_field(out, "error", ev.error_message);
  }
  if (ev.kind == StatementKind::kExecute && !ev.statement.empty()) append_field(out, "statement", ev.statement);
  if (!ev.params.empty()) {
    out += " params=(";
    for (size_t i = 0; i < ev.params.size(); ++i) {
      if (i) out += ", ";
      fmt::format_to(std::back_inserter(out), "${}=", i + 1);
      append_text_param(out, ev.params[i]);
    }
    out += ')';
  }
  if (ev.sql_truncated) out += " truncated";
  out += " sql: ";
  append_escaped(out, ev.sql);
  out += '\n';
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  append_json_escaped(out, s);
  out += '"';
}

void format_json(const StatementEvent& ev, const SessionInfo& s, std::string& out) {
  out += "{\"ts\":\"";
  append_iso8601_utc(out, ev.start_ns);
  fmt::format_to(std::back_inserter(out), "\",\"session\":{},\"client\":", s.session_id);
  json_string(out, s.client);
  out += ",\"user\":";
  json_string(out, s.user);
  out += ",\"database\":";
  json_string(out, s.database);
  out += ",\"application_name\":";
  json_string(out, s.application_name);
  out += ",\"kind\":\"";
  out += statement_kind_name(ev.kind);
  out += "\",\"statement\":";
  json_string(out, ev.statement);
  out += ",\"portal\":";
  json_string(out, ev.portal);
  out += ",\"query\":";
  json_string(out, ev.sql);
  fmt::format_to(std::back_inserter(out), ",\"query_truncated\":{}", ev.sql_truncated);
  out += ",\"params\":[";
  for (size_t i = 0; i < ev.params.size(); ++i) {
    if (i) out += ',';
    const StatementParam& p = ev.params[i];
    if (!p.value) {
      out += "null";
    } else if (p.format == 1) {
      out += "\"\\\\x";
      out += to_hex(as_bytes(*p.value));
      out += '"';
    } else {
      json_string(out, *p.value);
    }
  }
  out += "],\"param_formats\":[";
  for (size_t i = 0; i < ev.params.size(); ++i) fmt::format_to(std::back_inserter(out), "{}{}", i ? "," : "", ev.params[i].format);
  out += "],\"param_types\":[";
  for (size_t i = 0; i < ev.params.size(); ++i) fmt::format_to(std::back_inserter(out), "{}{}", i ? "," : "", ev.params[i].type_oid);
  out += "],\"duration_ms\":";
  if (has_duration(ev)) {
    fmt::format_to(std::back_inserter(out), "{:.3f}", duration_ms(ev));
  } else {
    out += "null";
  }
  out += ",\"status\":\"";
  out += outcome_name(ev.outcome);
  out += "\",\"tag\":";
  if (ev.tag.empty()) {
    out += "null";
  } else {
    json_string(out, ev.tag);
  }
  out += ",\"rows\":";
  if (ev.rows) {
    fmt::format_to(std::back_inserter(out), "{}", *ev.rows);
  } else {
    out += "null";
  }
  out += ",\"sqlstate\":";
  if (ev.sqlstate.empty()) {
    out += "null";
  } else {
    json_string(out, ev.sqlstate);
  }
  out += ",\"error\":";
  if (ev.error_message.empty()) {
    out += "null";
  } else {
    json_string(out, ev.error_message);
  }
  fmt::format_to(std::back_inserter(out), ",\"executed\":{}}}\n", ev.outcome != Outcome::kNotExecuted);
}

}  // namespace

void format_statement(LogFormat format, const StatementEvent& ev, const SessionInfo& session, std::string& out) {
  if (format == LogFormat::kJson) {
    format_json(ev, session, out);
  } else {
    format_text(ev, session, out);
  }
}

}  // namespace pgwire
