#include "pgwire/tracker.hpp"

#include <gtest/gtest.h>

#include "pgwire/session_monitor.hpp"
#include "pgwire/statement_log.hpp"
#include "wire_builder.hpp"

namespace pgwire {
namespace {

using test::W;
using test::Wire;

// Drives a tracker with whole streams per step, in the order given.
class TrackerHarness {
 public:
  explicit TrackerHarness(TrackerOptions opts = {}, FramerOptions framing = {})
      : framer_(framing),
        tracker_(opts, [this](const StatementEvent& ev, const SessionInfo&) { events.push_back(ev); }) {}

  void send(Direction dir, const Wire& w, int64_t ts = 0, size_t chunk = 0) {
    const auto& b = w.bytes();
    if (chunk == 0) chunk = b.size();
    for (size_t pos = 0; pos < b.size(); pos += chunk) {
      Bytes in{b.data() + pos, std::min(chunk, b.size() - pos)};
      for (;;) {
        FrameResult r = framer_.next(dir, in);
        ASSERT_FALSE(r.failed()) << r.error().describe();
        if (r.needs_more()) break;
        tracker_.on_frame(dir, r.frame(), ts);
      }
    }
  }
  void fe(const Wire& w, int64_t ts = 0) { send(Direction::kFrontend, w, ts); }
  void be(const Wire& w, int64_t ts = 0) { send(Direction::kBackend, w, ts); }
  // Backend bytes in chunks of `chunk`: a frame larger than the framer keeps
  // whole reaches the tracker in pieces of at most that size.
  void be_chunked(const Wire& w, size_t chunk, int64_t ts = 0) { send(Direction::kBackend, w, ts, chunk); }
  // The text SQL log line of event i.
  std::string line(size_t i) const {
    std::string out;
    format_statement(LogFormat::kText, events.at(i), tracker_.session(), out);
    return out;
  }

  ConnectionTracker& tracker() { return tracker_; }
  std::vector<StatementEvent> events;

