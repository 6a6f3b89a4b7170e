// The csvlog against records a real PostgreSQL 15 server wrote
// (corpus/csvlog, see its README): the same sessions, statements, times and
// pids given to CsvlogSession must give the server's records, but for the
// columns a proxy cannot know (virtual and real transaction id, query_id),
// which it leaves empty, the command of a failed statement, and the PARSE and
// BIND duration lines it does not write.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "pgwire/csvlog.hpp"
#include "pgwire/text.hpp"

namespace pgwire {
namespace {

namespace fs = std::filesystem;

using Record = std::vector<std::string>;
struct Field {
  std::string text;
  bool quoted = false;
};

// RFC 4180 as PostgreSQL writes it: quoted fields may hold commas, doubled
// quotes and newlines. Keeps whether a field was quoted ("" is not null).
std::vector<std::vector<Field>> parse_csv(std::string_view s) {
  std::vector<std::vector<Field>> records;
  std::vector<Field> record;
  Field field;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '"') {
      field.quoted = true;
      ++i;
      while (i < s.size()) {
        if (s[i] == '"' && i + 1 < s.size() && s[i + 1] == '"') {
          field.text += '"';
          i += 2;
        } else if (s[i] == '"') {
          ++i;
          break;
        } else {
          field.text += s[i++];
        }
      }
    }
    while (i < s.size() && s[i] != ',' && s[i] != '\n') field.text += s[i++];
    record.push_back(field);
    field = Field{};
    if (i < s.size() && s[i] == '\n') {
      records.push_back(record);
      record.clear();
    }
    ++i;
  }
  return records;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The server's records of a corpus file as we expect to write them: the
// columns we cannot know emptied, the PARSE and BIND durations left out (and
// so the session's line numbers counting only the records written).
std::string expected_records(const std::string& file) {
  const std::string text = read_file(fs::path(PGWIRE_CORPUS_DIR) / "csvlog" / file);
  std::string out;
  std::map<std::string, int> lines;  // per session id
  for (std::vector<Field>& r : parse_csv(text)) {
    EXPECT_EQ(r.size(), 26u) << "PostgreSQL 15 writes 26 columns";
    if (r.size() != 26) continue;
    const bool step = r[7].text == "PARSE" || r[7].text == "BIND";
    if (step && r[11].text == "LOG") continue;
    r[6].text = std::to_string(++lines[r[5].text]);
    for (int unknown : {9, 10, 25}) r[static_cast<size_t>(unknown)] = Field{};
    // The command of a statement that failed: the server parsed it, a proxy
    // has no CommandComplete to tell.
    if (r[11].text == "ERROR" && !step) r[7] = Field{"", true};
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) out += ',';
      if (!r[i].quoted) {
        out += r[i].text;
        continue;
      }
      out += '"';
      for (char c : r[i].text) {
        if (c == '"') out += '"';
        out += c;
      }
      out += '"';
    }
    out += '\n';
  }
  return out;
}

// The server takes a session's start a little before it logs the connection;
// ours is one instant (the client's connection), so a session time can be a
// millisecond or two shorter than the server's for the same log times.
std::string with_session_time(std::string records, std::string_view server, std::string_view ours) {
  const size_t at = records.find(server);
  EXPECT_NE(at, std::string::npos) << server;
  if (at != std::string::npos) records.replace(at, server.size(), ours);
  return records;
}

// "07:32:31.125" plus `us` microseconds, on the day of the recording.
int64_t at(std::string_view hhmmss, int64_t ms, int64_t us = 0) {
  int64_t ns = 0;
  EXPECT_TRUE(parse_iso8601_utc(std::string("2026-12-03T") + std::string(hhmmss) + "Z", &ns));
  return ns + ms * 1000000 + us * 1000;
}

StatementEvent query(std::string sql, int64_t start, int64_t end, std::string tag) {
  StatementEvent ev;
  ev.kind = StatementKind::kQuery;
  ev.sql = std::move(sql);
  ev.start_ns = start;
  ev.end_ns = end;
  ev.outcome = Outcome::kOk;
  ev.tag = std::move(tag);
  return ev;
}

