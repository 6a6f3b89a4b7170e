// A GoogleTest suite whose tests share one throwaway PostgreSQL (TempPostgres),
// started before the suite's first test and stopped after its last:
//
//   class MyTest : public pgwire::test::SharedServerTest<MyTest> {};
//   TEST_F(MyTest, Something) { ... pg() ... }
//
// A suite that needs other server settings, or data loaded once, defines
//   static TempPostgresOptions server_options();
//   static void prepare(TempPostgres& pg);   // may throw to fail the suite
// (pgbench_init(pg) for pgbench's tables).
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "pg_server.hpp"
#include "subprocess.hpp"

namespace pgwire::test {

// pgbench -i -q -s SCALE into the server's default database; throws (failing
// the suite that prepares with it) if pgbench fails.
inline void pgbench_init(TempPostgres& pg, int scale = 1) {
  CommandOptions o;
  o.env = pg.client_env();
  CommandResult r = run_command({pg.bindir() + "/pgbench", "-i", "-q", "-s", std::to_string(scale)}, o);
  if (!r.ok()) throw std::runtime_error("pgbench -i: " + r.describe());
}

template <class Suite>
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new TempPostgres(Suite::server_options());
    Suite::prepare(*server_);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static TempPostgres& pg() { return *server_; }

  // Defaults, hidden by a suite's own.
  static TempPostgresOptions server_options() { return {}; }
  static void prepare(TempPostgres&) {}

 private:
  static inline TempPostgres* server_ = nullptr;
};

}  // namespace pgwire::test