 private:
  ConnectionFramer framer_;
  ConnectionTracker tracker_;
};

Wire ready(char status = 'I') { return W().msg('Z', W().byte(static_cast<uint8_t>(status))); }
Wire complete(std::string_view tag) { return W().msg('C', W().str(tag)); }
Wire error(std::string_view sqlstate, std::string_view message) {
  return W().msg(
      'E', W().byte('S').str("ERROR").byte('V').str("ERROR").byte('C').str(sqlstate).byte('M').str(message).byte(0));
}
Wire int_row_description() { return W().msg('T', W().i16(1).str("x").i32(0).i16(0).i32(23).i16(4).i32(-1).i16(0)); }
Wire data_row(std::string_view v) { return W().msg('D', W().i16(1).value(v)); }
Wire parse(std::string_view name, std::string_view sql, std::initializer_list<int> oids = {}) {
  Wire body = W().str(name).str(sql).i16(static_cast<int>(oids.size()));
  for (int o : oids) body.i32(o);
  return W().msg('P', body);
}
Wire bind_text(std::string_view portal, std::string_view stmt, std::initializer_list<std::string_view> values) {
  Wire body = W().str(portal).str(stmt).i16(0).i16(static_cast<int>(values.size()));
  for (auto v : values) body.value(v);
  body.i16(0);
  return W().msg('B', body);
}
Wire execute(std::string_view portal = "", int max_rows = 0) { return W().msg('E', W().str(portal).i32(max_rows)); }
Wire sync() { return W().msg('S', W()); }
// An ErrorResponse with the given fields, in this order, and its terminating zero byte.
Wire error_fields(std::initializer_list<std::pair<char, std::string_view>> fields) {
  Wire body;
  for (auto [code, value] : fields) body.byte(static_cast<uint8_t>(code)).str(value);
  return W().msg('E', body.byte(0));
}
Wire describe_portal(std::string_view portal = "") { return W().msg('D', W().byte('P').str(portal)); }

void login(TrackerHarness& h) {
  h.fe(W().startup({{"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}}));
  h.be(W().msg('R', W().i32(0))
           .msg('S', W().str("server_version").str("15.18"))
           .msg('K', W().i32(4242).raw("\x01\x02\x03\x04"))
           .append(ready()));
}

TEST(Tracker, StartupParametersAndBackendKey) {
  TrackerHarness h;
  login(h);
  const SessionInfo& s = h.tracker().session();
  EXPECT_EQ(s.user, "alice");
  EXPECT_EQ(s.database, "shop");
  EXPECT_EQ(s.application_name, "psql");
  EXPECT_EQ(s.protocol, 196608u);
  EXPECT_EQ(s.backend_pid, 4242);
  EXPECT_EQ(s.cancel_key.size(), 4u);
  EXPECT_TRUE(s.authenticated);
  EXPECT_EQ(s.auth_method, "trust");
  EXPECT_TRUE(h.events.empty());
}

TEST(Tracker, MultiStatementQueryIsOneEvent) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1; SELECT 2")), 1000);
  h.be(W().append(int_row_description())
           .append(data_row("1"))
           .append(complete("SELECT 1"))
           .append(int_row_description())
           .append(data_row("2"))
           .append(complete("SELECT 1"))
           .append(ready()),
       5000);
  ASSERT_EQ(h.events.size(), 1u);
  const StatementEvent& ev = h.events[0];
  EXPECT_EQ(ev.kind, StatementKind::kQuery);
  EXPECT_EQ(ev.sql, "SELECT 1; SELECT 2");
  EXPECT_EQ(ev.outcome, Outcome::kOk);
  EXPECT_EQ(ev.tag, "SELECT 1");
  EXPECT_EQ(ev.rows, 2u);
  EXPECT_EQ(ev.start_ns, 1000);
  EXPECT_EQ(ev.end_ns, 5000);
}

TEST(Tracker, QueryErrorStopsTheStringAndReportsSqlstate) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT * FROM missing; SELECT 2")));
  h.be(W().append(error("42P01", "relation \"missing\" does not exist")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kError);
  EXPECT_EQ(h.events[0].sqlstate, "42P01");
  EXPECT_EQ(h.events[0].error_message, "relation \"missing\" does not exist");
}

TEST(Tracker, ExtendedResolvesSqlThroughPortalAndStatement) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("s1", "SELECT $1::int", {23}))
           .append(bind_text("", "s1", {"42"}))
           .append(W().msg('D', W().byte('P').str("")))
           .append(execute())
           .append(sync()));
  h.be(W().msg('1', W())
           .msg('2', W())
           .append(int_row_description())
           .append(data_row("42"))
           .append(complete("SELECT 1"))
           .append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  const StatementEvent& ev = h.events[0];
  EXPECT_EQ(ev.kind, StatementKind::kExecute);
  EXPECT_EQ(ev.sql, "SELECT $1::int");
  EXPECT_EQ(ev.statement, "s1");
  ASSERT_EQ(ev.params.size(), 1u);
  EXPECT_EQ(ev.params[0].value, "42");
  EXPECT_EQ(ev.params[0].type_oid, 23u);
  EXPECT_EQ(ev.tag, "SELECT 1");
  EXPECT_EQ(ev.rows, 1u);
  EXPECT_EQ(ev.outcome, Outcome::kOk);
}

TEST(Tracker, PipelinedBatchWithErrorSkipsToSync) {
  TrackerHarness h;
  login(h);
  // Batch 1: three statements, the second fails; batch 2 after its own Sync.
  h.fe(W().append(parse("", "INSERT INTO t VALUES (1)"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(parse("", "SELECT 1/0"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(parse("", "INSERT INTO t VALUES (3)"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync())
           .append(parse("", "SELECT 4"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync()));
  h.be(W().msg('1', W())
           .msg('2', W())
           .append(complete("INSERT 0 1"))
           .msg('1', W())
           .msg('2', W())
           .append(error("22012", "division by zero"))
           .append(ready('E'))
           .msg('1', W())
           .msg('2', W())
           .append(data_row("4"))
           .append(complete("SELECT 1"))
           .append(ready()));
  ASSERT_EQ(h.events.size(), 4u);
  EXPECT_EQ(h.events[0].sql, "INSERT INTO t VALUES (1)");
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[1].sql, "SELECT 1/0");
  EXPECT_EQ(h.events[1].outcome, Outcome::kError);
  EXPECT_EQ(h.events[1].sqlstate, "22012");
  EXPECT_EQ(h.events[1].failed_step, FailedStep::kExecute);
  EXPECT_EQ(h.events[2].sql, "INSERT INTO t VALUES (3)");
  EXPECT_EQ(h.events[2].outcome, Outcome::kNotExecuted);
  EXPECT_EQ(h.events[3].sql, "SELECT 4");
  EXPECT_EQ(h.events[3].outcome, Outcome::kOk);
}

// The step an Execute's error answered: its own Execute (the pipelined batch
// above), its Parse (a syntax error), or its Bind (a constant folded when
// the statement is planned); a recycled request starts from kExecute again.
TEST(Tracker, FailedStepSaysWhichStepTheErrorAnswered) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "selec 1")).append(bind_text("", "", {})).append(execute()).append(sync()));
  h.be(W().append(error("42601", "syntax error at or near \"selec\"")).append(ready()));
  h.fe(W().append(parse("", "SELECT 1/($1 - 1)")).append(bind_text("", "", {"1"})).append(execute()).append(sync()));
  h.be(W().msg('1', W()).append(error("22012", "division by zero")).append(ready()));
  h.fe(W().append(parse("", "SELECT 1/0")).append(bind_text("", "", {})).append(execute()).append(sync()));
  h.be(W().msg('1', W()).msg('2', W()).append(error("22012", "division by zero")).append(ready()));
  ASSERT_EQ(h.events.size(), 3u);
  for (const StatementEvent& ev : h.events) EXPECT_EQ(ev.outcome, Outcome::kError);
  EXPECT_EQ(h.events[0].failed_step, FailedStep::kParse);
  EXPECT_EQ(h.events[1].failed_step, FailedStep::kBind);
  EXPECT_EQ(h.events[2].failed_step, FailedStep::kExecute);
}

TEST(Tracker, ErrorBeforeTheClientSentSyncDiscardsLaterMessages) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1/0"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(W().msg('H', W())));  // Flush, no Sync yet
  h.be(W().msg('1', W()).msg('2', W()).append(error("22012", "division by zero")));
  h.fe(W().append(parse("", "SELECT 2")).append(bind_text("", "", {})).append(execute()).append(sync()));
  h.be(ready('I'));
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kError);
  EXPECT_EQ(h.events[1].sql, "SELECT 2");
  EXPECT_EQ(h.events[1].outcome, Outcome::kNotExecuted);
}

TEST(Tracker, PortalSuspendedThenResumed) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT generate_series(1,3)"))
           .append(bind_text("c1", "", {}))
           .append(execute("c1", 2))
           .append(execute("c1", 2))
           .append(sync()));
  h.be(W().msg('1', W())
           .msg('2', W())
           .append(data_row("1"))
           .append(data_row("2"))
           .msg('s', W())
           .append(data_row("3"))
           .append(complete("SELECT 1"))
           .append(ready()));
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].tag, "SUSPENDED");
  EXPECT_EQ(h.events[0].rows, 2u);
  EXPECT_EQ(h.events[1].tag, "SELECT 1");
}

TEST(Tracker, CopyFromStdinInSimpleQuery) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("COPY t FROM STDIN")));
  h.be(W().msg('G', W().byte(0).i16(1).i16(0)));
  h.fe(W().msg('d', W().raw("1\n2\n")).msg('c', W()));
  h.be(W().append(complete("COPY 2")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].tag, "COPY 2");
  EXPECT_EQ(h.events[0].rows, 2u);
}

TEST(Tracker, AsynchronousMessagesDoNotDisturbMatching) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SET application_name = 'x'")));
  h.be(W().msg('N', W().byte('S').str("NOTICE").byte('C').str("00000").byte('M').str("hi").byte(0))
           .msg('S', W().str("application_name").str("x"))
           .msg('A', W().i32(7).str("chan").str("payload"))
           .append(complete("SET"))
           .append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].tag, "SET");
  EXPECT_FALSE(h.events[0].rows);
  EXPECT_EQ(h.tracker().session().application_name, "x");
}

TEST(Tracker, ConnectionEndingMidRequestGivesUnknown) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT pg_sleep(10)")));
  h.tracker().on_close(99);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
}

TEST(Tracker, FrontendOnlyEmitsAtRequestTime) {
  TrackerOptions opts;
  opts.frontend_only = true;
  TrackerHarness h(opts);
  h.fe(W().startup({{"user", "bob"}}));
  h.fe(W().msg('Q', W().str("SELECT 1"))
           .append(parse("", "SELECT $1"))
           .append(bind_text("", "", {"7"}))
           .append(execute())
           .append(sync()));
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[1].sql, "SELECT $1");
  EXPECT_EQ(h.events[1].params[0].value, "7");
  EXPECT_EQ(h.tracker().session().database, "bob");
}

