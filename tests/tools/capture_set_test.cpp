// pgdump-log and pgreplay on a rotated set: a recorded corpus capture cut in
// two at a record boundary, the halves given headers of one set (written by
// hand from docs/capture-format.md, capture_builder.hpp), the second one
// starting as pgproxy starts a file after a rotation (the SessionOpen and
// capture_backend of every session still open) and compressed by the zstd
// CLI. Read as a directory, the set gives what the whole capture gives.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "capture_builder.hpp"
#include "pgwire/capture.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;

const std::string kCorpus = PGWIRE_CORPUS_DIR;
const std::string kDumpLog = std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log";
const std::string kReplay = std::string(PGWIRE_BINARY_DIR) + "/tools/pgreplay/pgreplay";

using test::slurp;
using test::spit;

test::CommandResult run(const std::string& tool, std::vector<std::string> args) {
  args.insert(args.begin(), {tool, "--no-progress"});
  return test::run_command(args);
}

struct OpenSession {
  int64_t ts = 0;
  std::string client, server;
  std::string capture_backend;
};

// The corpus capture split into a rotated set of two files in a directory.
class CaptureSet : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    const std::string bytes = slurp(whole_);
    auto reader = CaptureReader::open(whole_);
    ASSERT_TRUE(reader.ok()) << reader.error().describe();
    const uint64_t first = (*reader)->offset();  // after the 1.0 header
    // Cut at the first frame record in the second half, where a session is open.
    std::map<uint64_t, OpenSession> open;
    CaptureRecord rec;
    uint64_t cut = 0;
    for (;;) {
      const uint64_t at = (*reader)->offset();
      Result<bool> more = (*reader)->next(rec);
      ASSERT_TRUE(more.ok()) << more.error().describe();
      ASSERT_TRUE(*more) << "no cut found";
      if (at > bytes.size() / 2 && rec.type == CaptureRecordType::kFrame && !open.empty()) {
        cut = at;
        break;
      }
      if (rec.type == CaptureRecordType::kSessionOpen) {
        open[rec.session_id] = {rec.ts_ns, std::string(rec.client), std::string(rec.server), ""};
      } else if (rec.type == CaptureRecordType::kSessionClose) {
        open.erase(rec.session_id);
      } else if (rec.type == CaptureRecordType::kSessionMeta && rec.key == "capture_backend") {
        open[rec.session_id].capture_backend = std::string(as_string_view(rec.value));
      }
    }
    spanning_ = open.size();
    const auto slice = [&](uint64_t from, uint64_t to) {
      const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
      return ByteVec(p + from, p + to);
    };
    constexpr uint64_t kSet = 0x5e7c0ffee0000001;
    first_ = dir_ + "/capture-20261202T174000Z.pgwcap";
    spit(first_, test::cap_cat({test::cap_header(kSet, 0, 1000), slice(first, cut)}));
    // The next file starts as pgproxy starts one after a rotation.
    ByteVec second = test::cap_header(kSet, 1, 2000);
    for (const auto& [id, s] : open) {
      const ByteVec r = test::cap_open(id, s.ts, s.client, s.server);
      second.insert(second.end(), r.begin(), r.end());
      if (s.capture_backend.empty()) continue;
      const ByteVec m = test::cap_meta(id, s.ts, "capture_backend", s.capture_backend);
      second.insert(second.end(), m.begin(), m.end());
    }
    const ByteVec rest = slice(cut, bytes.size());
    second.insert(second.end(), rest.begin(), rest.end());
    const std::string second_plain = dir_ + "/capture.pgwcap";
    spit(second_plain, second);
    test::CommandResult z = test::run_command({"zstd", "-q", "--rm", second_plain, "-o", second_plain + ".zst"});
    ASSERT_TRUE(z.ok()) << z.describe();
    second_ = second_plain + ".zst";
    // Not a capture: left out.
    spit(dir_ + "/sql.log", ByteVec(10, std::byte{'x'}));
  }

  std::string whole_ = kCorpus + "/captures/pgbench_prepared.pgwcap";
  test::TempDir tmp_{"capture_set_test"};
  std::string dir_, first_, second_;
  size_t spanning_ = 0;
};

