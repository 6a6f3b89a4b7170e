// MergedReader: several captures as one stream; the files of a rotated set as
// one input, read in set_index order with one session-id space; directories;
// gaps, duplicates and damage in a set. Files are built by hand
// (capture_builder.hpp) or compressed by the zstd CLI.
#include "pgwire/capture_merge.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "capture_builder.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;
using test::cap_cat;
using test::cap_close;
using test::cap_frame;
using test::cap_header;
using test::cap_meta;
using test::cap_open;

using test::TempDir;

// What the zstd CLI makes of a file.
std::string zstd_file(const std::string& path) {
  test::CommandResult r = test::run_command({"zstd", "-q", "-f", path, "-o", path + ".zst"});
  EXPECT_TRUE(r.ok()) << r.describe();
  return path + ".zst";
}

// A record as read, in a form easy to compare: "open 1 @10", "frame 1 @11 Q", "close 1 @12 eof".
std::vector<std::string> read_all(MergedReader& r, std::vector<std::string>* files = nullptr) {
  std::vector<std::string> out;
  while (const CaptureRecord* rec = r.next()) {
    std::string line;
    switch (rec->type) {
      case CaptureRecordType::kSessionOpen: line = "open"; break;
      case CaptureRecordType::kFrame: line = "frame"; break;
      case CaptureRecordType::kSessionClose: line = "close"; break;
      case CaptureRecordType::kSessionMeta: line = "meta"; break;
    }
    line += " " + std::to_string(rec->session_id) + " @" + std::to_string(rec->ts_ns);
    if (rec->type == CaptureRecordType::kFrame) line += " " + std::string(as_string_view(rec->data));
    if (rec->type == CaptureRecordType::kSessionClose) line += " " + std::string(rec->reason);
    if (rec->type == CaptureRecordType::kSessionMeta) line += " " + std::string(rec->key);
    out.push_back(line);
    if (files) files->push_back(std::filesystem::path(r.current_file()).filename().string());
  }
  return out;
}

ByteVec data(std::string_view s) { return ByteVec(as_bytes(s).begin(), as_bytes(s).end()); }
ByteVec frame(uint64_t sid, int64_t ts, std::string_view text) { return cap_frame(sid, ts, 0, 0, data(text)); }

constexpr uint64_t kSet = 0x1a2b3c4d5e6f7081;

TEST(MergedReader, SetFilesAreOneInputInIndexOrder) {
  TempDir dir;
  // Index 0: sessions 1 and 2 open. Index 1: the writer repeats their
  // SessionOpen (and a meta record), and its clock went back a little.
  std::string f0 = dir.write(
      "capture-20261202T174000Z.pgwcap",
      cap_cat({cap_header(kSet, 0, 100), cap_open(1, 10), frame(1, 11, "a"), cap_open(2, 12), frame(2, 30, "b")}));
  std::string f1 = dir.write(
      "capture.pgwcap", cap_cat({cap_header(kSet, 1, 200), cap_open(1, 10), cap_meta(1, 10, "capture_backend", "1"),
                                 cap_open(2, 12), frame(1, 25, "c"), cap_close(1, 26), frame(2, 27, "d")}));
  MergedReader r;
  // Given in the wrong order: the header decides.
  std::vector<std::string> errors = r.open({f1, f0});
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_TRUE(r.warnings().empty()) << r.warnings().front();
  EXPECT_EQ(r.files(), 2u);
  EXPECT_EQ(r.inputs(), 1u);
  std::vector<std::string> files;
  EXPECT_EQ(read_all(r, &files), (std::vector<std::string>{"open 1 @10", "frame 1 @11 a", "open 2 @12", "frame 2 @30 b",
                                                           "meta 1 @10 capture_backend", "frame 1 @25 c",
                                                           "close 1 @26 eof", "frame 2 @27 d"}));
  EXPECT_EQ(files, (std::vector<std::string>{"capture-20261202T174000Z.pgwcap", "capture-20261202T174000Z.pgwcap",
                                             "capture-20261202T174000Z.pgwcap", "capture-20261202T174000Z.pgwcap",
                                             "capture.pgwcap", "capture.pgwcap", "capture.pgwcap", "capture.pgwcap"}));
  EXPECT_TRUE(r.damage().empty());
  EXPECT_EQ(r.consumed(), r.total_size());
}