TEST(Tracker, FunctionCallCompletesAtReadyForQuery) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('F', W().i32(1598).i16(0).i16(1).value("abc").i16(0)));
  h.be(W().msg('V', W().value("900150983cd24fb0d6963f7d28e17f72")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].kind, StatementKind::kFunctionCall);
  EXPECT_EQ(h.events[0].function_oid, 1598u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[0].params.at(0).value, "abc");
}

TEST(Tracker, DescribeFillsUnspecifiedParameterTypes) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("q", "SELECT $1")).append(W().msg('D', W().byte('S').str("q"))).append(sync()));
  h.be(W().msg('1', W()).msg('t', W().i16(1).i32(25)).append(int_row_description()).append(ready()));
  h.fe(W().append(bind_text("", "q", {"hello"})).append(execute()).append(sync()));
  h.be(W().msg('2', W()).append(data_row("hello")).append(complete("SELECT 1")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].params.at(0).type_oid, 25u);
}

TEST(Tracker, ScramLoginRecognisesSaslMessagesAndKeepsNoSecret) {
  TrackerHarness h;
  h.fe(W().startup({{"user", "carol"}}));
  h.be(W().msg('R', W().i32(10).str("SCRAM-SHA-256").byte(0)));
  EXPECT_EQ(h.tracker().password_kind(), PasswordKind::kSaslInitial);
  h.fe(W().msg('p', W().str("SCRAM-SHA-256").value("n,,n=,r=abc")));
  h.be(W().msg('R', W().i32(11).raw("r=abcdef,s=c2FsdA==,i=4096")));
  EXPECT_EQ(h.tracker().password_kind(), PasswordKind::kSasl);
  h.fe(W().msg('p', W().raw("c=biws,r=abcdef,p=proof")));
  h.be(W().msg('R', W().i32(12).raw("v=sig")).msg('R', W().i32(0)).append(ready()));
  EXPECT_EQ(h.tracker().session().auth_method, "SCRAM-SHA-256");
  EXPECT_TRUE(h.tracker().session().authenticated);
  EXPECT_EQ(h.tracker().stats().decode_errors, 0u);
}

TEST(Tracker, HugeQueryIsCutAndFlagged) {
  TrackerOptions opts;
  opts.max_sql_bytes = 100;
  TrackerHarness h(opts);
  login(h);
  std::string sql = "SELECT '" + std::string(3 << 20, 'a') + "'";
  h.send(Direction::kFrontend, W().msg('Q', W().str(sql)), 0, 65536);
  h.be(W().append(complete("SELECT 1")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_TRUE(h.events[0].sql_truncated);
  EXPECT_EQ(h.events[0].sql.size(), 100u);
  EXPECT_EQ(h.events[0].sql.substr(0, 9), "SELECT 'a");
}

TEST(Tracker, RowsDigestDependsOnRowsNotOnChunking) {
  TrackerOptions opts;
  opts.digest_rows = true;
  auto run = [&](std::string_view a, std::string_view b, size_t chunk) {
    TrackerHarness h(opts);
    login(h);
    h.fe(W().msg('Q', W().str("SELECT x FROM t")));
    h.send(Direction::kBackend,
           W().append(int_row_description())
               .append(data_row(a))
               .append(data_row(b))
               .append(complete("SELECT 2"))
               .append(ready()),
           0, chunk);
    EXPECT_EQ(h.events.size(), 1u);
    return h.events.empty() ? 0 : h.events[0].rows_digest;
  };
  uint64_t d = run("1", "2", 0);
  EXPECT_NE(d, 0u);
  EXPECT_EQ(run("1", "2", 3), d);
  EXPECT_NE(run("1", "3", 0), d);
  EXPECT_NE(run("12", "", 0), d);  // row boundaries count
}

TEST(SessionMonitor, LocalAnswerToSslRequestLeavesBothDirectionsFraming) {
  std::vector<StatementEvent> events;
  SessionMonitor m(TrackerOptions{}, [&](const StatementEvent& ev, const SessionInfo&) { events.push_back(ev); });
  Wire ssl = W().i32(8).i32(80877103);
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{ssl.bytes()}, 0).ok());
  ASSERT_TRUE(m.answer_locally('N', 0).has_frame());  // a proxy refusing TLS itself; the server never sees it
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{W().startup({{"user", "u"}}).bytes()}, 0).ok());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{W().msg('R', W().i32(0)).append(ready()).bytes()}, 0).ok());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{W().msg('Q', W().str("SELECT 1")).bytes()}, 0).ok());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{W().append(complete("SELECT 1")).append(ready()).bytes()}, 0).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome, Outcome::kOk);
  EXPECT_EQ(m.tracker().session().user, "u");
}

// ---- unknown outcomes have no duration ----------------------------------------

TEST(Tracker, UnknownOutcomeHasNoDuration) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1")).append(bind_text("", "", {})).append(execute()).append(sync()), 1000);
  // ReadyForQuery with the Execute never answered: it is settled as unknown.
  h.be(W().msg('1', W()).msg('2', W()).append(ready()), 9000000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.line(0).find("duration_ms"), std::string::npos) << h.line(0);
  std::string json;
  format_statement(LogFormat::kJson, h.events[0], h.tracker().session(), json);
  EXPECT_NE(json.find("\"duration_ms\":null,\"status\":\"unknown\""), std::string::npos) << json;
}

TEST(Tracker, FailedQueryCutShortByTheConnectionKeepsItsError) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")), 1000);
  h.be(error_fields({{'S', "FATAL"}, {'C', "57P01"}, {'M', "terminating connection"}}), 2000);
  h.tracker().on_close(3000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kError);
  EXPECT_EQ(h.events[0].sqlstate, "57P01");
  EXPECT_EQ(h.events[0].end_ns, 3000);
}

// ---- bounded statements and portals -------------------------------------------

