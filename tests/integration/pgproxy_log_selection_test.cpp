// pgproxy's selective SQL log against a real server and real clients: --log-user,
// --log-database, --log-application (sessions), --log-min-duration-ms (statements),
// --log-params (what of the parameters), --log-max-query-bytes. The capture keeps every session,
// checked with pgdump-log.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
using pt::ProxyProcess;

namespace {

class PgproxyLogSelectionTest : public pt::SharedServerTest<PgproxyLogSelectionTest> {
 public:
  static void prepare(pt::TempPostgres& pg) {
    pt::CommandOptions o;
    o.env = pg.client_env();
    pt::CommandResult r = pt::run_command(
        {pg.bindir() + "/psql", "-X", "-q", "-c", "CREATE ROLE alice LOGIN", "-c", "CREATE DATABASE audited"}, o);
    if (!r.ok()) throw std::runtime_error("psql: " + r.describe());
    pt::pgbench_init(pg);
  }
};

int lines_containing(const std::string& text, const std::string& needle) {
  int n = 0;
  for (const std::string& line : pt::lines_of(text)) n += line.find(needle) != std::string::npos;
  return n;
}

TEST_F(PgproxyLogSelectionTest, OnlyMatchingSessionsAreLoggedAndTheCaptureKeepsAll) {
  ProxyProcess proxy(pg(), {"--log-user", "^alice$", "--log-user", "^bob$", "--log-application", "^audit",
                            "--metrics-listen", "127.0.0.1:0"});
  struct Client {
    const char* user;
    const char* app;
    const char* database;
    const char* mark;
  };
  for (const Client& c :
       {Client{"alice", "audit-1", "postgres", "alice-audit"}, Client{"alice", "other", "postgres", "alice-other"},
        Client{"postgres", "audit-2", "postgres", "postgres-audit"},
        Client{"alice", "audit-3", "audited", "alice-audited-db"}}) {
    pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", std::string("SELECT '") + c.mark + "'"},
                                     {{"PGUSER", c.user}, {"PGAPPNAME", c.app}, {"PGDATABASE", c.database}});
    ASSERT_TRUE(r.ok()) << c.mark << ": " << r.describe();
  }
  std::string metrics = proxy.scrape_metrics();
  EXPECT_NE(metrics.find("\npgproxy_sql_log_statements_left_out_total{reason=\"session\"} 2\n"), std::string::npos)
      << metrics;
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(pt::lines_of(log).size(), 2u) << log;
  EXPECT_EQ(lines_containing(log, "'alice-audit'"), 1) << log;
  EXPECT_EQ(lines_containing(log, "'alice-audited-db'"), 1) << log;
  // The capture has every session: pgdump-log shows the statements the log left out.
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", proxy.capture()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  for (const char* mark : {"'alice-audit'", "'alice-other'", "'postgres-audit'", "'alice-audited-db'"}) {
    EXPECT_EQ(lines_containing(dump.out, mark), 1) << mark << "\n" << dump.out;
  }
}

