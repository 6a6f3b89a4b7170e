// One version for everything: project(VERSION) in the top CMakeLists.txt,
// which CMake hands to this test as PGWIRE_PROJECT_VERSION and to the code
// through the generated pgwire/version.hpp. Every tool's --version says it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "pgwire/version.hpp"
#include "subprocess.hpp"

namespace pgwire {
namespace {

const std::string kProjectVersion = PGWIRE_PROJECT_VERSION;

TEST(Version, GeneratedHeaderHasTheProjectVersion) {
  EXPECT_EQ(std::string(kVersion), kProjectVersion);
  EXPECT_EQ(std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor) + "." + std::to_string(kVersionPatch),
            kProjectVersion);
}

class ToolVersion : public testing::TestWithParam<std::string> {};

TEST_P(ToolVersion, PrintsTheProjectVersion) {
  const std::string tool = GetParam();
  test::CommandResult r =
      test::run_command({std::string(PGWIRE_BINARY_DIR) + "/tools/" + tool + "/" + tool, "--version"});
  ASSERT_TRUE(r.ok()) << tool << ": " << r.describe();
  EXPECT_EQ(r.out, tool + " " + kProjectVersion + "\n");
  EXPECT_EQ(r.err, "");
}

// "pgdump-log" -> "pgdump_log": test names are identifiers.
std::string tool_test_name(const testing::TestParamInfo<std::string>& param) {
  std::string name = param.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryTool, ToolVersion, testing::Values("pgproxy", "pgdump-log", "pgreplay"), tool_test_name);

}  // namespace
}  // namespace pgwire