TEST(TrackerStatements, EvictionForgetsTheLeastRecentlyUsedNeverTheUnnamed) {
  TrackerOptions opts;
  opts.max_statements = 2;
  TrackerHarness h(opts);
  login(h);
  h.fe(W().append(parse("", "SELECT 'unnamed'"))
           .append(parse("s1", "SELECT 1"))
           .append(parse("s2", "SELECT 2"))
           .append(bind_text("", "s1", {}))  // s1 used after s2: s2 is now the least recently used
           .append(parse("s3", "SELECT 3"))  // one named too many: s2 goes
           .append(sync()));
  EXPECT_EQ(h.tracker().stats().statements_evicted, 1u);
  for (std::string_view st : {"", "s1", "s2", "s3"}) {
    h.fe(W().append(bind_text("", st, {})).append(execute()).append(sync()));
  }
  ASSERT_EQ(h.events.size(), 0u);  // nothing answered yet
  h.be(W().msg('1', W()).msg('1', W()).msg('1', W()).msg('2', W()).msg('1', W()).append(ready()));
  for (int i = 0; i < 4; ++i) h.be(W().msg('2', W()).append(complete("SELECT 1")).append(ready()));
  ASSERT_EQ(h.events.size(), 4u);
  EXPECT_EQ(h.events[0].sql, "SELECT 'unnamed'");
  EXPECT_FALSE(h.events[0].sql_unknown);
  EXPECT_EQ(h.events[1].sql, "SELECT 1");
  EXPECT_EQ(h.events[2].statement, "s2");
  EXPECT_TRUE(h.events[2].sql_unknown);
  EXPECT_EQ(h.events[2].sql, "");
  EXPECT_EQ(h.events[3].sql, "SELECT 3");
  EXPECT_FALSE(h.events[3].sql_unknown);
  // The log says the text is not known rather than showing an empty statement.
  EXPECT_NE(h.line(2).find(" statement=s2 sql_unknown sql: \n"), std::string::npos) << h.line(2);
  std::string json;
  format_statement(LogFormat::kJson, h.events[2], h.tracker().session(), json);
  EXPECT_NE(json.find("\"statement\":\"s2\",\"portal\":\"\",\"query\":null,"), std::string::npos) << json;
}

TEST(TrackerStatements, DescribeCountsAsAUse) {
  TrackerOptions opts;
  opts.max_statements = 2;
  TrackerHarness h(opts);
  login(h);
  h.fe(W().append(parse("s1", "SELECT 1"))
           .append(parse("s2", "SELECT 2"))
           .append(W().msg('D', W().byte('S').str("s1")))
           .append(parse("s3", "SELECT 3"))  // s2 goes, not the described s1
           .append(bind_text("", "s1", {}))
           .append(execute())
           .append(bind_text("", "s2", {}))
           .append(execute())
           .append(sync()));
  h.be(W().msg('1', W())
           .msg('1', W())
           .msg('t', W().i16(0))
           .msg('n', W())
           .msg('1', W())
           .msg('2', W())
           .append(complete("SELECT 1"))
           .msg('2', W())
           .append(complete("SELECT 1"))
           .append(ready()));
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].sql, "SELECT 1");
  EXPECT_TRUE(h.events[1].sql_unknown);
  EXPECT_EQ(h.tracker().stats().statements_evicted, 1u);
}

TEST(TrackerStatements, ManyNamedStatementsStayBounded) {
  TrackerOptions opts;
  opts.max_statements = 3;
  TrackerHarness h(opts);
  login(h);
  Wire batch;
  for (int i = 0; i < 100; ++i) batch.append(parse("s" + std::to_string(i), "SELECT " + std::to_string(i)));
  h.fe(batch.append(bind_text("", "s99", {})).append(execute()).append(bind_text("", "s96", {})).append(execute()));
  EXPECT_EQ(h.tracker().stats().statements_evicted, 97u);
  h.tracker().on_close(0);
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].sql, "SELECT 99");
  EXPECT_TRUE(h.events[1].sql_unknown);
}

TEST(TrackerStatements, ClosedStatementIsNoLongerCounted) {
  TrackerOptions opts;
  opts.max_statements = 2;
  TrackerHarness h(opts);
  login(h);
  h.fe(W().append(parse("s1", "SELECT 1"))
           .append(W().msg('C', W().byte('S').str("s1")))
           .append(parse("s2", "SELECT 2"))
           .append(parse("s3", "SELECT 3")));
  EXPECT_EQ(h.tracker().stats().statements_evicted, 0u);
}

TEST(TrackerPortals, NamedPortalsAreBoundedLeastRecentlyUsedFirst) {
  TrackerOptions opts;
  opts.max_portals = 2;
  TrackerHarness h(opts);
  login(h);
  h.fe(W().append(parse("", "SELECT generate_series(1, 10)"))
           .append(bind_text("", "", {}))
           .append(bind_text("c1", "", {}))
           .append(bind_text("c2", "", {}))
           .append(execute("c1", 1))         // c1 used: c2 is the least recently used
           .append(bind_text("c3", "", {}))  // one named portal too many: c2 goes
           .append(execute("c1", 1))
           .append(execute("c2", 1))
           .append(execute("c3", 1))
           .append(execute("", 1))
           .append(sync()));
  EXPECT_EQ(h.tracker().stats().portals_evicted, 1u);
  h.tracker().on_close(0);
  ASSERT_EQ(h.events.size(), 5u);
  EXPECT_EQ(h.events[0].portal, "c1");
  EXPECT_EQ(h.events[0].sql, "SELECT generate_series(1, 10)");
  EXPECT_EQ(h.events[1].portal, "c1");
  EXPECT_FALSE(h.events[1].sql_unknown);
  EXPECT_EQ(h.events[2].portal, "c2");
  EXPECT_TRUE(h.events[2].sql_unknown);
  EXPECT_EQ(h.events[2].sql, "");
  EXPECT_EQ(h.events[3].portal, "c3");
  EXPECT_FALSE(h.events[3].sql_unknown);
  EXPECT_EQ(h.events[4].portal, "");
  EXPECT_EQ(h.events[4].sql, "SELECT generate_series(1, 10)");
}

TEST(TrackerPortals, ExecuteOfAPortalNeverBoundSaysTheSqlIsUnknown) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(execute("nowhere")).append(sync()));
  h.be(error_fields({{'S', "ERROR"}, {'C', "34000"}, {'M', "portal \"nowhere\" does not exist"}}).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_TRUE(h.events[0].sql_unknown);
  EXPECT_NE(h.line(0).find(" sql_unknown sql: \n"), std::string::npos) << h.line(0);
}

// ---- backend messages of any size, and ones that do not decode -------------