TEST_F(CaptureSet, PgdumpLogReadsTheDirectoryAsTheWholeCapture) {
  ASSERT_GE(spanning_, 1u);
  for (const char* expected : {".sql", ".stats", ".json"}) {
    std::vector<std::string> args;
    if (std::string(expected) == ".stats") args.push_back("--stats");
    if (std::string(expected) == ".json") args = {"--format", "json"};
    args.push_back(dir_);
    test::CommandResult r = run(kDumpLog, args);
    ASSERT_TRUE(r.ok()) << expected << ": " << r.describe();
    EXPECT_EQ(r.out, slurp(kCorpus + "/expected/pgbench_prepared" + expected)) << expected;
    EXPECT_EQ(r.err, "") << expected;
  }
  // A glob: the same files as a list, in any order.
  test::CommandResult r = run(kDumpLog, {second_, first_});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/pgbench_prepared.sql"));
}

TEST_F(CaptureSet, PgdumpLogOnALaterFileAloneReportsPartialSessions) {
  test::CommandResult r = run(kDumpLog, {"--check", second_});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.out.find("partial sessions"), std::string::npos) << r.out;
  // Once per session that was open at the cut and went on.
  size_t said = 0;
  for (size_t at = r.err.find("is partial"); at != std::string::npos; at = r.err.find("is partial", at + 1)) ++said;
  EXPECT_GE(said, 1u) << r.err;
  EXPECT_LE(said, spanning_) << r.err;
  EXPECT_NE(r.err.find("warning: capture set 5e7c0ffee0000001: index 0 not read"), std::string::npos) << r.err;

  // Their statements are still there, with their user unknown; the others are as in the whole capture.
  r = run(kDumpLog, {second_});
  ASSERT_TRUE(r.ok()) << r.describe();
  const std::string whole = slurp(kCorpus + "/expected/pgbench_prepared.sql");
  std::istringstream lines(r.out);
  std::string line;
  size_t unknown_user = 0;
  while (std::getline(lines, line)) {
    if (line.find(" user=\"\" db=\"\" ") != std::string::npos) {
      ++unknown_user;
    } else {
      EXPECT_NE(whole.find(line + "\n"), std::string::npos) << line;
    }
  }
  EXPECT_GT(unknown_user, 0u) << r.out;

  r = run(kDumpLog, {"--stats", second_});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.out.find("  partial: "), std::string::npos) << r.out;
}

TEST_F(CaptureSet, PgreplayDryRunOfTheDirectoryIsThatOfTheWholeCapture) {
  test::CommandResult whole = run(kReplay, {"--dry-run", whole_});
  ASSERT_TRUE(whole.ok()) << whole.describe();
  test::CommandResult set = run(kReplay, {"--dry-run", dir_});
  ASSERT_TRUE(set.ok()) << set.describe();
  EXPECT_EQ(set.out, whole.out);
  EXPECT_EQ(set.err, whole.err);

  test::CommandResult later = run(kReplay, {"--dry-run", second_});
  ASSERT_TRUE(later.ok()) << later.describe();
  EXPECT_NE(later.out.find("is partial (began before the capture data read): would be skipped"), std::string::npos)
      << later.out;
  EXPECT_NE(later.err.find("index 0 not read"), std::string::npos) << later.err;
}

TEST(CaptureSetHelp, BothToolsSayTheyReadDirectoriesAndZstd) {
  for (const std::string& tool : {kDumpLog, kReplay}) {
    test::CommandResult r = test::run_command({tool, "--help"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("directories"), std::string::npos) << tool;
    EXPECT_NE(r.out.find("zstd"), std::string::npos) << tool;
    EXPECT_NE(r.out.find("rotated set"), std::string::npos) << tool;
  }
}

}  // namespace
}  // namespace pgwire
