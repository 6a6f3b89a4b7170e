// pgproxy's selective SQL log against a real server and real clients: --log-user,
// --log-database, --log-application (sessions), --log-min-duration-ms (statements),
// --log-params (what of the parameters), --log-max-query-bytes. The capture keeps every session,
// checked with pgdump-log.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include "loopback.hpp"
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
    r = pt::run_command({pg.bindir() + "/pgbench", "-i", "-q", "-s", "1"}, o);
    if (!r.ok()) throw std::runtime_error("pgbench -i: " + r.describe());
  }
};

// The metrics endpoint's text (a plain GET on a raw socket).
std::string metrics_text(const ProxyProcess& proxy) {
  std::smatch m;
  std::string out = proxy.output();
  if (!std::regex_search(out, m, std::regex(R"(metrics: http://127\.0\.0\.1:(\d+)/metrics)"))) return {};
  int fd = pt::connect_to_loopback(static_cast<uint16_t>(std::stoi(m[1])), 10, 10);
  const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  EXPECT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(fd);
  return got;
}

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
  std::string metrics = metrics_text(proxy);
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