StatementEvent failed(std::string sql, int64_t start, int64_t end, std::string sqlstate, std::string message) {
  StatementEvent ev = query(std::move(sql), start, end, "");
  ev.outcome = Outcome::kError;
  ev.sqlstate = std::move(sqlstate);
  ev.error_message = std::move(message);
  return ev;
}

StatementEvent execute(std::string statement, std::string sql, std::vector<std::string> params, int64_t start,
                       int64_t end, std::string tag) {
  StatementEvent ev = query(std::move(sql), start, end, std::move(tag));
  ev.kind = StatementKind::kExecute;
  ev.statement = std::move(statement);
  for (std::string& p : params) {
    StatementParam sp;
    sp.value = std::move(p);
    sp.type_oid = 23;
    ev.params.push_back(std::move(sp));
  }
  return ev;
}

SessionInfo session(std::string client, int32_t pid, std::string app, int64_t authenticated_ns) {
  SessionInfo s;
  s.session_id = 7;
  s.client = std::move(client);
  s.user = "postgres";
  s.database = "bench";
  s.application_name = std::move(app);
  s.backend_pid = pid;
  s.authenticated = true;
  s.authenticated_ns = authenticated_ns;
  return s;
}

TEST(Csvlog, PsqlSimpleQueriesAndErrorsAsTheServerWritesThem) {
  const SessionInfo s = session("127.0.0.1:37068", 14753, "golden", at("07:32:31", 117));
  CsvlogSession csv(at("07:32:31", 109));
  std::string out;
  csv.connected(s, out);
  csv.statement(query("select 'it''s \"q\"' as x, 1", at("07:32:31", 125), at("07:32:31", 125, 284), "SELECT 1"), s,
                out);
  csv.statement(query("select 1,\n2 as two", at("07:32:31", 141), at("07:32:31", 141, 141), "SELECT 1"), s, out);
  csv.statement(failed("select 1/0", at("07:32:31", 145), at("07:32:31", 145, 300), "22012", "division by zero"), s,
                out);
  csv.statement(failed("select nosuchcol", at("07:32:31", 157), at("07:32:31", 157, 200), "42703",
                       "column \"nosuchcol\" does not exist"),
                s, out);
  csv.disconnected(s, at("07:32:31", 162, 500), out);
  EXPECT_EQ(out, with_session_time(expected_records("pg15_psql_simple.csv"), "session time: 0:00:00.054",
                                   "session time: 0:00:00.053"));
}

TEST(Csvlog, PgbenchExtendedWithParametersAsTheServerWritesThem) {
  const SessionInfo s = session("127.0.0.1:37088", 14756, "pgbench", at("07:32:31", 264));
  CsvlogSession csv(at("07:32:31", 261));
  std::string out;
  csv.connected(s, out);
  auto run = [&](const StatementEvent& ev) { csv.statement(ev, s, out); };
  run(execute("", "BEGIN;", {}, at("07:32:31", 277), at("07:32:31", 277, 28), "BEGIN"));
  run(execute("", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", {"-155", "29486"},
              at("07:32:31", 285, 800), at("07:32:31", 286, 64), "UPDATE 1"));
  run(execute("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", {"29486"}, at("07:32:31", 286, 100),
              at("07:32:31", 286, 122), "SELECT 1"));
  run(execute("", "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;", {"-155", "2"},
              at("07:32:31", 286, 200), at("07:32:31", 286, 246), "UPDATE 1"));
  run(execute("", "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;", {"-155", "1"},
              at("07:32:31", 286, 300), at("07:32:31", 286, 345), "UPDATE 1"));
  run(execute("",
              "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
              {"2", "1", "29486", "-155"}, at("07:32:31", 287), at("07:32:31", 287, 121), "INSERT 0 1"));
  run(execute("", "END;", {}, at("07:32:31", 289), at("07:32:31", 297, 2), "COMMIT"));
  csv.disconnected(s, at("07:32:31", 301, 500), out);
  EXPECT_EQ(out, expected_records("pg15_pgbench_extended.csv"));
}

