// The tracker on real conversations recorded from psql and pgbench against a
// real PostgreSQL (corpus/recorded/*.rec, see its README.md). Each recording
// is replayed chunk by chunk in the order the relay read them, exactly as a
// proxy would see the traffic.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "pgwire/session_monitor.hpp"
#include "pgwire/statement_log.hpp"
#include "recording.hpp"

namespace pgwire {
namespace {

struct Replayed {
  std::map<int, std::vector<StatementEvent>> events;  // by connection
  std::map<int, SessionInfo> sessions;
  std::map<int, TrackerStats> stats;
  std::string log;  // text SQL log lines, all connections
};

Replayed replay(const std::string& name, TrackerOptions opts = {}) {
  test::Recording rec = test::load_recording(std::string(PGWIRE_CORPUS_DIR) + "/recorded/" + name);
  Replayed out;
  std::map<int, std::unique_ptr<SessionMonitor>> monitors;
  for (const test::Chunk& c : rec.chunks) {
    auto& m = monitors[c.conn];
    if (!m) {
      m = std::make_unique<SessionMonitor>(opts, [&out, conn = c.conn](const StatementEvent& ev, const SessionInfo& s) {
        out.events[conn].push_back(ev);
        format_statement(LogFormat::kText, ev, s, out.log);
      });
      m->tracker().session().session_id = static_cast<uint64_t>(c.conn);
    }
    Status st = m->feed(c.dir == 'F' ? Direction::kFrontend : Direction::kBackend,
                        Bytes{c.bytes.data(), c.bytes.size()}, static_cast<int64_t>(c.usec) * 1000);
    EXPECT_TRUE(st.ok()) << name << ": " << st.error().describe();
  }
  for (auto& [conn, m] : monitors) {
    m->close(0);
    out.sessions[conn] = m->tracker().session();
    out.stats[conn] = m->tracker().stats();
    EXPECT_EQ(m->tracker().stats().decode_errors, 0u) << name << ": " << m->tracker().stats().last_error;
  }
  return out;
}

struct Expect {
  Outcome outcome;
  const char* tag;  // "" = none
  const char* sqlstate;
};

void expect_events(const std::vector<StatementEvent>& got, const std::vector<Expect>& want, const char* name) {
  ASSERT_EQ(got.size(), want.size()) << name;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].outcome, want[i].outcome) << name << " #" << i << ": " << got[i].sql;
    EXPECT_EQ(got[i].tag, want[i].tag) << name << " #" << i << ": " << got[i].sql;
    EXPECT_EQ(got[i].sqlstate, want[i].sqlstate) << name << " #" << i << ": " << got[i].sql;
  }
}

// The 7 statements of one pgbench TPC-B transaction.
std::vector<Expect> tpcb(int transactions) {
  std::vector<Expect> out;
  for (int t = 0; t < transactions; ++t) {
    for (const char* tag : {"BEGIN", "UPDATE 1", "SELECT 1", "UPDATE 1", "UPDATE 1", "INSERT 0 1", "COMMIT"})
      out.push_back({Outcome::kOk, tag, ""});
  }
  return out;
}

