// pgdump-log on captures of real traffic (corpus/captures/, made from the
// recordings in corpus/recorded/ by scripts/update-golden-outputs.sh):
// golden outputs for every format, and every kind of damage.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <random>
#include <sstream>

#include "pgwire/capture.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"

namespace pgwire {
namespace {

const std::string kCorpus = PGWIRE_CORPUS_DIR;
const std::string kTool = std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log";

using test::slurp;
using test::spit;

test::CommandResult dump(std::vector<std::string> args) {
  args.insert(args.begin(), {kTool, "--no-progress"});
  return test::run_command(args);
}

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "pgdump_log_test_" + std::to_string(getpid()) + "_" + name;
}

class Golden : public testing::TestWithParam<std::string> {};

TEST_P(Golden, EveryFormatMatchesTheReference) {
  const std::string name = GetParam();
  const std::string cap = kCorpus + "/captures/" + name + ".pgwcap";
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  for (const Case& c : {Case{{}, ".sql"}, Case{{"--format", "json"}, ".json"}, Case{{"--format", "trace"}, ".trace"},
                        Case{{"--stats"}, ".stats"}, Case{{"--format", "csvlog"}, ".csvlog"}}) {
    std::vector<std::string> args = c.args;
    args.push_back(cap);
    test::CommandResult r = dump(args);
    ASSERT_TRUE(r.ok()) << name << c.expected << ": " << r.describe();
    EXPECT_EQ(r.out, slurp(kCorpus + "/expected/" + name + c.expected)) << name << c.expected;
    EXPECT_EQ(r.err, "");
  }
}

INSTANTIATE_TEST_SUITE_P(RealTraffic, Golden,
                         testing::Values("psql_multi", "copy_in_out", "pgbench_simple", "pgbench_extended",
                                         "pgbench_prepared", "pipeline_error", "scram_login", "cancel"));

TEST(PgdumpLog, SqlAndJsonAgreeLineForLine) {
  const std::string cap = kCorpus + "/captures/pgbench_prepared.pgwcap";
  test::CommandResult sql = dump({cap});
  test::CommandResult json = dump({"--format", "json", cap});
  test::CommandResult json2 = dump({"--log-format", "json", cap});
  ASSERT_TRUE(sql.ok() && json.ok() && json2.ok());
  EXPECT_EQ(std::count(sql.out.begin(), sql.out.end(), '\n'), std::count(json.out.begin(), json.out.end(), '\n'));
  EXPECT_EQ(json.out, json2.out);
  EXPECT_NE(json.out.find("\"kind\":\"execute\",\"statement\":\"P_1\""), std::string::npos);
}

TEST(PgdumpLog, FrontendOnlyCaptureHasUnknownOutcomes) {
  test::CommandResult r = dump({kCorpus + "/captures/pgbench_extended_frontend_only.pgwcap"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/pgbench_extended_frontend_only.sql"));
  EXPECT_EQ(r.out.find(" ok "), std::string::npos);
  EXPECT_NE(r.out.find(" execute unknown "), std::string::npos);
}

TEST(PgdumpLog, HideVolatileTraceAndRedactedSecrets) {
  test::CommandResult r = dump({"--format", "trace", "--hide-volatile", kCorpus + "/captures/scram_login.pgwcap"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/scram_login.hidden.trace"));
  EXPECT_NE(r.out.find("SASLInitialResponse <redacted>"), std::string::npos);
  EXPECT_NE(r.out.find("BackendKeyData <pid> <key>"), std::string::npos);
}

TEST(PgdumpLog, SeveralFilesMergeInTimeOrder) {
  test::CommandResult r = dump({kCorpus + "/captures/psql_multi.pgwcap", kCorpus + "/captures/pgbench_simple.pgwcap"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/merged.sql"));
  // Timestamps never go backwards across the merged output.
  std::istringstream lines(r.out);
  std::string line, prev;
  while (std::getline(lines, line)) {
    EXPECT_LE(prev.substr(0, 27), line.substr(0, 27));
    prev = line;
  }
}

TEST(PgdumpLog, Filters) {
  const std::string cap = kCorpus + "/captures/pgbench_simple.pgwcap";
  test::CommandResult r = dump({"--grep", "^UPDATE pgbench_tellers", cap});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5);
  r = dump({"--session", "1", cap});  // pgbench's first connection: its two catalog queries
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  r = dump({"--user", "nobody", cap});
  EXPECT_EQ(r.out, "");
  r = dump({"--until", "2000-01-01", cap});
  EXPECT_EQ(r.out, "");
  r = dump({"--since", "2000-01-01T00:00:00Z", cap});
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 37);
  r = dump({"--since", "yesterday", cap});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot read the time"), std::string::npos);
}

TEST(PgdumpLog, StatsJsonHasTheFigures) {
  test::CommandResult r = dump({"--stats", "--stats-format", "json", kCorpus + "/captures/pgbench_prepared.pgwcap"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/pgbench_prepared.stats.json"));
  EXPECT_NE(r.out.find("\"by_kind\":{\"execute\":35,\"query\":2}"), std::string::npos) << r.out;
  EXPECT_NE(
      // The fingerprint: FNV-1a 64 of the normalized text, computed outside this code (docs/fingerprints.md).
      r.out.find("{\"statement\":\"UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?\","
                 "\"fingerprint\":\"a8b6284bbd25d386\",\"count\":5"),
      std::string::npos);
}

// Record boundaries of a capture, read with the library's reader.
std::vector<uint64_t> record_starts(const std::string& path) {
  auto reader = CaptureReader::open(path);
  EXPECT_TRUE(reader.ok());
  std::vector<uint64_t> starts;
  CaptureRecord rec;
  for (;;) {
    uint64_t at = (*reader)->offset();
    auto r = (*reader)->next(rec);
    if (!r.ok() || !*r) break;
    starts.push_back(at);
  }
  return starts;
}

bool is_prefix_of_lines(const std::string& part, const std::string& whole) {
  // Every line printed from a damaged file is a line of the intact output, in order.
  std::istringstream a(part), b(whole);
  std::string la, lb;
  while (std::getline(a, la)) {
    bool found = false;
    while (std::getline(b, lb)) {
      if (lb == la) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

TEST(PgdumpLog, TruncatedAtEveryRecordBoundaryAndInside) {
  const std::string cap = kCorpus + "/captures/pipeline_error.pgwcap";
  const std::string bytes = slurp(cap);
  const std::string full = dump({"--format", "trace", cap}).out;
  std::vector<uint64_t> starts = record_starts(cap);
  ASSERT_GT(starts.size(), 10u);
  std::mt19937 rng(42);
  std::vector<uint64_t> cuts = starts;
  for (size_t i = 0; i + 1 < starts.size(); ++i) {
    cuts.push_back(starts[i] + 1 + rng() % (starts[i + 1] - starts[i] - 1));
  }
  const std::string path = temp_path("trunc.pgwcap");
  for (uint64_t cut : cuts) {
    spit(path, std::string_view(bytes).substr(0, cut));
    test::CommandResult r = dump({"--format", "trace", path});
    bool boundary = std::find(starts.begin(), starts.end(), cut) != starts.end();
    if (boundary) {
      // A clean end: the output is what the records before the cut hold.
      EXPECT_EQ(r.exit_code, 0) << "cut " << cut << ": " << r.describe();
    } else {
      EXPECT_EQ(r.exit_code, 1) << "cut " << cut;
      EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
      // The offset reported is the start of the cut record.
      uint64_t record = *std::prev(std::upper_bound(starts.begin(), starts.end(), cut));
      EXPECT_NE(r.err.find("offset " + std::to_string(record)), std::string::npos) << "cut " << cut << ": " << r.err;
    }
    EXPECT_TRUE(is_prefix_of_lines(r.out, full)) << "cut " << cut;
  }
  std::remove(path.c_str());
}

TEST(PgdumpLog, FlippedByteIsReportedNeverPrinted) {
  const std::string cap = kCorpus + "/captures/psql_multi.pgwcap";
  std::string bytes = slurp(cap);
  const std::string full = dump({"--format", "trace", cap}).out;
  std::vector<uint64_t> starts = record_starts(cap);
  const std::string path = temp_path("flip.pgwcap");
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) {
    size_t at = starts[1] + rng() % (bytes.size() - starts[1]);
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ (1 << (rng() % 8)));
    spit(path, damaged);
    test::CommandResult r = dump({"--format", "trace", path});
    EXPECT_EQ(r.exit_code, 1) << "flip at " << at;
    EXPECT_NE(r.err.find("damaged"), std::string::npos) << r.err;
    EXPECT_TRUE(is_prefix_of_lines(r.out, full)) << "flip at " << at;
  }
  std::remove(path.c_str());
}

TEST(PgdumpLog, EmptyFileAndNotACaptureAndMissingFile) {
  const std::string empty = temp_path("empty.pgwcap");
  spit(empty, "");
  test::CommandResult r = dump({empty});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a pgwire capture"), std::string::npos) << r.err;
  r = dump({kCorpus + "/recorded/README.md"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad magic at offset 0"), std::string::npos) << r.err;
  r = dump({"/nonexistent/file.pgwcap"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/file.pgwcap"), std::string::npos);
  r = dump({"--check", kCorpus + "/captures/copy_in_out.pgwcap"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("OK: ", 0), 0u) << r.out;
  std::remove(empty.c_str());
}

TEST(PgdumpLog, UnknownRecordTypeFromANewerWriterIsSkipped) {
  const std::string path = temp_path("newer.pgwcap");
  {
    auto w = CaptureWriter::create(path);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->session_open(1, 1000, "127.0.0.1:1", "127.0.0.1:2").ok());
    std::string unknown = "a record type from the future";
    ASSERT_TRUE((*w)->raw_record(999, as_bytes(unknown)).ok());
    // StartupMessage 3.0 with no parameters: length 9, code 196608, terminator.
    std::string startup("\0\0\0\x09\0\x03\0\0\0", 9);
    Frame s;
    s.kind = FrameKind::kStartup;
    s.length = 9;
    s.body = as_bytes(std::string_view(startup).substr(4));
    ASSERT_TRUE((*w)->frame(1, 1500, Direction::kFrontend, s).ok());
    // Query "SELECT 1" written by hand: 'Q', length 13, text, NUL.
    std::string q("Q\0\0\0\x0dSELECT 1\0", 14);
    Frame f;
    f.type = 'Q';
    f.length = 13;
    f.body = as_bytes(std::string_view(q).substr(5));
    ASSERT_TRUE((*w)->frame(1, 2000, Direction::kFrontend, f).ok());
    ASSERT_TRUE((*w)->close().ok());
  }
  test::CommandResult r = dump({"--format", "trace", path});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("F 13 Query \"SELECT 1\""), std::string::npos) << r.out;
  std::remove(path.c_str());
}

TEST(PgdumpLog, StdinInput) {
  test::CommandOptions opts;
  opts.stdin_data = slurp(kCorpus + "/captures/cancel.pgwcap");
  test::CommandResult r = test::run_command({kTool, "-"}, opts);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, slurp(kCorpus + "/expected/cancel.sql"));
}

}  // namespace
}  // namespace pgwire