TEST(MergedReader, ASetSharesItsSessionIdsOtherInputsDoNot) {
  TempDir dir;
  std::string s0 = dir.write("s0", cap_cat({cap_header(kSet, 0), cap_open(1, 10), frame(1, 12, "a")}));
  std::string s1 =
      dir.write("s1", cap_cat({cap_header(kSet, 1), cap_open(1, 10), frame(1, 14, "b"), cap_close(1, 16)}));
  // Another proxy's session 1 (a 1.0 file), and another set's.
  std::string other = dir.write("other", cap_cat({cap_header(), cap_open(1, 11), frame(1, 13, "x"), cap_close(1, 15)}));
  std::string set2 = dir.write("set2", cap_cat({cap_header(kSet + 1, 4), cap_open(1, 17), frame(1, 18, "y")}));
  MergedReader r;
  EXPECT_TRUE(r.open({s0, other, s1, set2}).empty());
  EXPECT_EQ(r.inputs(), 3u);
  // Renumbered in order of appearance: the set's session 1 is 1 in both of its files.
  EXPECT_EQ(read_all(r),
            (std::vector<std::string>{"open 1 @10", "open 2 @11", "frame 1 @12 a", "frame 2 @13 x", "frame 1 @14 b",
                                      "close 2 @15 eof", "close 1 @16 eof", "open 3 @17", "frame 3 @18 y"}));
  ASSERT_EQ(r.warnings().size(), 1u);  // the second set begins at index 4
  EXPECT_NE(r.warnings()[0].find("index 0-3 not read"), std::string::npos) << r.warnings()[0];
}

TEST(MergedReader, GapsAreWarnedAndTheSessionsOpenAtAGapEndThere) {
  TempDir dir;
  // Indexes 1 and 3 of a set: 0 and 2 were deleted (--rotate-keep).
  std::string f1 =
      dir.write("f1", cap_cat({cap_header(kSet, 1), cap_open(5, 10), frame(5, 11, "a"), frame(6, 12, "mid-session")}));
  std::string f3 = dir.write(
      "f3", cap_cat({cap_header(kSet, 3), cap_open(5, 10), frame(5, 40, "b"), frame(6, 41, "c"), cap_close(6, 42)}));
  MergedReader r;
  EXPECT_TRUE(r.open({dir.path()}).empty());
  ASSERT_EQ(r.warnings().size(), 1u);
  EXPECT_NE(r.warnings()[0].find("capture set 1a2b3c4d5e6f7081: index 0, 2 not read"), std::string::npos)
      << r.warnings()[0];
  EXPECT_NE(r.warnings()[0].find("partial"), std::string::npos);
  // Sessions 5 and 6 end at the gap, at the time of the set's last record
  // before it; what comes after it is another (partial) session of the same id.
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"open 5 @10", "frame 5 @11 a", "frame 6 @12 mid-session",
                                                   "close 5 @12 capture data missing: index 2 of the set not read",
                                                   "close 6 @12 capture data missing: index 2 of the set not read",
                                                   "open 5 @10", "frame 5 @40 b", "frame 6 @41 c", "close 6 @42 eof"}));
}

TEST(MergedReader, DamagedFileOfASetEndsItsSessionsAndTheSetGoesOn) {
  TempDir dir;
  ByteVec first = cap_cat({cap_header(kSet, 0), cap_open(1, 10), frame(1, 11, "a"), frame(1, 12, "lost")});
  first.resize(first.size() - 3);  // the last record cut off
  std::string f0 = dir.write("f0", first);
  std::string f1 =
      dir.write("f1", cap_cat({cap_header(kSet, 1), cap_open(1, 10), frame(1, 20, "b"), cap_close(1, 21)}));
  MergedReader r;
  EXPECT_TRUE(r.open({f0, f1}).empty());
  EXPECT_EQ(read_all(r),
            (std::vector<std::string>{"open 1 @10", "frame 1 @11 a",
                                      "close 1 @11 capture data missing: the rest of " + f0 + " is damaged",
                                      "open 1 @10", "frame 1 @20 b", "close 1 @21 eof"}));
  ASSERT_EQ(r.damage().size(), 1u);
  EXPECT_EQ(r.damage()[0].file, f0);
  EXPECT_EQ(r.damage()[0].error.code, Errc::kTruncated);
}

