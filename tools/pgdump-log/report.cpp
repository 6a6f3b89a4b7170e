#include "report.hpp"

#include <fmt/format.h>

#include "pgwire/json.hpp"
#include "pgwire/normalize.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/statement_log.hpp"
#include "pgwire/text.hpp"

namespace pgdump {

using namespace pgwire;

namespace {

std::string host_of(std::string_view client) {
  // "127.0.0.1:5000" or "[::1]:5000"
  if (!client.empty() && client[0] == '[') {
    size_t end = client.find(']');
    return std::string(client.substr(1, end == std::string_view::npos ? client.size() - 1 : end - 1));
  }
  size_t colon = client.rfind(':');
  return std::string(client.substr(0, colon));
}

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

constexpr std::string_view kPlaintextBothLegs = "plaintext | plaintext";

// Examples are cut to this: the report stays small whatever the statements.
constexpr size_t kMaxExampleBytes = 2048;
constexpr size_t kMaxErrorMessageBytes = 1024;
// SQLSTATEs with an example; the counts of others are still exact.
constexpr size_t kMaxErrorExamples = 200;

// `s` cut to at most `max` bytes, never inside a UTF-8 sequence, with a mark.
std::string cut(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return fmt::format("{}...(cut, {} bytes in all)", s.substr(0, end), s.size());
}

std::string example_line(const StatementEvent& ev, const SessionInfo& s) {
  std::string line;
  format_statement(LogFormat::kText, ev, s, line);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return cut(line, kMaxExampleBytes);
}

}  // namespace

void Report::session_open(const SessionInfo& s, int64_t ts) {
  ++sessions_;
  if (examples_enabled_) timeline_.cover(ts);
  open_[s.session_id] = ts;
  if (first_ns_ == 0 || ts < first_ns_) first_ns_ = ts;
  last_ns_ = std::max(last_ns_, ts);
}

void Report::session_partial(const SessionInfo& s, int64_t ts) {
  ++partial_;
  // A writer repeats a session's SessionOpen in every file of a set: then it
  // was counted there, with its real start. Otherwise it is counted now, its
  // duration unknown.
  if (open_.count(s.session_id)) return;
  ++sessions_;
  if (first_ns_ == 0 || ts < first_ns_) first_ns_ = ts;
  last_ns_ = std::max(last_ns_, ts);
}

void Report::session_close(const SessionInfo& s, int64_t ts) {
  last_ns_ = std::max(last_ns_, ts);
  if (examples_enabled_) timeline_.cover(ts);
  int64_t duration = 0;
  if (auto it = open_.find(s.session_id); it != open_.end()) {
    duration = ts - it->second;
    open_.erase(it);
    session_durations_.record(duration);
  }
  auto count = [&](std::map<std::string, Group>& map, const std::string& key) {
    Group& g = map[key.empty() ? "(unknown)" : key];
    ++g.sessions;
    g.total_ns += duration;
  };
  count(by_user_, s.user);
  count(by_database_, s.database);
  count(by_client_, host_of(s.client));
  count(by_application_, s.application_name);
  // pgproxy records the TLS of each leg it used (before it had TLS, it had none).
  count(by_tls_, fmt::format("{} | {}", s.client_tls.empty() ? "plaintext" : s.client_tls,
                             s.server_tls.empty() || s.server_tls == "none" ? "plaintext" : s.server_tls));
}

void Report::frame(Direction dir, const Frame& f) {
  if (!f.first) return;
  std::string name;
  switch (f.kind) {
    case FrameKind::kStartup: {
      uint32_t code = f.startup_code();
      name = code == kSslRequestCode      ? "SSLRequest"
             : code == kGssEncRequestCode ? "GSSENCRequest"
             : code == kCancelRequestCode ? "CancelRequest"
                                          : "StartupMessage";
      break;
    }
    case FrameKind::kAnswer: name = "EncryptionAnswer"; break;
    case FrameKind::kOpaque: name = "Encrypted"; break;
    case FrameKind::kTyped:
      name = std::string(dir == Direction::kFrontend ? frontend_type_name(f.type) : backend_type_name(f.type));
      break;
  }
  ++(dir == Direction::kFrontend ? frontend_messages_ : backend_messages_)[name];
}

void Report::event(const StatementEvent& ev, const SessionInfo& s) {
  ++by_kind_[statement_kind_name(ev.kind)];
  ++by_outcome_[statement_outcome_name(ev.outcome)];
  if (!ev.sqlstate.empty()) {
    ++by_sqlstate_[ev.sqlstate];
    if (examples_enabled_) keep_error_example(ev, s);
  }
  int64_t duration = ev.end_ns != 0 && ev.end_ns >= ev.start_ns ? ev.end_ns - ev.start_ns : -1;
  if (ev.outcome != Outcome::kNotExecuted) {
    const bool error = ev.outcome == Outcome::kError;
    const StatementAggregate& a = statements_.add(ev.sql, duration, error, ev.rows.value_or(0));
    if (examples_enabled_) {
      timeline_.add(ev.start_ns, duration, error);
      keep_example(a, ev, s, duration);
    }
  }
}

void Report::keep_example(const StatementAggregate& a, const StatementEvent& ev, const SessionInfo& s,
                          int64_t duration) {
  if (a.fingerprint == 0) return;  // "<other>": many statements, no one example
  auto [it, added] = examples_.try_emplace(&a);
  if (!added && duration <= it->second.duration_ns) return;
  it->second.duration_ns = duration;
  it->second.line = example_line(ev, s);
}

void Report::keep_error_example(const StatementEvent& ev, const SessionInfo& s) {
  if (error_examples_.count(ev.sqlstate) || error_examples_.size() >= kMaxErrorExamples) return;
  ErrorExample& e = error_examples_[ev.sqlstate];
  e.message = cut(ev.error_message, kMaxErrorMessageBytes);
  e.line = example_line(ev, s);
}

namespace {
template <class... Args>
void put_line(std::string& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
  out += '\n';
}
}  // namespace

std::string Report::text(size_t top_n) const {
  std::string out;
  put_line(out, "Sessions: {}  (span {:.3f} s, median duration {:.3f} ms, max {:.3f} ms)", sessions_,
           static_cast<double>(last_ns_ - first_ns_) / 1e9, ms(session_durations_.percentile_ns(50)),
           ms(session_durations_.max_ns()));
  if (partial_ > 0) {
    put_line(out, "  partial: {}  (began before the capture data read: user, database and startup unknown)", partial_);
  }
  for (auto [title, map] : {std::pair{"user", &by_user_}, std::pair{"database", &by_database_},
                            std::pair{"client", &by_client_}, std::pair{"TLS (client leg | server leg)", &by_tls_}}) {
    // Without TLS anywhere the TLS lines say nothing; JSON has them always.
    if (map == &by_tls_ && by_tls_.size() == 1 && by_tls_.begin()->first == kPlaintextBothLegs) continue;
    put_line(out, "  by {}:", title);
    size_t width = 30;
    for (const auto& [k, g] : *map) width = std::max(width, k.size());
    for (const auto& [k, g] : *map)
      put_line(out, "    {:<{}} {:>8} sessions  {:>12.3f} s", k, width, g.sessions, g.total_ns / 1e9);
  }
  out += '\n';
  put_line(out, "Messages:");
  for (auto [title, map] : {std::pair{"frontend", &frontend_messages_}, std::pair{"backend", &backend_messages_}}) {
    put_line(out, "  {}:", title);
    for (const auto& [k, n] : *map) put_line(out, "    {:<28} {:>10}", k, n);
  }
  out += '\n';
  put_line(out, "Statements:");
  put_line(out, "  by kind:");
  for (const auto& [k, n] : by_kind_) put_line(out, "    {:<26} {:>10}", k, n);
  put_line(out, "  by outcome:");
  for (const auto& [k, n] : by_outcome_) put_line(out, "    {:<26} {:>10}", k, n);
  out += '\n';
  put_line(out, "Errors by SQLSTATE:");
  if (by_sqlstate_.empty()) put_line(out, "  none");
  for (const auto& [k, n] : by_sqlstate_) put_line(out, "  {:<28} {:>10}", k, n);
  out += '\n';
  const LatencyHistogram& all = statements_.overall();
  if (all.count() > 0) {
    put_line(out, "Latency (ms), {} statements with a known duration: p50 {:.3f}  p95 {:.3f}  p99 {:.3f}  max {:.3f}",
             all.count(), ms(all.percentile_ns(50)), ms(all.percentile_ns(95)), ms(all.percentile_ns(99)),
             ms(all.max_ns()));
  } else {
    put_line(out, "Latency: unknown (no backend frames in the capture)");
  }
  out += '\n';
  put_line(out, "Top {} statements by count:", top_n);
  put_line(out, "  {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}  {}", "count", "errors", "p50 ms", "p95 ms", "p99 ms",
           "max ms", "statement");
  auto row = [&](const StatementAggregate* a) {
    const LatencyHistogram& h = a->latency;
    if (h.count() > 0) {
      put_line(out, "  {:>10} {:>8} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f}  {}", a->count, a->errors,
               ms(h.percentile_ns(50)), ms(h.percentile_ns(95)), ms(h.percentile_ns(99)), ms(h.max_ns()), a->text);
    } else {
      put_line(out, "  {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}  {}", a->count, a->errors, "-", "-", "-", "-", a->text);
    }
  };
  for (const StatementAggregate* a : statements_.top_by_count(top_n)) row(a);
  out += '\n';
  put_line(out, "Top {} statements by total time:", top_n);
  put_line(out, "  {:>12} {:>10} {:>10}  {}", "total ms", "count", "mean ms", "statement");
  for (const StatementAggregate* a : statements_.top_by_time(top_n)) {
    const LatencyHistogram& h = a->latency;
    if (h.count() == 0) continue;
    put_line(out, "  {:>12.3f} {:>10} {:>10.3f}  {}", ms(h.sum_ns()), a->count,
             ms(h.sum_ns()) / static_cast<double>(h.count()), a->text);
  }
  return out;
}

std::string Report::json(size_t top_n) const {
  std::string out;
  JsonWriter j(out);
  auto counts = [&](const std::map<std::string, uint64_t>& m) {
    j.begin_object();
    for (const auto& [k, n] : m) j.field(k, n);
    j.end_object();
  };
  auto groups = [&](const std::map<std::string, Group>& m) {
    j.begin_object();
    for (const auto& [k, g] : m) {
      j.key(k).begin_object().field("sessions", g.sessions).key("total_s").fixed(g.total_ns / 1e9, 6).end_object();
    }
    j.end_object();
  };
  auto hist = [&](const LatencyHistogram& h) {
    if (h.count() == 0) {
      j.null();
      return;
    }
    j.begin_object().field("count", h.count());
    j.key("p50_ms").fixed(ms(h.percentile_ns(50)), 3).key("p95_ms").fixed(ms(h.percentile_ns(95)), 3);
    j.key("p99_ms").fixed(ms(h.percentile_ns(99)), 3).key("max_ms").fixed(ms(h.max_ns()), 3);
    j.key("total_ms").fixed(ms(h.sum_ns()), 3).end_object();
  };
  auto list = [&](const std::vector<const StatementAggregate*>& v) {
    j.begin_array();
    for (const StatementAggregate* a : v) {
      j.begin_object().field("statement", a->text).key("fingerprint");
      if (a->fingerprint != 0) {
        j.value(pgwire::fingerprint_hex(a->fingerprint));
      } else {
        j.null();  // "<other>": many statements
      }
      j.field("count", a->count).field("errors", a->errors);
      j.field("rows", a->rows).key("latency");
      hist(a->latency);
      j.end_object();
    }
    j.end_array();
  };
  j.begin_object();
  j.key("sessions")
      .begin_object()
      .field("count", sessions_)
      .field("partial", partial_)
      .key("span_s")
      .fixed((last_ns_ - first_ns_) / 1e9, 6);
  j.key("duration");
  hist(session_durations_);
  j.key("by_user");
  groups(by_user_);
  j.key("by_database");
  groups(by_database_);
  j.key("by_client");
  groups(by_client_);
  j.key("by_tls");
  groups(by_tls_);
  j.end_object();
  j.key("messages").begin_object().key("frontend");
  counts(frontend_messages_);
  j.key("backend");
  counts(backend_messages_);
  j.end_object();
  j.key("statements").begin_object().key("by_kind");
  counts(by_kind_);
  j.key("by_outcome");
  counts(by_outcome_);
  j.key("latency");
  hist(statements_.overall());
  j.end_object();
  j.key("errors_by_sqlstate");
  counts(by_sqlstate_);
  j.key("top_by_count");
  list(statements_.top_by_count(top_n));
  j.key("top_by_time");
  list(statements_.top_by_time(top_n));
  j.end_object();
  out += '\n';
  return out;
}

}  // namespace pgdump