// What PostgreSQL answers to SELECT repeat('x', 2000000)::int: the bad input
// is echoed in the message, 2 MB of it.
const std::string& bad_integer_message() {
  static const std::string m = "invalid input syntax for type integer: \"" + std::string(2000000, 'x') + "\"";
  return m;
}
Wire bad_integer_error() {
  return error_fields({{'S', "ERROR"},
                       {'V', "ERROR"},
                       {'C', "22P02"},
                       {'M', bad_integer_message()},
                       {'F', "numutils.c"},
                       {'L', "232"},
                       {'R', "pg_strtoint32_safe"}});
}
// The first 4096 bytes (TrackerOptions::max_error_bytes) and the documented mark of the cut.
std::string cut_message(const std::string& m, size_t keep = 4096) {
  return m.substr(0, keep) + "...(cut, " + std::to_string(m.size()) + " bytes in all)";
}

TEST(TrackerLargeBackend, HugeErrorResponseFailsTheQuery) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT repeat('x', 2000000)::int")), 1000);
  h.be_chunked(W().append(bad_integer_error()).append(ready()), 65536, 5000);
  ASSERT_EQ(h.events.size(), 1u);
  const StatementEvent& ev = h.events[0];
  EXPECT_EQ(ev.outcome, Outcome::kError);
  EXPECT_EQ(ev.sqlstate, "22P02");
  EXPECT_EQ(ev.error_message, cut_message(bad_integer_message()));
  EXPECT_EQ(ev.end_ns, 5000);
  EXPECT_EQ(h.tracker().stats().decode_errors, 0u);
  std::string line = h.line(0);
  EXPECT_NE(line.find(" query error duration_ms=0.004 sqlstate=22P02 error=\"invalid input syntax for type integer: "
                      "\\\"xxx"),
            std::string::npos)
      << line.substr(0, 300);
  EXPECT_LT(line.size(), 4096u + 300u);
}

TEST(TrackerLargeBackend, HugeErrorResponseAtBindFailsTheExecute) {
  // Extended protocol: the cast is folded when the statement is planned, at Bind.
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT repeat('x', 2000000)::int"))
           .append(bind_text("", "", {}))
           .append(describe_portal())
           .append(execute())
           .append(sync()),
       1000);
  h.be_chunked(W().msg('1', W()).append(bad_integer_error()).append(ready()), 100000, 5000);
  // The next batch is matched as usual.
  h.fe(W().append(parse("", "SELECT 1")).append(bind_text("", "", {})).append(execute()).append(sync()), 6000);
  h.be(W().msg('1', W()).msg('2', W()).append(data_row("1")).append(complete("SELECT 1")).append(ready()), 7000);
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].kind, StatementKind::kExecute);
  EXPECT_EQ(h.events[0].outcome, Outcome::kError);
  EXPECT_EQ(h.events[0].sqlstate, "22P02");
  EXPECT_EQ(h.events[0].error_message, cut_message(bad_integer_message()));
  EXPECT_EQ(h.events[0].end_ns, 5000);
  EXPECT_EQ(h.events[1].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[1].rows, 1u);
}

TEST(TrackerLargeBackend, ErrorFieldsInAnyOrderAndAnyPieces) {
  // Message first, then fields the tracker skips (one of them large), the
  // SQLSTATE last but one, severity last; cut into pieces at every kind of
  // place (inside a code byte's neighbourhood, inside strings, at NULs).
  const std::string message = "syntax error at or near \"" + std::string(30000, 'q') + "\"";
  const std::string query(20000, 'w');
  Wire err = error_fields({{'M', message}, {'q', query}, {'P', "8"}, {'C', "42601"}, {'V', "ERROR"}, {'S', "ERROR"}});
  uint64_t frames = 0;
  auto run = [&](FramerOptions framing, size_t chunk) {
    TrackerHarness h({}, framing);
    login(h);
    h.fe(W().msg('Q', W().str("SELEC 1")), 1);
    uint64_t before = h.tracker().stats().backend_frames;
    h.be_chunked(W().append(err).append(ready()), chunk, 2);
    frames = h.tracker().stats().backend_frames - before;
    EXPECT_EQ(h.events.size(), 1u);
    EXPECT_EQ(h.tracker().stats().decode_errors, 0u);
    return h.events.empty() ? StatementEvent{} : h.events[0];
  };
  StatementEvent whole = run({}, 0);  // 50 kB: whole under the default framer
  EXPECT_EQ(frames, 2u);
  EXPECT_EQ(whole.outcome, Outcome::kError);
  EXPECT_EQ(whole.sqlstate, "42601");
  EXPECT_EQ(whole.error_message, cut_message(message));
  for (size_t chunk : {1, 7, 4096, 30000}) {
    StatementEvent pieces = run(FramerOptions{10000}, chunk);
    EXPECT_GT(frames, 2u) << chunk;  // the ErrorResponse came in pieces
    EXPECT_EQ(pieces.outcome, Outcome::kError) << chunk;
    EXPECT_EQ(pieces.sqlstate, "42601") << chunk;
    EXPECT_EQ(pieces.error_message, whole.error_message) << chunk;
  }
}

TEST(TrackerLargeBackend, ErrorMessageIsCutAtACharacterBoundary) {
  TrackerOptions opts;
  opts.max_error_bytes = 10;
  TrackerHarness h(opts);
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")));
  // "123456789é..." : the 10-byte cut falls inside the two bytes of 'é'.
  h.be(W().append(error("XX000", "123456789\xc3\xa9 and more")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].error_message, "123456789...(cut, 20 bytes in all)");
}

TEST(TrackerUndecodable, ErrorResponseLastFieldWithoutTerminatorIsUnknownNotOk) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")), 1000);
  // S, C, then M cut short: no NUL after "oops", and no zero byte after the fields.
  h.be(W().msg('E', W().byte('S').str("ERROR").byte('C').str("42000").byte('M').raw("oops")).append(ready()), 5000);
  ASSERT_EQ(h.events.size(), 1u);
  const StatementEvent& ev = h.events[0];
  EXPECT_EQ(ev.outcome, Outcome::kUnknown);
  EXPECT_EQ(ev.end_ns, 0);
  EXPECT_EQ(ev.sqlstate, "");
  EXPECT_EQ(ev.error_message, "undecodable ErrorResponse: field 'M' has no terminating zero byte");
  EXPECT_EQ(h.tracker().stats().decode_errors, 1u);
  EXPECT_EQ(h.tracker().stats().last_error, ev.error_message);
  std::string line = h.line(0);
  EXPECT_NE(line.find(" query unknown error=\"undecodable ErrorResponse: field 'M' has no terminating zero byte\" sql: "
                      "SELECT 1\n"),
            std::string::npos)
      << line;
  // The connection goes on: the next query is matched as usual.
  h.fe(W().msg('Q', W().str("SELECT 2")));
  h.be(W().append(complete("SELECT 1")).append(ready()));
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[1].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[1].error_message, "");
}

