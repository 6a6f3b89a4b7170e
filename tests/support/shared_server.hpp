// A GoogleTest suite whose tests share one throwaway PostgreSQL (TempPostgres),
// started before the suite's first test and stopped after its last:
//
//   class MyTest : public pgwire::test::SharedServerTest<MyTest> {};
//   TEST_F(MyTest, Something) { ... pg() ... }
//
// A suite that needs other server settings, or data loaded once, defines
//   static TempPostgresOptions server_options();
//   static void prepare(TempPostgres& pg);   // may throw to fail the suite
#pragma once

#include <gtest/gtest.h>

#include "pg_server.hpp"

namespace pgwire::test {

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