// --capture-filter-same: the capture too keeps only the selected sessions, judged on the startup
// packet; a CancelRequest (no user) is not one of them.
TEST_F(PgproxyLogSelectionTest, CaptureFilterSameKeepsOnlySelectedSessionsInTheCapture) {
  ProxyProcess proxy(
      pg(), {"--log-user", "^alice$", "--capture-filter-same", "--capture-backend", "--metrics-listen", "127.0.0.1:0"});
  for (const char* user : {"alice", "postgres", "alice"}) {
    pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", std::string("SELECT 'by ") + user + "'"}, {{"PGUSER", user}});
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  std::string metrics = proxy.scrape_metrics();
  EXPECT_NE(metrics.find("\npgproxy_capture_sessions_left_out_total 1\n"), std::string::npos) << metrics;
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", proxy.capture()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  EXPECT_EQ(lines_containing(dump.out, "'by alice'"), 2) << dump.out;
  EXPECT_EQ(lines_containing(dump.out, "'by postgres'"), 0) << dump.out;
  // The SQL log and the capture agree line for line.
  EXPECT_EQ(dump.out, pt::read_text_file(proxy.sql_log()));
  pt::CommandResult stats = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--stats", proxy.capture()});
  ASSERT_TRUE(stats.ok()) << stats.describe();
  EXPECT_NE(stats.out.find("Sessions: 2 "), std::string::npos) << stats.out;
}

TEST(PgproxyLogSelectionOptions, CaptureFilterSameNeedsSessionPatterns) {
  pt::CommandResult r = pt::run_command({pt::tool_path("pgproxy"), "--listen", "127.0.0.1:0", "--upstream",
                                         "127.0.0.1:1", "--capture-filter-same", "--log-min-duration-ms", "5"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("--capture-filter-same needs --log-user, --log-database or --log-application"),
            std::string::npos)
      << r.err;
}

TEST_F(PgproxyLogSelectionTest, DatabasePatternsSelectToo) {
  ProxyProcess proxy(pg(), {"--log-database", "^audited$"});
  for (const char* db : {"postgres", "audited"}) {
    pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", std::string("SELECT 'in ") + db + "'"}, {{"PGDATABASE", db}});
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(pt::lines_of(log).size(), 1u) << log;
  EXPECT_EQ(lines_containing(log, "'in audited'"), 1) << log;
}

TEST_F(PgproxyLogSelectionTest, MinDurationKeepsSlowStatementsAndErrors) {
  ProxyProcess proxy(pg(), {"--log-min-duration-ms", "50"});
  for (const char* sql : {"SELECT pg_sleep(0.1)", "SELECT 'fast'", "SELECT 1/0"}) {
    (void)proxy.psql(pg(), {"-At", "-c", sql});
  }
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(pt::lines_of(log).size(), 2u) << log;
  EXPECT_EQ(lines_containing(log, "sql: SELECT pg_sleep(0.1)"), 1) << log;
  EXPECT_EQ(lines_containing(log, "query error"), 1) << log;  // the error, however fast
  EXPECT_EQ(lines_containing(log, "'fast'"), 0) << log;
}

TEST_F(PgproxyLogSelectionTest, RedactedParamsKeepPositionsAndTypesButNoValues) {
  ProxyProcess proxy(pg(), {"--log-params", "redacted"});
  pt::CommandResult r = proxy.client(pg(), "pgbench", {"-n", "-S", "-M", "prepared", "-t", "5"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  // pgbench -S: one parameter per Execute, its type left to the server (Parse gave 0) and never described.
  EXPECT_EQ(lines_containing(log, " params=($1) "), 5) << log;
  EXPECT_EQ(lines_containing(log, "$1='"), 0) << log;
}

TEST_F(PgproxyLogSelectionTest, NoParamsInJsonAndLongQueriesCut) {
  ProxyProcess proxy(pg(), {"--log-params", "none", "--log-format", "json", "--log-max-query-bytes", "100"});
  pt::CommandResult r = proxy.client(pg(), "pgbench", {"-n", "-S", "-M", "extended", "-t", "3"});
  ASSERT_TRUE(r.ok()) << r.describe();
  r = proxy.psql(pg(), {"-At", "-c", "SELECT '" + std::string(300, 'x') + "'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(lines_containing(log,
                             "\"params\":null,\"param_formats\":null,\"param_types\":null,"
                             "\"param_type_oids\":null,"),
            static_cast<int>(pt::lines_of(log).size()))
      << log;
  EXPECT_EQ(lines_containing(log, "\"query\":\"SELECT '" + std::string(92, 'x') + "\",\"query_truncated\":true"), 1)
      << log;
}

TEST(PgproxyLogSelectionOptions, APatternThatDoesNotCompileStopsTheStart) {
  pt::CommandResult r = pt::run_command(
      {pt::tool_path("pgproxy"), "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--log-user", "a(b"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("--log-user 'a(b': "), std::string::npos) << r.err;
}

}  // namespace
