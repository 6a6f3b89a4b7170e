#include "pgwire/statement_log.hpp"

#include <algorithm>
#include <array>
#include <charconv>

#include "pgwire/binary_values.hpp"
#include "pgwire/bytes.hpp"
#include "pgwire/json.hpp"
#include "pgwire/normalize.hpp"
#include "pgwire/text.hpp"

namespace pgwire {
namespace {

bool has_duration(const StatementEvent& ev) { return ev.end_ns != 0 && ev.end_ns >= ev.start_ns; }

// Numbers are written with std::to_chars: the log line is on the proxy's hot
// path and fmt's format-string parsing cost more than everything else here.
template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

// Milliseconds with three decimals, rounded to the nearest microsecond.
void append_duration_ms(std::string& out, const StatementEvent& ev) {
  int64_t us = (ev.end_ns - ev.start_ns + 500) / 1000;
  append_int(out, us / 1000);
  out += '.';
  int64_t frac = us % 1000;
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
}

// Appends `s` escaped (append_escaped), with every `quote` in it written as
// `quote_escape` followed by the quote. append_escaped writes no quote
// character of its own, so the quotes to escape are exactly those it copied.
void append_escaped_quoted(std::string& out, std::string_view s, char quote, char quote_escape) {
  const size_t from = out.size();
  append_escaped(out, s);
  size_t q = out.find(quote, from);
  if (q == std::string::npos) return;
  std::string tail = out.substr(q);
  out.resize(q);
  for (char c : tail) {
    if (c == quote) out += quote_escape;
    out += c;
  }
}

// key=value, the value quoted when it would not read back as one word.
void append_field(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  // One pass decides: a word as it is; printable ASCII with spaces, between
  // quotes as it is (append_escaped would copy it unchanged); anything else
  // escaped.
  bool spaces = value.empty();
  bool escape = false;
  for (char c : value) {
    spaces = spaces || c == ' ';
    escape = escape || c < ' ' || c == '"' || c == '\\' || c >= 0x7f;
  }
  if (!spaces && !escape) {
    out += value;
    return;
  }
  out += '"';
  if (escape) {
    append_escaped_quoted(out, value, '"', '\\');
  } else {
    out += value;
  }
  out += '"';
}

// " session=1 client=... user=... db=...": the part of a line that only
// changes with the session. Lines come from the sessions in flight, which
// interleave, so a few of these are kept, one slot per session id modulo
// their number, each keyed by all the values it shows.
void append_session(std::string& out, const SessionInfo& s) {
  struct Cached {
    bool valid = false;
    uint64_t session_id = 0;
    std::string client, user, database;
    std::string text;
  };
  thread_local std::array<Cached, 64> slots;
  Cached& cached = slots[s.session_id % slots.size()];
  if (!cached.valid || cached.session_id != s.session_id || cached.client != s.client || cached.user != s.user ||
      cached.database != s.database) {
    cached.session_id = s.session_id;
    cached.client = s.client;
    cached.user = s.user;
    cached.database = s.database;
    cached.text.clear();
    cached.text += " session=";
    append_int(cached.text, s.session_id);
    append_field(cached.text, "client", s.client);
    append_field(cached.text, "user", s.user);
    append_field(cached.text, "db", s.database);
    cached.valid = true;
  }
  out += cached.text;
}

// How long the decoded binary parameters of one line may be: each its
// proportional_text_budget, and the line shares one kTextBudgetSlack beyond
// that. A numeric of 8 bytes can print 16 KiB: a Bind of thousands of them
// would otherwise build a line of gigabytes on the proxy's event loop; this
// way their text is at most 8 times their bytes, plus 64 per value, plus 64 KiB.
class LineTextBudget {
 public:
  size_t for_value(size_t value_size) const { return proportional_text_budget(value_size) + slack_; }
  void spend(size_t value_size, size_t text_size) {
    const size_t own = proportional_text_budget(value_size);
    if (text_size > own) slack_ -= text_size - own;  // text_size <= for_value(value_size)
  }