TEST(TrackerUndecodable, ErrorResponseCutInPiecesIsUnknownNotOk) {
  TrackerHarness h({}, FramerOptions{10000});
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")));
  // A 20 kB message field that the frame ends inside of.
  h.be_chunked(W().msg('E', W().byte('C').str("42000").byte('M').raw(std::string(20000, 'm'))).append(ready()), 999);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.events[0].error_message, "undecodable ErrorResponse: field 'M' has no terminating zero byte");
}

TEST(TrackerUndecodable, ErrorResponseWithoutItsFinalZeroIsUnknown) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")));
  h.be(W().msg('E', W().byte('C').str("42000").byte('M').str("oops")).append(ready()));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].error_message, "undecodable ErrorResponse: no zero byte after its last field");
}

TEST(TrackerUndecodable, UndecodableErrorInABatchSkipsToSyncAndLeavesTheExecuteUnknown) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1/0"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(parse("", "SELECT 2"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync())
           .append(parse("", "SELECT 3"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync()),
       1000);
  h.be(W().msg('1', W())
           .msg('2', W())
           .msg('E', W().byte('C').str("22012").byte('M').raw("division"))
           .append(ready('E'))
           .msg('1', W())
           .msg('2', W())
           .append(data_row("3"))
           .append(complete("SELECT 1"))
           .append(ready()),
       5000);
  ASSERT_EQ(h.events.size(), 3u);
  EXPECT_EQ(h.events[0].sql, "SELECT 1/0");
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.events[0].error_message, "undecodable ErrorResponse: field 'M' has no terminating zero byte");
  EXPECT_EQ(h.events[1].sql, "SELECT 2");
  EXPECT_EQ(h.events[1].outcome, Outcome::kNotExecuted);  // the server skipped it: an 'E' is an error
  EXPECT_EQ(h.events[2].sql, "SELECT 3");
  EXPECT_EQ(h.events[2].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[2].end_ns, 5000);
}

TEST(TrackerUndecodable, UndecodableErrorAtParseLeavesTheBatchExecuteUnknown) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELEC 1")).append(bind_text("", "", {})).append(execute()).append(sync()), 1000);
  // Three bytes after the zero byte that ends the fields.
  h.be(W().msg('E', W().byte('C').str("42601").byte(0).raw("abc")).append(ready()), 5000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.events[0].sqlstate, "");
  EXPECT_EQ(h.events[0].error_message, "undecodable ErrorResponse: 3 bytes after the zero byte that ends its fields");
}

TEST(TrackerUndecodable, CommandCompleteThatDoesNotDecodeStillCompletesItsExecute) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(parse("", "SELECT 2"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync()));
  h.be(W().msg('1', W())
           .msg('2', W())
           .msg('C', W().str("SELECT 1").raw("xx"))  // bytes after the tag's NUL
           .msg('1', W())
           .msg('2', W())
           .append(complete("SELECT 1"))
           .append(ready()),
       5000);
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.events[0].error_message.rfind("undecodable CommandComplete: ", 0), 0u) << h.events[0].error_message;
  EXPECT_EQ(h.events[1].sql, "SELECT 2");
  EXPECT_EQ(h.events[1].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[1].tag, "SELECT 1");
}

TEST(TrackerUndecodable, ParseCompleteWithABodyStillAnswersTheParse) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1")).append(bind_text("", "", {})).append(execute()).append(sync()));
  h.be(W().msg('1', W().raw("?")).msg('2', W()).append(complete("SELECT 1")).append(ready()), 5000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].end_ns, 0);
  EXPECT_EQ(h.events[0].tag, "SELECT 1");  // what was decoded is kept
  EXPECT_EQ(h.events[0].error_message.rfind("undecodable ParseComplete: ", 0), 0u) << h.events[0].error_message;
}

TEST(TrackerLargeBackend, HugeCommandCompleteCompletesItsExecute) {
  TrackerHarness h;
  login(h);
  h.fe(W().append(parse("", "SELECT 1"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(parse("", "SELECT 2"))
           .append(bind_text("", "", {}))
           .append(execute())
           .append(sync()),
       1000);
  const std::string tag = "SELECT " + std::string(2000000, '1');
  h.be_chunked(W().msg('1', W())
                   .msg('2', W())
                   .append(complete(tag))
                   .msg('1', W())
                   .msg('2', W())
                   .append(complete("SELECT 1"))
                   .append(ready()),
               65536, 5000);
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[0].end_ns, 5000);
  EXPECT_EQ(h.events[0].tag, cut_message(tag, 1024));
  EXPECT_FALSE(h.events[0].rows);  // the count was cut off
  EXPECT_EQ(h.events[1].sql, "SELECT 2");
  EXPECT_EQ(h.events[1].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[1].tag, "SELECT 1");
  EXPECT_EQ(h.events[1].rows, 1u);
  EXPECT_EQ(h.tracker().stats().decode_errors, 0u);
}

TEST(TrackerLargeBackend, HugeCommandCompleteInAQuery) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1; SELECT 2")));
  h.be_chunked(W().append(complete("SELECT " + std::string(2000000, '7'))).append(complete("SELECT 1")).append(ready()),
               65536);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[0].tag, "SELECT 1");
}

TEST(TrackerLargeBackend, HugeFunctionCallResponse) {
  TrackerHarness h;
  login(h);
  h.fe(W().msg('F', W().i32(764).i16(0).i16(1).value("16384").i16(1)));  // lo_get(16384)
  h.be_chunked(W().msg('V', W().value(std::string(2000000, 'b'))).append(ready()), 65536, 5000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].kind, StatementKind::kFunctionCall);
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[0].tag, "FUNCTION CALL");
  EXPECT_EQ(h.events[0].end_ns, 5000);
}

TEST(TrackerLargeBackend, FunctionCallResponseWhoseLengthDisagreesIsUnknown) {
  TrackerHarness h({}, FramerOptions{10000});
  login(h);
  h.fe(W().msg('F', W().i32(764).i16(0).i16(1).value("16384").i16(1)));
  h.be_chunked(W().msg('V', W().i32(5).raw(std::string(20000, 'b'))).append(ready()), 4096);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].error_message, "undecodable FunctionCallResponse: value length 5 in 20004 bytes");
}