TEST(Recorded, PsqlMultiStatementErrorsAndUnicode) {
  Replayed r = replay("psql_multi.rec");
  const auto& ev = r.events[0];
  expect_events(ev,
                {{Outcome::kOk, "SELECT 1", ""},
                 {Outcome::kOk, "SELECT 1", ""},
                 {Outcome::kOk, "SELECT 1", ""},
                 {Outcome::kError, "", "42P01"},
                 {Outcome::kError, "SELECT 1", "22012"},
                 {Outcome::kOk, "SELECT 3", ""}},
                "psql_multi");
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_NE(ev[1].sql.find("héllo wörld ☃ 日本語"), std::string::npos);
  EXPECT_NE(ev[1].sql.find(",\n       E'line one"), std::string::npos);
  EXPECT_EQ(ev[2].sql, "SELECT 1 AS first ; SELECT 2 AS second;");
  EXPECT_EQ(ev[2].rows, 2u);  // one row from each statement of the string
  EXPECT_EQ(ev[3].error_message, "relation \"missing_table\" does not exist");
  EXPECT_NE(ev[4].sql.find("never_runs"), std::string::npos);
  EXPECT_EQ(ev[5].rows, 3u);
  for (const auto& e : ev) {
    EXPECT_EQ(e.kind, StatementKind::kQuery);
    EXPECT_GT(e.end_ns, e.start_ns);
  }
  EXPECT_EQ(r.sessions[0].user, "postgres");
  EXPECT_EQ(r.sessions[0].database, "postgres");
  EXPECT_EQ(r.sessions[0].application_name, "psql");
  EXPECT_EQ(r.sessions[0].protocol, kProtocol30);
  // One statement, one line, whatever the SQL holds.
  EXPECT_EQ(std::count(r.log.begin(), r.log.end(), '\n'), 6);
  EXPECT_NE(r.log.find("sql: SELECT 'héllo wörld ☃ 日本語' AS unicode,\\n       E'line one\\\\nline two'"),
            std::string::npos);
}

TEST(Recorded, CopyInAndOut) {
  Replayed r = replay("copy_in_out.rec");
  expect_events(r.events[0],
                {{Outcome::kOk, "CREATE TABLE", ""},
                 {Outcome::kOk, "COPY 4", ""},
                 {Outcome::kOk, "COPY 2", ""},
                 {Outcome::kOk, "COPY 6", ""},
                 {Outcome::kOk, "COPY 2", ""},
                 {Outcome::kError, "", "22P02"},
                 {Outcome::kOk, "SELECT 1", ""}},
                "copy_in_out");
  EXPECT_EQ(r.events[0].at(1).sql, "COPY t FROM STDIN;");
  EXPECT_EQ(r.events[0].at(3).rows, 6u);
}

TEST(Recorded, PgbenchSimple) {
  Replayed r = replay("pgbench_simple.rec");
  EXPECT_EQ(r.events[0].size(), 2u);  // pgbench's own catalog queries on its first connection
  expect_events(r.events[1], tpcb(5), "pgbench_simple");
  for (const auto& e : r.events[1]) {
    EXPECT_EQ(e.kind, StatementKind::kQuery);
    EXPECT_TRUE(e.params.empty());
  }
  EXPECT_EQ(r.events[1][1].sql.rfind("UPDATE pgbench_accounts SET abalance = abalance + ", 0), 0u);
}

TEST(Recorded, PgbenchExtendedResolvesUnnamedStatements) {
  Replayed r = replay("pgbench_extended.rec");
  expect_events(r.events[1], tpcb(5), "pgbench_extended");
  const StatementEvent& update = r.events[1][1];
  EXPECT_EQ(update.kind, StatementKind::kExecute);
  EXPECT_EQ(update.statement, "");
  EXPECT_EQ(update.sql, "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;");
  ASSERT_EQ(update.params.size(), 2u);
  EXPECT_EQ(update.params[0].format, 0);
  // The SELECT reads back the aid the UPDATE just changed.
  EXPECT_EQ(r.events[1][2].params.at(0).value, update.params[1].value);
  const StatementEvent& insert = r.events[1][5];
  EXPECT_EQ(insert.params.size(), 4u);
}

TEST(Recorded, PgbenchPreparedResolvesNamedStatements) {
  Replayed r = replay("pgbench_prepared.rec");
  expect_events(r.events[1], tpcb(5), "pgbench_prepared");
  for (size_t i = 0; i < r.events[1].size(); ++i) {
    const StatementEvent& e = r.events[1][i];
    EXPECT_EQ(e.statement, "P_" + std::to_string(i % 7)) << i;
  }
  EXPECT_EQ(r.events[1][13].sql, "END;");  // P_6 again in the second transaction
}