 private:
  size_t slack_ = kTextBudgetSlack;
};

// The text form of a binary parameter (render_binary_value) in `text`, or
// false when it is to be shown as hex: a type not known, a value the server
// would refuse, one whose text is over the budget, or one cut at
// TrackerOptions::max_param_bytes (a prefix must never pass for the value).
bool binary_param_text(const StatementParam& p, std::string& text, LineTextBudget& budget) {
  text.clear();
  if (p.cut_size != 0) return false;
  const Bytes value = as_bytes(*p.value);
  if (!render_binary_value(p.type_oid, value, text, budget.for_value(value.size()))) return false;
  budget.spend(value.size(), text.size());
  return true;
}

// The thread's scratch string for binary_param_text, emptied of a big value's
// memory once it is used: one value of hundreds of KiB must not stay
// allocated for the life of the thread.
void release_if_big(std::string& scratch) {
  if (scratch.capacity() > kTextBudgetSlack) std::string().swap(scratch);
}

// The tracker's mark for a cut string, after the kept part.
void append_cut_mark(std::string& out, const StatementParam& p) {
  if (p.cut_size == 0) return;
  out += "...(cut, ";
  append_int(out, p.cut_size);
  out += " bytes in all)";
}

// NULL, 'text' or x'hex', then the cut mark and ::type-oid. A binary value
// that decodes is written as the text value would be: '42'::23 either way.
void append_text_param(std::string& out, const StatementParam& p, LineTextBudget& budget) {
  thread_local std::string text;
  if (!p.value) {
    out += "NULL";
  } else if (p.format == 1 && !binary_param_text(p, text, budget)) {
    out += "x'";
    out += to_hex(as_bytes(*p.value));
    out += '\'';
    // Why a json value is hex, as a comment the line's SQL-like form keeps.
    if (p.cut_size == 0 && json_nested_too_deep(p.type_oid, as_bytes(*p.value))) {
      out += "/* json nested deeper than ";
      append_int(out, kMaxJsonDepth);
      out += " levels */";
    }
  } else {
    out += '\'';
    append_escaped_quoted(out, p.format == 1 ? std::string_view(text) : std::string_view(*p.value), '\'', '\'');
    out += '\'';
  }
  release_if_big(text);
  append_cut_mark(out, p);
  if (p.type_oid != 0) {
    out += "::";
    append_int(out, p.type_oid);
  }
}

void format_text(const StatementEvent& ev, const SessionInfo& s, std::string& out, ParamLogging mode) {
  append_iso8601_utc(out, ev.start_ns);
  append_session(out, s);
  out += ' ';
  out += statement_kind_name(ev.kind);
  out += ' ';
  out += statement_outcome_name(ev.outcome);
  if (has_duration(ev)) {
    out += " duration_ms=";
    append_duration_ms(out, ev);
  }
  if (!ev.tag.empty()) append_field(out, "tag", ev.tag);
  if (ev.rows) {
    out += " rows=";
    append_int(out, *ev.rows);
  }
  if (!ev.sqlstate.empty()) append_field(out, "sqlstate", ev.sqlstate);
  // Also without a SQLSTATE: why an outcome is unknown (an undecodable response).
  if (!ev.sqlstate.empty() || !ev.error_message.empty()) append_field(out, "error", ev.error_message);
  if (ev.kind == StatementKind::kExecute && !ev.statement.empty()) append_field(out, "statement", ev.statement);
  if (!ev.params.empty() && mode != ParamLogging::kNone) {
    out += " params=(";
    LineTextBudget budget;
    for (size_t i = 0; i < ev.params.size(); ++i) {
      if (i) out += ", ";
      out += '$';
      append_int(out, i + 1);
      if (mode == ParamLogging::kFull) {
        out += '=';
        append_text_param(out, ev.params[i], budget);
      } else if (ev.params[i].type_oid != 0) {
        out += "::";
        append_int(out, ev.params[i].type_oid);
      }
    }
    out += ')';
  }
  if (ev.sql_truncated) out += " truncated";
  if (ev.sql_unknown) out += " sql_unknown";  // an Execute of a portal or statement not known: no text
  out += " sql: ";
  append_escaped(out, ev.sql);
  out += '\n';
}

void format_json(const StatementEvent& ev, const SessionInfo& s, std::string& out, ParamLogging mode) {
  JsonWriter j(out);
  j.begin_object();
  j.key("ts").string_by([&](std::string& o) { append_iso8601_utc(o, ev.start_ns); });
  j.field("session", s.session_id);
  j.field("client", s.client).field("user", s.user).field("database", s.database);
  j.field("application_name", s.application_name);
  j.field("kind", statement_kind_name(ev.kind));
  j.field("statement", ev.statement).field("portal", ev.portal);
  j.key("query");
  if (ev.sql_unknown) {
    j.null();  // an Execute of a portal or statement not known: no text
  } else {
    j.value(ev.sql);
  }
  j.key("query_truncated").boolean(ev.sql_truncated);
  j.key("fingerprint");  // of the text as logged (cut, when query_truncated)
  if (ev.sql_unknown) {
    j.null();
  } else {
    j.value(fingerprint_hex(statement_fingerprint(ev.sql)));
  }
  j.key("params");
  if (mode != ParamLogging::kFull) {
    j.null();  // not logged (--log-params); a SQL NULL is a null inside the array
    if (mode == ParamLogging::kNone) {
      j.key("param_formats").null().key("param_types").null().key("param_type_oids").null();
    }
  }
  if (mode == ParamLogging::kFull) j.begin_array();
  thread_local std::string text;
  LineTextBudget budget;
  static const std::vector<StatementParam> kNoParams;
  for (const StatementParam& p : mode == ParamLogging::kFull ? ev.params : kNoParams) {
    if (!p.value) {
      j.null();
    } else if (p.format == 1 && !binary_param_text(p, text, budget)) {
      j.string_by([&](std::string& o) {
        o += "\\\\x";
        o += to_hex(as_bytes(*p.value));
        append_cut_mark(o, p);
      });
    } else if (p.cut_size == 0) {
      j.value(p.format == 1 ? std::string_view(text) : std::string_view(*p.value));
    } else {
      j.string_by([&](std::string& o) {
        append_json_escaped(o, *p.value);
        append_cut_mark(o, p);
      });
    }
    release_if_big(text);
  }
  if (mode == ParamLogging::kFull) j.end_array();
  if (mode != ParamLogging::kNone) {
    j.key("param_formats").begin_array();
    for (const StatementParam& p : ev.params) j.value(p.format);
    // pg_type's name for the types the log knows, the OID in decimal for any
    // other, null when the client left the type to the server and it was not
    // described.
    j.end_array().key("param_types").begin_array();
    for (const StatementParam& p : ev.params) {
      if (const char* name = type_name(p.type_oid)) {
        j.value(std::string_view(name));
      } else if (p.type_oid != 0) {
        j.string_by([&](std::string& o) { append_int(o, p.type_oid); });
      } else {
        j.null();
      }
    }
    j.end_array().key("param_type_oids").begin_array();
    for (const StatementParam& p : ev.params) j.value(p.type_oid);
    j.end_array();
  }
  j.key("duration_ms");
  if (has_duration(ev)) {
    j.raw_by([&](std::string& o) { append_duration_ms(o, ev); });
  } else {
    j.null();
  }
  j.field("status", statement_outcome_name(ev.outcome));
  j.key("tag").string_or_null(ev.tag);
  j.key("rows").value_or_null(ev.rows);
  j.key("sqlstate").string_or_null(ev.sqlstate);
  j.key("error").string_or_null(ev.error_message);
  j.key("executed").boolean(ev.outcome != Outcome::kNotExecuted);
  j.end_object();
  out += '\n';
}

}  // namespace

void format_statement(LogFormat format, const StatementEvent& ev, const SessionInfo& session, std::string& out,
                      ParamLogging params) {
  if (format == LogFormat::kJson) {
    format_json(ev, session, out, params);
  } else if (format == LogFormat::kText) {
    format_text(ev, session, out, params);
  }
}

}  // namespace pgwire