TEST(TrackerLargeBackend, HugeRowDescriptionAnswersTheDescribe) {
  TrackerHarness h({}, FramerOptions{10000});
  login(h);
  h.fe(W().append(parse("", "SELECT * FROM wide"))
           .append(bind_text("", "", {}))
           .append(describe_portal())
           .append(execute())
           .append(sync()));
  Wire fields = W().i16(1000);
  for (int i = 0; i < 1000; ++i) fields.str("column_" + std::to_string(i)).i32(0).i16(0).i32(23).i16(4).i32(-1).i16(0);
  h.be_chunked(W().msg('1', W())
                   .msg('2', W())
                   .msg('T', fields)
                   .append(data_row("1"))
                   .append(complete("SELECT 1"))
                   .append(ready()),
               3000, 5000);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(h.events[0].tag, "SELECT 1");
  EXPECT_EQ(h.events[0].rows, 1u);
  EXPECT_EQ(h.events[0].end_ns, 5000);
}

TEST(TrackerLargeBackend, ReadyForQueryTooLargeIsStillReadyForQuery) {
  TrackerHarness h({}, FramerOptions{10000});
  login(h);
  h.fe(W().msg('Q', W().str("SELECT 1")));
  h.be_chunked(W().append(complete("SELECT 1")).msg('Z', W().raw(std::string(20000, 'I'))), 4096);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(h.events[0].error_message, "undecodable ReadyForQuery: 20000 bytes, too large for its type");
}

// A parameter longer than max_param_bytes keeps its first bytes and its whole
// size; a binary one is then not decoded. The unnamed portal bound again with
// a short value is whole again (its parameters' memory is reused).
TEST(Tracker, CutParametersAreMarkedAndNeverDecoded) {
  TrackerOptions opts;
  opts.max_param_bytes = 4;
  TrackerHarness h(opts);
  login(h);
  // Bind: portal, statement, 1 format code (binary), 2 values, 0 result formats.
  const Wire bind_binary = W().msg('B', W().str("")
                                            .str("")
                                            .i16(1)
                                            .i16(1)
                                            .i16(2)
                                            .value(std::string("\x00\x00\x00\x2a", 4))
                                            .value(std::string("\x00\x00\x00\x00\x2a", 5))
                                            .i16(0));
  h.fe(W().append(parse("", "SELECT $1, $2", {23, 20})).append(bind_binary).append(execute()).append(sync()));
  h.be(W().msg('1', W()).msg('2', W()).append(complete("SELECT 1")).append(ready()));
  h.fe(W().append(bind_text("", "", {"7", "8"})).append(execute()).append(sync()));
  h.be(W().msg('2', W()).append(complete("SELECT 1")).append(ready()));
  ASSERT_EQ(h.events.size(), 2u);
  const std::vector<StatementParam>& first = h.events[0].params;
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].cut_size, 0u);
  EXPECT_EQ(first[1].value, std::string("\x00\x00\x00\x00", 4));
  EXPECT_EQ(first[1].cut_size, 5u);
  EXPECT_NE(h.line(0).find(" params=($1='42'::23, $2=x'00000000'...(cut, 5 bytes in all)::20) sql: SELECT $1, $2"),
            std::string::npos)
      << h.line(0);
  const std::vector<StatementParam>& second = h.events[1].params;
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].cut_size, 0u);
  EXPECT_NE(h.line(1).find(" params=($1='7'::23, $2='8'::20) sql: SELECT $1, $2"), std::string::npos) << h.line(1);
}

TEST(StatementLog, TextLineIsOneLineWithEverything) {
  StatementEvent ev;
  ev.kind = StatementKind::kExecute;
  ev.sql = "SELECT $1,\n $2";
  ev.statement = "s1";
  ev.params = {StatementParam{std::string("it's"), 0, 25}, StatementParam{std::nullopt, 0, 0},
               StatementParam{std::string("\x00\x2a", 2), 1, 23}};
  ev.outcome = Outcome::kOk;
  ev.tag = "SELECT 1";
  ev.rows = 1;
  ev.start_ns = 1764298868123456000;  // 2025-11-28T03:01:08.123456Z
  ev.end_ns = ev.start_ns + 1500000;
  SessionInfo s;
  s.session_id = 7;
  s.client = "127.0.0.1:5000";
  s.user = "alice";
  s.database = "shop db";
  std::string line;
  format_statement(LogFormat::kText, ev, s, line);
  EXPECT_EQ(line,
            "2025-11-28T03:01:08.123456Z session=7 client=127.0.0.1:5000 user=alice db=\"shop db\" execute ok "
            "duration_ms=1.500 tag=\"SELECT 1\" rows=1 statement=s1 params=($1='it''s'::25, $2=NULL, "
            "$3=x'002a'::23) sql: SELECT $1,\\n $2\n");
  line.clear();
  format_statement(LogFormat::kJson, ev, s, line);
  EXPECT_EQ(line,
            "{\"ts\":\"2025-11-28T03:01:08.123456Z\",\"session\":7,\"client\":\"127.0.0.1:5000\",\"user\":\"alice\","
            "\"database\":\"shop db\",\"application_name\":\"\",\"kind\":\"execute\",\"statement\":\"s1\","
            "\"portal\":\"\",\"query\":\"SELECT $1,\\n "
            "$2\",\"query_truncated\":false,\"fingerprint\":\"6d6cfb1662145cf1\",\"params\":[\"it's\",null,"
            "\"\\\\x002a\"],\"param_formats\":[0,0,1],\"param_types\":[\"text\",null,\"int4\"],"
            "\"param_type_oids\":[25,0,23],\"duration_ms\":1.500,"
            "\"status\":\"ok\",\"tag\":\"SELECT 1\",\"rows\":1,\"sqlstate\":null,\"error\":null,\"executed\":true}\n");
}