TEST(Csvlog, NamedPreparedStatementsAsTheServerWritesThem) {
  const SessionInfo s = session("127.0.0.1:37106", 14759, "pgbench", at("07:32:31", 408));
  CsvlogSession csv(at("07:32:31", 405));
  std::string out;
  csv.connected(s, out);
  auto run = [&](const StatementEvent& ev) { csv.statement(ev, s, out); };
  run(execute("P_0", "BEGIN;", {}, at("07:32:31", 425), at("07:32:31", 425, 17), "BEGIN"));
  run(execute("P_1", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", {"-4550", "45944"},
              at("07:32:31", 426), at("07:32:31", 426, 199), "UPDATE 1"));
  run(execute("P_2", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", {"45944"}, at("07:32:31", 426, 300),
              at("07:32:31", 426, 339), "SELECT 1"));
  run(execute("P_3", "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;", {"-4550", "8"},
              at("07:32:31", 426, 400), at("07:32:31", 426, 460), "UPDATE 1"));
  run(execute("P_4", "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;", {"-4550", "1"},
              at("07:32:31", 427), at("07:32:31", 427, 62), "UPDATE 1"));
  run(execute("P_5",
              "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
              {"8", "1", "45944", "-4550"}, at("07:32:31", 427, 100), at("07:32:31", 427, 201), "INSERT 0 1"));
  run(execute("P_6", "END;", {}, at("07:32:31", 427, 900), at("07:32:31", 437, 72), "COMMIT"));
  csv.disconnected(s, at("07:32:31", 441, 900), out);
  EXPECT_EQ(out, with_session_time(expected_records("pg15_pgbench_prepared.csv"), "session time: 0:00:00.038",
                                   "session time: 0:00:00.036"));
}

// An Execute whose Parse or Bind failed never began: the server logged the
// error alone, with the step as its command.
TEST(Csvlog, ParseAndBindErrorsAsTheServerWritesThem) {
  std::string out;
  const SessionInfo parse = session("127.0.0.1:51950", 7214, "pgbench", at("08:02:28", 853));
  CsvlogSession first(at("08:02:28", 853));
  first.connected(parse, out);
  StatementEvent ev = execute("", "selec 1;", {}, at("08:02:28", 857), at("08:02:28", 857, 500), "");
  ev.outcome = Outcome::kError;
  ev.failed_step = FailedStep::kParse;
  ev.sqlstate = "42601";
  ev.error_message = "syntax error at or near \"selec\"";
  first.statement(ev, parse, out);
  first.disconnected(parse, at("08:02:28", 859), out);

  const SessionInfo bind = session("127.0.0.1:51976", 7219, "pgbench", at("08:02:28", 929));
  CsvlogSession second(at("08:02:28", 929));
  second.connected(bind, out);
  ev = execute("", "select 1/($1 - 1);", {"1"}, at("08:02:28", 933), at("08:02:28", 933, 400), "");
  ev.outcome = Outcome::kError;
  ev.failed_step = FailedStep::kBind;
  ev.sqlstate = "22012";
  ev.error_message = "division by zero";
  second.statement(ev, bind, out);
  second.disconnected(bind, at("08:02:28", 934), out);

  std::string expected = expected_records("pg15_pgbench_extended_errors.csv");
  expected = with_session_time(expected, "session time: 0:00:00.012", "session time: 0:00:00.006");
  expected = with_session_time(expected, "session time: 0:00:00.013", "session time: 0:00:00.005");
  EXPECT_EQ(out, expected);
}