TEST(MergedReader, SameIndexTwice) {
  TempDir dir;
  ByteVec bytes = cap_cat({cap_header(kSet, 0, 100), cap_open(1, 10), frame(1, 11, "a")});
  std::string plain = dir.write("c-1.pgwcap", bytes);
  std::string compressed = zstd_file(plain);  // the same file, compressed: read once
  std::string next = dir.write("c-2.pgwcap", cap_cat({cap_header(kSet, 1, 200), frame(1, 12, "b")}));
  MergedReader r;
  // And a file given twice (itself and its directory): read once, silently.
  std::vector<std::string> errors = r.open({dir.path(), next});
  EXPECT_TRUE(errors.empty()) << errors.front();
  ASSERT_EQ(r.warnings().size(), 1u);
  EXPECT_NE(r.warnings()[0].find(plain + " and " + compressed + " hold the same file"), std::string::npos)
      << r.warnings()[0];
  EXPECT_EQ(r.files(), 2u);
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"open 1 @10", "frame 1 @11 a", "frame 1 @12 b"}));

  // Two different files that claim one index: an error naming both; the later one is not read.
  std::string impostor = dir.write("x.pgwcap", cap_cat({cap_header(kSet, 1, 300), frame(1, 13, "z")}));
  MergedReader r2;
  errors = r2.open({plain, next, impostor});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find(next + " and " + impostor + " both claim index 1"), std::string::npos) << errors[0];
  EXPECT_EQ(read_all(r2), (std::vector<std::string>{"open 1 @10", "frame 1 @11 a", "frame 1 @12 b"}));
}

TEST(MergedReader, DirectoryStandsForItsCaptureFiles) {
  TempDir dir;
  std::string f0 =
      dir.write("capture-20261202T174000Z.pgwcap", cap_cat({cap_header(kSet, 0), cap_open(1, 10), frame(1, 11, "a")}));
  std::string f1 =
      dir.write("capture-20261202T175000Z.pgwcap", cap_cat({cap_header(kSet, 1), frame(1, 12, "b"), cap_close(1, 13)}));
  zstd_file(f0);
  std::filesystem::remove(f0);  // what rotation leaves: the closed file compressed
  std::string log = dir.write("sql.log", "2026-12-02T17:40:00.000Z session=1 query ok sql: SELECT 1\n");
  zstd_file(log);
  // A compression at work: incomplete by design, left out.
  ByteVec partial = cap_cat({cap_header(kSet, 1), frame(1, 12, "b")});
  partial.resize(partial.size() - 5);
  dir.write("capture-20261202T175000Z.pgwcap.zst.tmp", partial);
  std::filesystem::create_directory(dir.path() + "/subdir");

  MergedReader r;
  std::vector<std::string> errors = r.open({dir.path()});
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_TRUE(r.warnings().empty());
  EXPECT_TRUE(r.damage().empty());
  EXPECT_EQ(r.files(), 2u);
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"open 1 @10", "frame 1 @11 a", "frame 1 @12 b", "close 1 @13 eof"}));
  EXPECT_TRUE(r.damage().empty());

  TempDir empty;
  empty.write("sql.log", "not a capture\n");
  MergedReader r2;
  errors = r2.open({empty.path()});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("no capture files"), std::string::npos) << errors[0];
  EXPECT_EQ(r2.files(), 0u);
}

// pgproxy may rename or compress-and-remove a file of the set while it is
// read: the file listed is the one read.
TEST(MergedReader, FileRemovedAfterOpenIsStillRead) {
  TempDir dir;
  std::string f0 = dir.write("f0", cap_cat({cap_header(kSet, 0), cap_open(1, 10), frame(1, 11, "a")}));
  std::string f1 = dir.write("f1", cap_cat({cap_header(kSet, 1), frame(1, 12, "b")}));
  MergedReader r;
  EXPECT_TRUE(r.open({f0, f1}).empty());
  std::filesystem::remove(f1);
  dir.write("f1", cap_cat({cap_header(kSet, 2), frame(1, 99, "new")}));
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"open 1 @10", "frame 1 @11 a", "frame 1 @12 b"}));
  EXPECT_TRUE(r.damage().empty());
}

}  // namespace
}  // namespace pgwire
