// Several pgproxy processes on one address (--reuse-port): the kernel spreads the clients among
// them, each writes its own SQL log and capture, and together they have every statement; and a
// second process pointed at files another one is writing refuses to start, leaving them intact.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
using pt::lines_of;
using pt::ProxyProcess;

namespace {

class PgproxyReusePortTest : public pt::SharedServerTest<PgproxyReusePortTest> {
 public:
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

std::string upstream_of(const pt::TempPostgres& pg) { return pg.host() + ":" + std::to_string(pg.port()); }

// The SQL log lines of pgbench -S's own statement.
int select_lines(const std::string& log) {
  int n = 0;
  for (const std::string& line : lines_of(log)) {
    if (line.find("sql: SELECT abalance FROM pgbench_accounts WHERE aid = ") != std::string::npos) ++n;
  }
  return n;
}

std::string pgdump_log() { return std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log"; }

TEST_F(PgproxyReusePortTest, TwoProcessesShareOneAddressAndTogetherLogEveryStatement) {
  ProxyProcess first(pg(), {"--reuse-port", "--capture-backend"});
  const std::string address = "127.0.0.1:" + std::to_string(first.port());
  ProxyProcess second(pt::ProxyOptions{upstream_of(pg()), {"--reuse-port", "--capture-backend"}, {}, {}, address});
  EXPECT_NE(second.output().find("listening on " + address), std::string::npos) << second.output();

  // 24 connections: the chance that the kernel gives all of them to one process is 2^-23.
  constexpr int kClients = 24;
  constexpr int kPerClient = 25;
  pt::CommandResult r = first.client(
      pg(), "pgbench", {"-n", "-S", "-c", std::to_string(kClients), "-j", "2", "-t", std::to_string(kPerClient)});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(first.stop(), 0) << first.output();
  ASSERT_EQ(second.stop(), 0) << second.output();

  const int in_first = select_lines(pt::read_text_file(first.sql_log()));
  const int in_second = select_lines(pt::read_text_file(second.sql_log()));
  EXPECT_EQ(in_first + in_second, kClients * kPerClient);
  EXPECT_GT(in_first, 0);
  EXPECT_GT(in_second, 0);
  RecordProperty("statements_first", std::to_string(in_first));
  RecordProperty("statements_second", std::to_string(in_second));

  // pgdump-log reads both captures as one: every statement once.
  pt::CommandResult merged =
      pt::run_command({pgdump_log(), "--no-progress", "--format", "sql", first.capture(), second.capture()});
  ASSERT_TRUE(merged.ok()) << merged.describe();
  EXPECT_EQ(select_lines(merged.out), kClients * kPerClient);
}

TEST_F(PgproxyReusePortTest, WithoutItASecondProcessCannotListenOnTheAddress) {
  ProxyProcess first(pg(), {"--reuse-port"});
  const std::string address = "127.0.0.1:" + std::to_string(first.port());
  try {
    ProxyProcess second(pt::ProxyOptions{upstream_of(pg()), {}, {}, {}, address});
    ADD_FAILURE() << "a second pgproxy without --reuse-port started on " << address << ":\n" << second.output();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Address already in use"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(first.alive());
}

TEST_F(PgproxyReusePortTest, ASecondProcessGivenTheSameFilesRefusesToStartAndLeavesThemAlone) {
  ProxyProcess first(pg(), {"--reuse-port", "--capture-backend"});
  pt::CommandResult r = first.psql(pg(), {"-c", "SELECT 'before the second process'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  const std::string address = "127.0.0.1:" + std::to_string(first.port());

  // The same capture (each with its own SQL log), then the same SQL log (each its own capture).
  struct Case {
    const char* what;
    std::string sql_log;
    std::string capture;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"capture", "", first.capture(), "the capture "},
      {"SQL log", first.sql_log(), "", "the SQL log "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    try {
      ProxyProcess second(pt::ProxyOptions{upstream_of(pg()), {"--reuse-port"}, c.sql_log, c.capture, address});
      ADD_FAILURE() << "a second pgproxy writing the first one's " << c.what << " started:\n" << second.output();
    } catch (const std::runtime_error& e) {
      const std::string why = e.what();
      EXPECT_NE(why.find(c.message), std::string::npos) << why;
      EXPECT_NE(why.find("is being written by another process"), std::string::npos) << why;
    }
  }

  r = first.psql(pg(), {"-c", "SELECT 'after the second process'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(first.stop(), 0) << first.output();
  // Nothing renamed or cut: the first process's files have both statements, in order.
  const std::string log = pt::read_text_file(first.sql_log());
  const size_t before = log.find("SELECT 'before the second process'");
  const size_t after = log.find("SELECT 'after the second process'");
  EXPECT_NE(before, std::string::npos) << log;
  EXPECT_NE(after, std::string::npos) << log;
  EXPECT_LT(before, after);
  pt::CommandResult offline = pt::run_command({pgdump_log(), "--no-progress", "--format", "sql", first.capture()});
  ASSERT_TRUE(offline.ok()) << offline.describe();
  EXPECT_EQ(offline.out, log);
  EXPECT_EQ(first.output().find("an earlier capture was at"), std::string::npos) << first.output();
}

}  // namespace