// --log-params redacted / none: positions and types without values, or nothing of them.
TEST(StatementLog, RedactedOrNoParams) {
  StatementEvent ev;
  ev.kind = StatementKind::kExecute;
  ev.sql = "SELECT $1, $2";
  ev.params = {StatementParam{std::string("secret"), 0, 25}, StatementParam{std::nullopt, 0, 0}};
  ev.outcome = Outcome::kOk;
  ev.start_ns = 1764298868123456000;
  ev.end_ns = ev.start_ns + 1000000;
  SessionInfo s;
  std::string line;
  format_statement(LogFormat::kText, ev, s, line, ParamLogging::kRedacted);
  EXPECT_NE(line.find(" params=($1::25, $2) sql: SELECT $1, $2\n"), std::string::npos) << line;
  EXPECT_EQ(line.find("secret"), std::string::npos);
  line.clear();
  format_statement(LogFormat::kText, ev, s, line, ParamLogging::kNone);
  EXPECT_EQ(line.find("params="), std::string::npos) << line;
  line.clear();
  format_statement(LogFormat::kJson, ev, s, line, ParamLogging::kRedacted);
  EXPECT_NE(line.find("\"params\":null,\"param_formats\":[0,0],\"param_types\":[\"text\",null],"
                      "\"param_type_oids\":[25,0],\"duration_ms\":1.000,"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("secret"), std::string::npos);
  line.clear();
  format_statement(LogFormat::kJson, ev, s, line, ParamLogging::kNone);
  EXPECT_NE(line.find("\"params\":null,\"param_formats\":null,\"param_types\":null,\"param_type_oids\":null,"
                      "\"duration_ms\":1.000,"),
            std::string::npos)
      << line;
}

// The SQL log: a binary value that decodes looks like a text one; one that
// does not, or that was cut at max_param_bytes, stays hex (the cut marked).
TEST(StatementLog, BinaryParamsDecodedOrHexAndCutMarked) {
  StatementEvent ev;
  ev.kind = StatementKind::kExecute;
  ev.sql = "SELECT $1, $2, $3, $4, $5, $6, $7, $8";
  ev.params = {StatementParam{std::string("\x00\x00\x00\x2a", 4), 1, 23},
               StatementParam{std::string("42"), 0, 23},
               StatementParam{std::string("it's"), 1, 25},
               StatementParam{std::string("\x00\x2a", 2), 1, 23},
               StatementParam{std::string("\x00\x00\x00\x01", 4), 1, 0},
               StatementParam{std::string("abcd"), 1, 25, 70000},
               StatementParam{std::string("abcd"), 0, 25, 70000},
               StatementParam{std::string("\x00\x00\x00\x01", 4), 1, 16384}};
  ev.outcome = Outcome::kOk;
  ev.start_ns = 1764298868123456000;
  SessionInfo s;
  s.session_id = 1;
  std::string line;
  format_statement(LogFormat::kText, ev, s, line);
  EXPECT_NE(line.find(" params=($1='42'::23, $2='42'::23, $3='it''s'::25, $4=x'002a'::23, $5=x'00000001', "
                      "$6=x'61626364'...(cut, 70000 bytes in all)::25, $7='abcd'...(cut, 70000 bytes in all)::25, "
                      "$8=x'00000001'::16384) sql: "),
            std::string::npos)
      << line;
  line.clear();
  format_statement(LogFormat::kJson, ev, s, line);
  EXPECT_NE(line.find("\"params\":[\"42\",\"42\",\"it's\",\"\\\\x002a\",\"\\\\x00000001\","
                      "\"\\\\x61626364...(cut, 70000 bytes in all)\",\"abcd...(cut, 70000 bytes in all)\","
                      "\"\\\\x00000001\"],\"param_formats\":[1,0,1,1,1,1,0,1],"
                      "\"param_types\":[\"int4\",\"int4\",\"text\",\"int4\",null,\"text\",\"text\",\"16384\"],"
                      "\"param_type_oids\":[23,23,25,23,0,25,25,16384],"),
            std::string::npos)
      << line;
}

// numeric_send of zero with 16383 decimals is 8 bytes and prints 16,385
// characters. Each binary value may print 8 bytes per input byte plus 64, and
// a line shares one 64 KiB allowance beyond that: four of these fit (4 x
// 16,257 over their own 128), the rest stay hex. Without it a Bind of 60,000
// of them would build a 1 GB line.
TEST(StatementLog, BinaryValuesShareOneOutputBudgetPerLine) {
  const std::string zero_all_decimals("\x00\x00\x00\x00\x00\x00\x3f\xff", 8);
  StatementEvent ev;
  ev.kind = StatementKind::kExecute;
  ev.sql = "SELECT";
  ev.params.assign(1000, StatementParam{zero_all_decimals, 1, 1700});
  ev.params.push_back(StatementParam{std::string("\x00\x00\x00\x2a", 4), 1, 23});
  ev.outcome = Outcome::kOk;
  const std::string text = "0." + std::string(16383, '0');
  std::string line;
  format_statement(LogFormat::kText, ev, SessionInfo{}, line);
  EXPECT_LT(line.size(), size_t{256} << 10);
  EXPECT_NE(line.find(" params=($1='" + text + "'::1700, $2='" + text + "'::1700, $3='" + text + "'::1700, $4='" +
                      text + "'::1700, $5=x'0000000000003fff'::1700, $6=x'0000000000003fff'::1700, "),
            std::string::npos);
  EXPECT_NE(line.find(", $1000=x'0000000000003fff'::1700, $1001='42'::23) sql: SELECT\n"), std::string::npos);
  line.clear();
  format_statement(LogFormat::kJson, ev, SessionInfo{}, line);
  EXPECT_LT(line.size(), size_t{256} << 10);
  EXPECT_NE(line.find("\"params\":[\"" + text + "\",\"" + text + "\",\"" + text + "\",\"" + text +
                      "\",\"\\\\x0000000000003fff\","),
            std::string::npos);
  EXPECT_NE(line.find(",\"\\\\x0000000000003fff\",\"42\"],"), std::string::npos);
}

TEST(StatementLog, InvalidUtf8AndControlsAreEscaped) {
  StatementEvent ev;
  ev.sql = std::string("SELECT '\xff\x01' -- é", 17);
  ev.outcome = Outcome::kNotExecuted;
  SessionInfo s;
  std::string line;
  format_statement(LogFormat::kText, ev, s, line);
  EXPECT_NE(line.find("sql: SELECT '\\xff\\x01' -- é\n"), std::string::npos) << line;
  EXPECT_NE(line.find(" query not_executed"), std::string::npos) << line;
  line.clear();
  format_statement(LogFormat::kJson, ev, s, line);
  EXPECT_NE(line.find("\"query\":\"SELECT '\\u00ff\\u0001' -- é\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"executed\":false"), std::string::npos) << line;
}

}  // namespace
}  // namespace pgwire
