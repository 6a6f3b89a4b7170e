// Unit tests of pgreplay's own pieces: the capture-side session model (what
// each frame waited for, exact and inferred), the milestone matcher, the
// .pgpass line matcher, the login a session replays with, and the report.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conninfo.hpp"
#include "html_dom.hpp"
#include "options.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/tracker.hpp"
#include "report.hpp"
#include "schedule.hpp"

namespace pgreplay {
namespace {

using pgwire::Buffer;
using pgwire::CaptureRecord;
using pgwire::Direction;
using pgwire::FrameKind;

// Builds capture records of one session; keeps their bytes alive.
class Script {
 public:
  CaptureRecord& startup(int64_t ts) {
    Buffer b;
    pgwire::fe::StartupMessage{pgwire::kProtocol30, {{"user", "alice"}, {"database", "app"}, {"application_name", "t"}}}
        .encode(b);
    return add(ts, Direction::kFrontend, FrameKind::kStartup, b);
  }
  CaptureRecord& ssl_request(int64_t ts) {
    Buffer b;
    pgwire::fe::SslRequest{}.encode(b);
    return add(ts, Direction::kFrontend, FrameKind::kStartup, b);
  }
  CaptureRecord& fe(int64_t ts, char type) {
    Buffer b;
    size_t at = b.begin_message(type);
    if (type == 'Q') b.cstring("select 1");
    b.end_message(at);
    return add(ts, Direction::kFrontend, FrameKind::kTyped, b);
  }
  CaptureRecord& be(int64_t ts, char type) {
    Buffer b;
    size_t at = b.begin_message(type);
    if (type == 'Z') b.u8('I');
    if (type == 'R') b.i32(0);
    if (type == 'K') {
      b.i32(4242);
      b.i32(7);
    }
    if (type == 'G') {
      b.u8(0);
      b.i16(0);
    }
    b.end_message(at);
    return add(ts, Direction::kBackend, FrameKind::kTyped, b);
  }
  // Feeds everything; returns the need of each planned frame, as "type:need".
  std::vector<std::string> run(SessionModel& m) {
    std::vector<std::string> out;
    for (CaptureRecord& r : recs_) {
      r.data = pgwire::Bytes{store_[&r - recs_.data()].data(), store_[&r - recs_.data()].size()};
      if (auto pf = m.on_frame(r))
        out.push_back(std::string(1, static_cast<char>(pf->type)) + ":" + std::to_string(pf->need));
    }
    return out;
  }