TEST(Recorded, PipelineWithErrorInTheMiddle) {
  Replayed r = replay("pipeline_error.rec");
  expect_events(r.events[1],
                {{Outcome::kOk, "SELECT 1", ""}, {Outcome::kError, "", "22012"}, {Outcome::kNotExecuted, "", ""}},
                "pipeline_error");
  EXPECT_EQ(r.events[1][1].sql, "SELECT 1/0 AS fails;");
  EXPECT_EQ(r.events[1][2].sql, "SELECT 3 AS skipped;");
  EXPECT_EQ(r.events[1][2].end_ns, 0);
}

TEST(Recorded, ScramLoginAfterSslRefused) {
  Replayed r = replay("scram_login.rec");
  expect_events(r.events[0], {{Outcome::kOk, "SELECT 1", ""}}, "scram_login");
  EXPECT_EQ(r.sessions[0].user, "pgwire");
  EXPECT_EQ(r.sessions[0].auth_method, "SCRAM-SHA-256");
  EXPECT_TRUE(r.sessions[0].authenticated);
}

TEST(Recorded, CancelRequestNamesTheRunningBackend) {
  Replayed r = replay("cancel.rec");
  expect_events(r.events[0], {{Outcome::kError, "", "57014"}}, "cancel");
  EXPECT_TRUE(r.events[1].empty());
  EXPECT_NE(r.sessions[0].backend_pid, 0);
  EXPECT_EQ(r.sessions[1].backend_pid, r.sessions[0].backend_pid);
  EXPECT_EQ(r.sessions[1].cancel_key, r.sessions[0].cancel_key);
}

TEST(Recorded, FrontendOnlyGivesTheSameStatements) {
  TrackerOptions opts;
  opts.frontend_only = true;
  Replayed full = replay("pgbench_extended.rec");
  Replayed fe_only = replay("pgbench_extended.rec", opts);
  ASSERT_EQ(fe_only.events[1].size(), full.events[1].size());
  for (size_t i = 0; i < full.events[1].size(); ++i) {
    EXPECT_EQ(fe_only.events[1][i].sql, full.events[1][i].sql);
    EXPECT_EQ(fe_only.events[1][i].outcome, Outcome::kUnknown);
    ASSERT_EQ(fe_only.events[1][i].params.size(), full.events[1][i].params.size());
    for (size_t p = 0; p < full.events[1][i].params.size(); ++p)
      EXPECT_EQ(fe_only.events[1][i].params[p].value, full.events[1][i].params[p].value);
  }
}

TEST(Recorded, ChunkingDoesNotChangeTheLog) {
  for (const char* name : {"psql_multi.rec", "copy_in_out.rec", "pgbench_prepared.rec", "pipeline_error.rec",
                           "scram_login.rec", "cancel.rec"}) {
    std::string baseline = replay(name).log;
    // The same bytes one at a time: every frame boundary falls mid-chunk.
    test::Recording rec = test::load_recording(std::string(PGWIRE_CORPUS_DIR) + "/recorded/" + name);
    std::map<int, std::unique_ptr<SessionMonitor>> monitors;
    std::string log;
    for (const test::Chunk& c : rec.chunks) {
      auto& m = monitors[c.conn];
      if (!m) {
        m = std::make_unique<SessionMonitor>(TrackerOptions{}, [&log](const StatementEvent& ev, const SessionInfo& s) {
          format_statement(LogFormat::kText, ev, s, log);
        });
        m->tracker().session().session_id = static_cast<uint64_t>(c.conn);
      }
      for (std::byte b : c.bytes) {
        ASSERT_TRUE(m->feed(c.dir == 'F' ? Direction::kFrontend : Direction::kBackend, Bytes{&b, 1},
                            static_cast<int64_t>(c.usec) * 1000)
                        .ok());
      }
    }
    for (auto& [conn, m] : monitors) m->close(0);
    EXPECT_EQ(log, baseline) << name;
  }
}

}  // namespace
}  // namespace pgwire
