// The man pages the build writes (docs/man/, <build>/man/TOOL.1): man renders each without a
// groff warning, with the project's version, and every long option the built tool's --help lists
// is in the rendered page.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "help_options.hpp"
#include "subprocess.hpp"

namespace pgwire {
namespace {

const std::string kBinaryDir = PGWIRE_BINARY_DIR;

class ManPage : public testing::TestWithParam<std::string> {};

// Whether `text` has `word` not followed by more of an option name ("--log" is not in "--log-user").
bool has_option(const std::string& text, const std::string& word) {
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const size_t end = at + word.size();
    if (end == text.size() || !(std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '-')) return true;
  }
  return false;
}

TEST_P(ManPage, RendersWithoutWarningsAndHasEveryOption) {
  const std::string tool = GetParam();
  const std::string page = kBinaryDir + "/man/" + tool + ".1";
  test::CommandResult help = test::run_command({kBinaryDir + "/tools/" + tool + "/" + tool, "--help"});
  ASSERT_TRUE(help.ok()) << help.describe();

  // -l: this file, not an installed page; every groff warning on; wide, so that no option
  // could be broken across lines (the pages also turn hyphenation off).
  test::CommandResult man =
      test::run_command({"man", "--warnings=all,mac", "-E", "UTF-8", "-l", page},
                        {{"LC_ALL", "C.UTF-8"}, {"MANWIDTH", "200"}, {"MANPAGER", "cat"}, {"PAGER", "cat"}});
  ASSERT_TRUE(man.ok()) << man.describe();
  EXPECT_EQ(man.err, "") << "warnings rendering " << page;
  EXPECT_NE(man.out.find("pgwire-toolkit " PGWIRE_PROJECT_VERSION), std::string::npos) << man.out;
  std::string upper = tool;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  EXPECT_TRUE(man.out.starts_with(upper + "(1)")) << man.out.substr(0, 200);

  const auto options = test::help_long_options(help.out);
  EXPECT_GE(options.size(), 5u) << help.out;
  for (const test::HelpOption& o : options) {
    EXPECT_TRUE(has_option(man.out, o.name)) << o.name << " of " << tool << " --help is not in " << page;
  }
}

// "pgdump-log" -> "pgdump_log": test names are identifiers.
std::string tool_test_name(const testing::TestParamInfo<std::string>& param) {
  std::string name = param.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryTool, ManPage, testing::Values("pgproxy", "pgdump-log", "pgreplay"), tool_test_name);

}  // namespace
}  // namespace pgwire