 private:
  CaptureRecord& add(int64_t ts, Direction d, FrameKind k, const Buffer& b) {
    CaptureRecord r;
    r.type = pgwire::CaptureRecordType::kFrame;
    r.session_id = 1;
    r.ts_ns = ts;
    r.direction = d;
    r.frame_kind = k;
    store_.emplace_back(b.view().begin(), b.view().end());
    recs_.push_back(r);
    return recs_.back();
  }
  std::vector<CaptureRecord> recs_;
  std::vector<std::vector<std::byte>> store_;
};

std::string milestones(const SessionModel& m) {
  std::string s;
  for (uint64_t i = m.milestones_base(); i < m.milestones_total(); ++i) s += m.milestone(i);
  return s;
}

TEST(SessionModel, ExactWaitsFromBackendFrames) {
  Script s;
  s.startup(1);
  s.be(2, 'R');
  s.be(3, 'K');
  s.be(4, 'Z');   // login: not a milestone
  s.fe(10, 'Q');  // waits for nothing
  s.be(11, 'Z');
  s.fe(20, 'P');  // pipelined batch: P B E S P B E S, all before any answer
  s.fe(20, 'B');
  s.fe(20, 'E');
  s.fe(20, 'S');
  s.fe(21, 'B');
  s.fe(21, 'E');
  s.fe(21, 'S');
  s.be(22, 'Z');
  s.be(22, 'Z');
  s.fe(30, 'Q');  // COPY FROM STDIN
  s.be(31, 'G');
  s.fe(32, 'd');
  s.fe(32, 'c');
  s.be(33, 'Z');
  s.fe(40, 'X');
  SessionModel m(0);
  auto needs = s.run(m);
  EXPECT_TRUE(m.exact());
  EXPECT_TRUE(m.has_backend_key());
  EXPECT_EQ(m.backend_pid(), 4242);
  EXPECT_EQ(m.kind(), SessionModel::Kind::kStartup);
  EXPECT_EQ(m.param("application_name"), "t");
  std::vector<std::string> want = {"Q:0", "P:1", "B:1", "E:1", "S:1", "B:1", "E:1", "S:1", "Q:3", "d:4", "c:4", "X:5"};
  EXPECT_EQ(needs, want);
  EXPECT_EQ(milestones(m), "ZZZGZ");
}

TEST(SessionModel, InferredWaitsWithoutBackendFrames) {
  Script s;
  s.ssl_request(0);  // pgproxy answered 'N' itself: no backend record
  s.startup(1);
  s.fe(10, 'Q');  // -> Z
  s.fe(20, 'P');  // new timestamp: waits for that Z
  s.fe(20, 'B');
  s.fe(20, 'E');
  s.fe(20, 'S');  // -> Z
  s.fe(20, 'P');  // same timestamp as the Sync: pipelined, no wait
  s.fe(20, 'B');
  s.fe(20, 'E');
  s.fe(20, 'S');  // -> Z
  s.fe(30, 'Q');  // waits for both
  s.fe(31, 'd');  // COPY data: the Query answered with G first
  s.fe(31, 'd');
  s.fe(32, 'c');
  s.fe(40, 'Q');  // waits for the COPY's Z
  s.fe(50, 'X');
  SessionModel m(0);
  auto needs = s.run(m);
  EXPECT_FALSE(m.exact());
  std::vector<std::string> want = {"Q:0", "P:1", "B:1", "E:1", "S:1", "P:1", "B:1", "E:1",
                                   "S:1", "Q:3", "d:4", "d:4", "c:4", "Q:5", "X:6"};
  EXPECT_EQ(needs, want);
  m.on_close(60);
  EXPECT_EQ(milestones(m), "ZZZGZZ");
}

TEST(SessionModel, InferredCopyAfterExecuteSwallowsTheSync) {
  // libpq's PQexecParams("COPY ... FROM STDIN"): P B D E S, then data, then
  // CopyDone and a Sync together. The server ignores the first Sync while
  // copying: only the second one is answered.
  Script s;
  s.startup(1);
  s.fe(10, 'P');
  s.fe(10, 'B');
  s.fe(10, 'D');
  s.fe(10, 'E');
  s.fe(10, 'S');
  s.fe(11, 'd');
  s.fe(12, 'c');
  s.fe(12, 'S');
  s.fe(20, 'Q');
  SessionModel m(0);
  auto needs = s.run(m);
  std::vector<std::string> want = {"P:0", "B:0", "D:0", "E:0", "S:0", "d:1", "c:1", "S:1", "Q:2"};
  EXPECT_EQ(needs, want);
  EXPECT_EQ(milestones(m), "GZ");
}

TEST(SessionModel, CancelRequestSession) {
  Script s;
  Buffer b;
  const std::byte key[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  pgwire::fe::CancelRequest{4242, key}.encode(b);
  SessionModel m(0);
  CaptureRecord r;
  r.direction = Direction::kFrontend;
  r.frame_kind = FrameKind::kStartup;
  r.data = b.view();
  EXPECT_FALSE(m.on_frame(r));
  EXPECT_EQ(m.kind(), SessionModel::Kind::kCancel);
  EXPECT_EQ(m.cancel_pid(), 4242);
}

TEST(MilestoneMatcher, MatchesSkipsAndFlagsUnexpected) {
  Script s;
  s.startup(1);
  s.be(2, 'Z');
  s.fe(3, 'Q');
  s.be(4, 'G');  // the capture's COPY worked
  s.fe(5, 'd');
  s.fe(5, 'c');
  s.be(6, 'Z');
  s.fe(7, 'Q');
  s.be(8, 'Z');
  SessionModel m(0);
  s.run(m);
  ASSERT_EQ(milestones(m), "GZZ");

  // The replay's COPY failed: its Z skips the capture's G.
  MilestoneMatcher a;
  std::string unexpected;
  a.received('Z');
  a.match(m, false, [&](char c) { unexpected += c; });
  EXPECT_EQ(a.position(), 2u);
  EXPECT_EQ(unexpected, "");

  // A replay COPY where the capture had none before the next Z: unexpected.
  MilestoneMatcher b;
  b.received('G');
  b.received('Z');
  b.received('G');
  b.match(m, false, [&](char c) { unexpected += c; });
  EXPECT_EQ(b.position(), 2u);
  EXPECT_EQ(unexpected, "G");

  // Past what the capture holds so far: wait, unless the capture is complete.
  MilestoneMatcher c;
  for (int i = 0; i < 4; ++i) c.received('Z');
  c.match(m, false, [&](char ch) { unexpected += ch; });
  EXPECT_TRUE(c.waiting());
  c.match(m, true, [&](char ch) { unexpected += ch; });
  EXPECT_FALSE(c.waiting());
}

TEST(Pgpass, LibpqRules) {
  EXPECT_EQ(pgpass_match_line("127.0.0.1:5432:db:alice:secret", "127.0.0.1", "5432", "db", "alice"), "secret");
  EXPECT_EQ(pgpass_match_line("*:*:*:*:any\n", "h", "1", "d", "u"), "any");
  EXPECT_EQ(pgpass_match_line("*:*:*:*:crlf\r\n", "h", "1", "d", "u"), "crlf");
  EXPECT_FALSE(pgpass_match_line("127.0.0.1:5433:db:alice:secret", "127.0.0.1", "5432", "db", "alice"));
  EXPECT_FALSE(pgpass_match_line("#*:*:*:*:comment", "h", "1", "d", "u"));
  EXPECT_FALSE(pgpass_match_line("", "h", "1", "d", "u"));
  // Escaped ':' and '\' in fields and in the password; the password ends at an unescaped ':'.
  EXPECT_EQ(pgpass_match_line("h:1:d:we\\:ird:pa\\:ss\\\\word:ignored", "h", "1", "d", "we:ird"), "pa:ss\\word");
  EXPECT_FALSE(pgpass_match_line("h:1:d:we\\:ird:x", "h", "1", "d", "we"));
  // '*' only as a whole field.
  EXPECT_FALSE(pgpass_match_line("h*:1:d:u:x", "host", "1", "d", "u"));
  EXPECT_EQ(pgpass_match_line("h:1:*:u:", "h", "1", "anything", "u"), "");
}

TEST(Mapping, ParsesOldEqualsNew) {
  NameMap m;
  EXPECT_TRUE(parse_mapping("a=b", m));
  EXPECT_TRUE(parse_mapping("x=y=z", m));
  EXPECT_EQ(m["a"], "b");
  EXPECT_EQ(m["x"], "y=z");
  EXPECT_FALSE(parse_mapping("=b", m));
  EXPECT_FALSE(parse_mapping("a=", m));
  EXPECT_FALSE(parse_mapping("ab", m));
}

// An environment holding exactly `vars`.
EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

using Login = std::pair<std::string, std::string>;

// PGUSER / PGDATABASE are a shell's defaults for psql, set in container images
// and CI: they say nothing about the capture and must not change whom a
// captured session logs in as, nor where.
TEST(Login, EnvironmentNeverReplacesTheCapturedUserAndDatabase) {
  const EnvLookup env = fake_env({{"PGUSER", "trusty"}, {"PGDATABASE", "postgres"}, {"PGCONNECT_TIMEOUT", "3"}});
  ReplayOptions o;
  apply_environment(o, env);
  EXPECT_EQ(resolve_login(o, "pgwire", "bars"), Login("pgwire", "bars"));
  // A captured startup without a database meant the user's own, as the server reads it.
  EXPECT_EQ(resolve_login(o, "pgwire", ""), Login("pgwire", "pgwire"));
  // What the capture does not say still comes from the environment.
  EXPECT_EQ(o.connect_timeout_s, 3);

  // -U / -d on the command line (parsed after the environment) replace every session's.
  ReplayOptions given;
  apply_environment(given, env);
  given.user = "bob";
  given.dbname = "bars_copy";
  EXPECT_EQ(resolve_login(given, "pgwire", "bars"), Login("bob", "bars_copy"));

  // --map-user / --map-database replace only the names they map.
  ReplayOptions mapped;
  apply_environment(mapped, env);
  mapped.map_user["pgwire"] = "carol";
  mapped.map_database["bars"] = "bars_copy";
  EXPECT_EQ(resolve_login(mapped, "pgwire", "bars"), Login("carol", "bars_copy"));
  EXPECT_EQ(resolve_login(mapped, "dave", "other"), Login("dave", "other"));
  EXPECT_EQ(resolve_login(mapped, "bars", ""), Login("bars", "bars_copy"));
}

TEST(Login, UnusableConnectTimeoutIsIgnoredAsLibpqDoes) {
  for (const char* bad : {"soon", "0", "-1", "5s", ""}) {
    ReplayOptions o;
    apply_environment(o, fake_env({{"PGCONNECT_TIMEOUT", bad}}));
    EXPECT_EQ(o.connect_timeout_s, 10) << bad;
  }
  ReplayOptions o;
  apply_environment(o, fake_env({{"PGCONNECT_TIMEOUT", "2.5"}}));
  EXPECT_EQ(o.connect_timeout_s, 2.5);
}

TEST(Login, SaysOnceThatPguserAndPgdatabaseWereNotApplied) {
  ReplayOptions o;
  apply_environment(o, fake_env({{"PGUSER", "trusty"}, {"PGDATABASE", "postgres"}}));
  EnvironmentLoginNotice notice(o);
  std::vector<std::string> w = notice.check("pgwire", "bars", "pgwire", "bars");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("PGUSER is set (trusty) but was not applied"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("(the first: pgwire)"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("-U trusty logs every session in as trusty"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("--map-user pgwire=trusty"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("PGDATABASE is set (postgres) but was not applied"), std::string::npos) << w[1];
  EXPECT_NE(w[1].find("-d postgres connects every session to postgres"), std::string::npos) << w[1];
  EXPECT_NE(w[1].find("--map-database bars=postgres"), std::string::npos) << w[1];
  // Once per run.
  EXPECT_TRUE(notice.check("someone", "else", "someone", "else").empty());

  // The environment names what is used anyway: nothing to say.
  EnvironmentLoginNotice same(o);
  EXPECT_TRUE(same.check("trusty", "postgres", "trusty", "postgres").empty());
  // A startup without a database: the database is the user's name.
  EnvironmentLoginNotice implicit_db(o);
  w = implicit_db.check("trusty", "", "trusty", "trusty");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("--map-database trusty=postgres"), std::string::npos) << w[0];
  // -U / -d given: the command line said what to use.
  ReplayOptions given = o;
  given.user = "x";
  given.dbname = "y";
  EnvironmentLoginNotice explicit_login(given);
  EXPECT_TRUE(explicit_login.check("pgwire", "bars", "x", "y").empty());
  // Unset: nothing to say.
  ReplayOptions unset;
  apply_environment(unset, fake_env({}));
  EnvironmentLoginNotice nothing(unset);
  EXPECT_TRUE(nothing.check("pgwire", "bars", "pgwire", "bars").empty());
}

// Whom a failure hit is part of what it means: every failed session's user and
// database are in the report, not only those of the first few examples.
TEST(Report, FailedSessionsNameTheirUserAndDatabase) {
  ReplayOptions o;
  Report r(o);
  const std::string refused = "login refused: FATAL 28P01: password authentication failed";
  for (uint64_t id = 1; id <= 20; ++id) r.session_failed(SessionLabel{id, "alice", "app", ""}, refused);
  for (uint64_t id = 21; id <= 25; ++id) r.session_failed(SessionLabel{id, "bob", "bars", ""}, refused);
  r.session_failed(SessionLabel{26, "bob", "bars", ""}, "server closed the connection");
  r.session_failed(SessionLabel{27, "ev\nil", "app", ""}, "server closed the connection");
  const std::string text = r.text();
  EXPECT_NE(text.find("\n    failed     20x  as alice@app: " + refused + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n    failed      5x  as bob@bars: " + refused + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n    failed      1x  as bob@bars: server closed the connection\n"), std::string::npos) << text;
  // A name from the capture cannot break the report's lines.
  EXPECT_NE(text.find("\n    failed      1x  as ev\\nil@app: server closed"), std::string::npos) << text;
  EXPECT_NE(text.find("sessions          0 ok, 27 failed"), std::string::npos) << text;

  const std::string json = r.json();
  EXPECT_NE(json.find("{\"reason\":\"" + refused + "\",\"user\":\"bob\",\"database\":\"bars\",\"count\":5}"),
            std::string::npos)
      << json;
  EXPECT_NE(
      json.find("{\"reason\":\"server closed the connection\",\"user\":\"bob\",\"database\":\"bars\",\"count\":1}"),
      std::string::npos)
      << json;
}

pgwire::StatementEvent statement(std::string sql, pgwire::Outcome outcome, int64_t start_ns, int64_t duration_ns) {
  pgwire::StatementEvent ev;
  ev.sql = std::move(sql);
  ev.outcome = outcome;
  ev.start_ns = start_ns;
  ev.end_ns = start_ns + duration_ns;
  if (outcome == pgwire::Outcome::kOk) {
    ev.tag = "SELECT 1";
    ev.rows = 1;
  } else {
    ev.sqlstate = "42P01";
    ev.error_message = "relation \"t\" does not exist";
  }
  return ev;
}

// Binary parameters read as the SQL log reads them (binary_values.hpp), in
// the text, the JSON and the HTML report alike: the bytes are the types'
// send functions' (int4send: 4 bytes big-endian; boolsend: 1 byte).
TEST(Report, DivergencesShowTypedBinaryParameters) {
  ReplayOptions o;
  o.compare = true;
  Report r(o);
  r.note_exact_session();
  pgwire::StatementEvent captured =
      statement("SELECT v FROM t WHERE id = $1 AND ok = $2 AND name = $3", pgwire::Outcome::kOk, 1000, 500);
  captured.params.push_back({std::string("\x00\x00\x00\x2a", 4), 1, 23});  // int4 42
  captured.params.push_back({std::string("\x01", 1), 1, 16});              // bool true
  captured.params.push_back({std::string("it's"), 0, 25});                 // text, sent as text
  captured.params.push_back({std::string("\x01\x02", 2), 1, 600});         // point: not decoded
  captured.params.push_back({std::string(100000, '['), 1, 114});           // json nested too deep
  captured.params.push_back({std::nullopt, 1, 23});
  const pgwire::StatementEvent replayed = statement(captured.sql, pgwire::Outcome::kError, 5000, 300);
  r.matched(SessionLabel{7, "alice", "app", ""}, 0, captured, replayed);

  const std::string text = r.text();
  EXPECT_NE(
      text.find("      params:   $1 = '42'::int4, $2 = 't'::bool, $3 = 'it's'::text, $4 = \\x0102::600, $5 = \\x5b5b"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("... (json nested deeper than 1000 levels, not decoded)::json, $6 = NULL\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("      captured: SELECT 1 (rows 1)\n      replayed: ERROR 42P01 relation \"t\" does not exist\n"),
            std::string::npos)
      << text;
  const std::string json = r.json();
  EXPECT_NE(json.find("\"params\":[\"'42'::int4\",\"'t'::bool\",\"'it's'::text\",\"\\\\x0102::600\","),
            std::string::npos)
      << json;
  const std::string html = r.html(HtmlOptions{});
  EXPECT_NE(html.find("$1 = &#39;42&#39;::int4, $2 = &#39;t&#39;::bool, $3 = &#39;it&#39;s&#39;::text"),
            std::string::npos);
  const auto rows = pgwire::test::html::body_rows(pgwire::test::html::element(html, "divergence-list"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NE(rows[0].find("data-side=\"captured\"><code>SELECT 1 (rows 1)</code>"), std::string_view::npos) << rows[0];
  EXPECT_NE(rows[0].find("data-side=\"replayed\"><code>ERROR 42P01 relation &quot;t&quot; does not exist</code>"),
            std::string_view::npos)
      << rows[0];
}

// A day of traffic: the page is built from bounded aggregates (the lag
// timeline's buckets, at most 600 points; the statement tables' rows; the
// divergences listed in full), so it stays at most a few MB.
TEST(Report, HtmlOfADayOfTrafficStaysSmall) {
  namespace h = pgwire::test::html;
  ReplayOptions o;
  o.compare = true;
  Report r(o);
  r.note_exact_session();
  const int64_t t0 = int64_t{1764720000} * 1000000000;  // 2025-12-03T00:00:00Z
  const int64_t day = int64_t{86400} * 1000000000;
  const int frames = 200000;
  for (int i = 0; i < frames; ++i) {
    r.frame_sent(int64_t{1000000} * (i % 7), 1000, true, t0 + day / frames * i);
  }
  for (int i = 0; i < 30000; ++i) {
    // 3000 distinct statements, each with a long literal.
    const std::string sql = "SELECT * FROM t" + std::to_string(i % 3000) + " WHERE note = '" +
                            std::string(static_cast<size_t>(200 + i % 50), 'x') + "'";
    const int64_t at = t0 + day / 30000 * i;
    const auto c = statement(sql, pgwire::Outcome::kOk, at, 1000000);
    const auto rep = statement(sql, i % 3 == 0 ? pgwire::Outcome::kError : pgwire::Outcome::kOk, at, 2000000);
    r.captured_statement(c);
    r.replay_statement(rep);
    r.matched(SessionLabel{1, "a", "b", ""}, static_cast<uint64_t>(i), c, rep);
  }
  const std::string html = r.html(HtmlOptions{});
  EXPECT_LT(html.size(), 2u << 20) << "a day of traffic: a page of at most a few MB";
  const std::string_view lag = h::element(html, "chart-lag");
  const size_t buckets = std::stoul(h::attr(lag, "data-buckets").value());
  EXPECT_GE(buckets, 240u);
  EXPECT_LE(buckets, 600u);
  EXPECT_EQ(h::sum_attr(lag, "<rect ", "data-n"), static_cast<uint64_t>(frames));
  const auto statements = h::body_rows(h::element(html, "statement-latency"));
  EXPECT_GE(statements.size(), 100u);
  EXPECT_LE(statements.size(), 200u);
  // Replayed twice as slow: every ratio 2 (histogram buckets are exact to 9%).
  for (std::string_view row : statements) {
    const auto v = h::cell_values(row);
    ASSERT_EQ(v.size(), 12u);
    EXPECT_NEAR(std::stod(v[11]), 2.0, 0.2) << row;
  }
  EXPECT_EQ(h::body_rows(h::element(html, "divergence-list")).size(), 20u);
  const auto groups = h::body_rows(h::element(html, "divergence-statements"));
  ASSERT_EQ(groups.size(), 101u);
  EXPECT_EQ(h::attr(groups.back(), "data-rest"), "900");  // every third statement diverged: 1000 texts
  uint64_t counted = 0;
  for (std::string_view row : groups) counted += std::stoull(h::cell_values(row).at(0));
  EXPECT_EQ(counted, 10000u);
  EXPECT_EQ(h::cards(html).at("divergences"), "10000");
}

}  // namespace
}  // namespace pgreplay