// What the capture does not say stays empty: no pid without BackendKeyData
// (the session id then ends in our session id), no address for a client on
// a unix socket.
TEST(Csvlog, UnknownPidAndUnixClientAreLeftEmpty) {
  SessionInfo s = session("/run/pgproxy/.s.PGSQL.6432", 0, "", 0);
  s.session_id = 0x2a;
  CsvlogSession csv(at("07:32:31", 0));
  std::string out;
  csv.statement(query("select 1", at("07:32:31", 5), at("07:32:31", 6), "SELECT 1"), s, out);
  const auto records = parse_csv(out);
  ASSERT_EQ(records.size(), 4u);  // received, authorized (made before the statement), statement, duration
  for (const auto& r : records) {
    ASSERT_EQ(r.size(), 26u);
    EXPECT_EQ(r[3].text, "");   // process_id
    EXPECT_FALSE(r[4].quoted);  // connection_from: null
    EXPECT_EQ(r[5].text, "6b111b0f.2a");
  }
  EXPECT_EQ(records[0][13].text, "connection received: host=[local]");
  EXPECT_EQ(records[1][13].text, "connection authorized: user=postgres database=bench");
  EXPECT_EQ(records[1][0].text, "2026-12-03 07:32:31.000 UTC");  // no AuthenticationOk seen: the start
}

// Statements the server never ran, of unknown text or FunctionCalls write
// nothing; an unknown outcome writes the statement without its duration; a
// NULL, a quote, a cut value and an undecodable binary value in the DETAIL.
TEST(Csvlog, OutcomesAndParameterForms) {
  const SessionInfo s = session("[::1]:5000", 99, "app", at("07:32:31", 1));
  CsvlogSession csv(at("07:32:31", 0));
  std::string out;
  csv.connected(s, out);
  out.clear();
  StatementEvent skipped = query("select 2", at("07:32:31", 5), 0, "");
  skipped.outcome = Outcome::kNotExecuted;
  csv.statement(skipped, s, out);
  skipped.outcome = Outcome::kUnknown;
  skipped.sql_unknown = true;
  csv.statement(skipped, s, out);
  skipped.sql_unknown = false;
  skipped.kind = StatementKind::kFunctionCall;
  csv.statement(skipped, s, out);
  EXPECT_EQ(out, "");

  StatementEvent ev = execute("s1", "select $1, $2, $3, $4", {"it's", "x", "abc", ""}, at("07:32:31", 10), 0, "");
  ev.portal = "c1";
  ev.outcome = Outcome::kUnknown;
  ev.params[1].value.reset();
  ev.params[2].cut_size = 100;
  ev.params[3].value = std::string("\x01\x02", 2);
  ev.params[3].format = 1;
  ev.params[3].type_oid = 0;
  csv.statement(ev, s, out);
  auto records = parse_csv(out);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0][4].text, "::1:5000");
  EXPECT_EQ(records[0][6].text, "3");  // received, authorized, then this
  EXPECT_EQ(records[0][13].text, "execute s1/c1: select $1, $2, $3, $4");
  EXPECT_EQ(records[0][14].text, "parameters: $1 = 'it''s', $2 = NULL, $3 = 'abc...', $4 = '\\x0102'");

  out.clear();
  csv.statement(ev, s, out, ParamLogging::kRedacted);
  records = parse_csv(out);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_FALSE(records[0][14].quoted);  // no DETAIL: the values are not logged

  out.clear();
  csv.disconnected(s, at("07:32:31", int64_t{3601} * 1000 + 5), out);
  csv.disconnected(s, at("07:32:31", int64_t{3602} * 1000), out);  // once only
  records = parse_csv(out);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0][13].text,
            "disconnection: session time: 1:00:01.005 user=postgres database=bench host=::1 port=5000");
}

// A session seen from its middle has no startup: no connection lines, and
// so no disconnection either.
TEST(Csvlog, PartialSessionHasNoConnectionLines) {
  SessionInfo s = session("127.0.0.1:1", 5, "", 0);
  s.partial = true;
  s.user.clear();
  s.database.clear();
  CsvlogSession csv(at("07:32:31", 0));
  std::string out;
  csv.statement(query("select 1", at("07:32:31", 5), at("07:32:31", 6), "SELECT 1"), s, out);
  csv.disconnected(s, at("07:32:31", 7), out);
  const auto records = parse_csv(out);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0][13].text, "statement: select 1");
  EXPECT_FALSE(records[0][1].quoted);  // user not known: null
  EXPECT_EQ(records[1][13].text, "duration: 1.000 ms");
}

}  // namespace
}  // namespace pgwire
