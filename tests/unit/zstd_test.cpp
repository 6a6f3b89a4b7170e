// zstd-compressed captures: CaptureReader reads what the zstd CLI wrote, and
// compress_file writes what the zstd CLI reads. The compressed bytes of these
// tests all come from the zstd CLI, or are checked with it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pgwire/capture.hpp"
#include "pgwire/zstd_file.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"

namespace pgwire {
namespace {

const std::string kCorpus = PGWIRE_CORPUS_DIR;

using test::slurp;
using test::spit;
using test::TempDir;

// What the zstd CLI makes of `data` (extra: its options).
std::string zstd_cli(std::string_view data, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"zstd", "-q", "-c"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  test::CommandOptions o;
  o.stdin_data = std::string(data);
  test::CommandResult r = test::run_command(argv, o);
  EXPECT_TRUE(r.ok()) << r.describe();
  return r.out;
}

struct Record {
  CaptureRecordType type;
  uint64_t file_offset, session_id;
  int64_t ts_ns;
  std::string client, server, reason, key, data, value;
  uint8_t frame_flags;
  bool operator==(const Record&) const = default;
};

struct Outcome {
  std::optional<Error> open_error;
  std::vector<Record> records;
  std::optional<Error> error;
  bool compressed = false;
};

Outcome read_reader(Result<std::unique_ptr<CaptureReader>> reader) {
  Outcome out;
  if (!reader) {
    out.open_error = reader.error();
    return out;
  }
  CaptureReader& r = **reader;
  out.compressed = r.compressed();
  CaptureRecord rec;
  for (;;) {
    Result<bool> n = r.next(rec);
    if (!n) {
      out.error = n.error();
      break;
    }
    if (!*n) break;
    out.records.push_back(Record{rec.type, rec.file_offset, rec.session_id, rec.ts_ns, std::string(rec.client),
                                 std::string(rec.server), std::string(rec.reason), std::string(rec.key),
                                 std::string(as_string_view(rec.data)), std::string(as_string_view(rec.value)),
                                 rec.frame_flags});
  }
  return out;
}

Outcome read_path(const std::string& path) { return read_reader(CaptureReader::open(path)); }

bool is_prefix(const std::vector<Record>& part, const std::vector<Record>& whole) {
  return part.size() <= whole.size() && std::equal(part.begin(), part.end(), whole.begin());
}

// A corpus capture with records of all types (21 KB: one zstd block; the
// test of concatenated frames cuts one in the middle of a record).
const std::string kCapture = kCorpus + "/captures/pgbench_extended.pgwcap";

TEST(ZstdCapture, CompressedByTheCliReadsAsTheOriginal) {
  const Outcome plain = read_path(kCapture);
  ASSERT_FALSE(plain.error || plain.open_error);
  ASSERT_GT(plain.records.size(), 100u);
  EXPECT_FALSE(plain.compressed);

  TempDir dir("zstd_test");
  const std::string original = slurp(kCapture);
  for (const std::vector<std::string>& opts :
       {std::vector<std::string>{}, std::vector<std::string>{"-19"}, std::vector<std::string>{"--no-check", "-1"}}) {
    // Named like an uncompressed capture: the magic, not the name, decides.
    const std::string path = dir.file("capture.pgwcap");
    spit(path, zstd_cli(original, opts));
    Outcome z = read_path(path);
    ASSERT_FALSE(z.open_error) << z.open_error->describe();
    ASSERT_FALSE(z.error) << z.error->describe();
    EXPECT_TRUE(z.compressed);
    EXPECT_TRUE(z.records == plain.records) << "zstd " << (opts.empty() ? "" : opts[0]);
  }
}

TEST(ZstdCapture, ConcatenatedFramesCutAnywhere) {
  // Two frames whose boundary is in the middle of a record, and a skippable
  // frame between them (zstd's own files may carry one).
  const std::string original = slurp(kCapture);
  const size_t cut = original.size() / 3 + 7;
  const std::string skippable("\x50\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);  // magic 0x184D2A50, 3 bytes
  TempDir dir("zstd_test");
  const std::string path = dir.file("two-frames.zst");
  spit(path, zstd_cli(std::string_view(original).substr(0, cut)) + skippable +
                 zstd_cli(std::string_view(original).substr(cut)));
  Outcome z = read_path(path);
  ASSERT_FALSE(z.open_error || z.error);
  EXPECT_TRUE(z.records == read_path(kCapture).records);
}

TEST(ZstdCapture, ReadFromAPipe) {
  const std::string compressed = zstd_cli(slurp(kCapture));
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  std::thread feeder([&compressed, wfd = fds[1]] {
    size_t pos = 0;
    for (size_t chunk = 1; pos < compressed.size(); chunk = std::min<size_t>(chunk * 3, 8192)) {
      ssize_t w = ::write(wfd, compressed.data() + pos, std::min(chunk, compressed.size() - pos));
      if (w <= 0) break;
      pos += static_cast<size_t>(w);
    }
    ::close(wfd);
  });
  Outcome z = read_reader(CaptureReader::from_fd(fds[0], true, "pipe"));
  feeder.join();
  ASSERT_FALSE(z.open_error || z.error);
  EXPECT_TRUE(z.compressed);
  EXPECT_TRUE(z.records == read_path(kCapture).records);
}

// The corpus capture's records 40 times over (the same bytes, copied): about
// 850 KB, several zstd blocks, so a cut leaves whole blocks to decompress.
std::string large_capture() {
  const std::string bytes = slurp(kCapture);
  auto reader = CaptureReader::open(kCapture);
  EXPECT_TRUE(reader.ok());
  const size_t header = (*reader)->offset();
  std::string out = bytes;
  for (int i = 1; i < 40; ++i) out.append(bytes, header);
  return out;
}

TEST(ZstdCapture, TruncatedFileIsAnErrorNamingIt) {
  TempDir dir("zstd_test");
  const std::string original = large_capture();
  const std::string plain_path = dir.file("plain.pgwcap");
  spit(plain_path, original);
  const Outcome plain = read_path(plain_path);
  ASSERT_FALSE(plain.error || plain.open_error);
  std::vector<uint64_t> starts;
  for (const Record& r : plain.records) starts.push_back(r.file_offset);
  const std::string compressed = zstd_cli(original);
  const std::string path = dir.file("capture-20261202T174000Z.pgwcap.zst");
  std::mt19937 rng(15);
  std::vector<size_t> cuts = {compressed.size() - 1, compressed.size() - 4, compressed.size() / 2, 100, 20};
  for (int i = 0; i < 20; ++i) cuts.push_back(20 + rng() % (compressed.size() - 21));
  // The repeated records make the first block most of the compressed bytes:
  // cuts in the later blocks, near the end, leave whole blocks before them.
  for (size_t back = 5; back < 700 && back < compressed.size(); back += 13) cuts.push_back(compressed.size() - back);
  size_t with_records = 0;
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    spit(path, std::string_view(compressed).substr(0, cut));
    Outcome z = read_path(path);
    if (z.open_error) {  // the cut left less than the capture's header
      EXPECT_EQ(z.open_error->code, Errc::kTruncated) << z.open_error->describe();
      EXPECT_NE(z.open_error->message.find(path), std::string::npos) << z.open_error->message;
      continue;
    }
    ASSERT_TRUE(z.error) << "a cut .zst read as a whole capture";
    EXPECT_EQ(z.error->code, Errc::kTruncated) << z.error->describe();
    EXPECT_NE(z.error->message.find(path), std::string::npos) << z.error->message;
    EXPECT_NE(z.error->message.find("decompressed"), std::string::npos) << z.error->message;
    // Every record before the break, then the break at the start of a record
    // (or at the end of the last one: a cut in the frame's checksum).
    EXPECT_TRUE(is_prefix(z.records, plain.records));
    const uint64_t expected = z.records.size() < starts.size() ? starts[z.records.size()] : original.size();
    EXPECT_EQ(z.error->offset, expected);
    if (!z.records.empty() && z.records.size() < starts.size()) ++with_records;
  }
  EXPECT_GT(with_records, 5u) << "cuts inside the data, after whole blocks";
}

TEST(ZstdCapture, DamagedDataIsReportedNeverReturned) {
  const Outcome plain = read_path(kCapture);
  const std::string compressed = zstd_cli(slurp(kCapture));
  TempDir dir("zstd_test");
  const std::string path = dir.file("damaged.zst");
  std::mt19937 rng(2026);
  for (int i = 0; i < 40; ++i) {
    std::string bad = compressed;
    const size_t at = 4 + rng() % (bad.size() - 4);
    bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
    SCOPED_TRACE("flip at " + std::to_string(at));
    spit(path, bad);
    Outcome z = read_path(path);
    if (z.open_error) continue;  // the header did not survive: reported as such
    // The zstd checksum, or the capture's own CRCs, catch it; nothing damaged is returned.
    ASSERT_TRUE(z.error);
    EXPECT_TRUE(is_prefix(z.records, plain.records));
  }
}

TEST(ZstdCapture, CompressedNonCaptureIsNotACapture) {
  TempDir dir("zstd_test");
  const std::string path = dir.file("sql.log.zst");
  spit(path, zstd_cli("2026-12-02T17:40:00.000Z session=1 query ok sql: SELECT 1\n"));
  Outcome z = read_path(path);
  ASSERT_TRUE(z.open_error);
  EXPECT_EQ(z.open_error->code, Errc::kBadMagic);
  EXPECT_NE(z.open_error->message.find("zstd-compressed"), std::string::npos) << z.open_error->message;
  // An empty file, and one of three bytes, are still "not a capture".
  for (std::string_view content : {std::string_view(), std::string_view("\x28\xb5\x2f", 3)}) {
    spit(path, content);
    z = read_path(path);
    ASSERT_TRUE(z.open_error);
    EXPECT_EQ(z.open_error->code, Errc::kBadMagic);
  }
}

TEST(ZstdCompressFile, TheCliDecompressesItToTheOriginal) {
  TempDir dir("zstd_test");
  const std::string src = dir.file("capture-20261202T174000Z.pgwcap");
  const std::string dst = src + ".zst";
  const std::string original = slurp(kCapture);
  spit(src, original);
  const mode_t old_umask = ::umask(0);  // the mode must not depend on the umask
  Status s = compress_file(src, dst, 3);
  ::umask(old_umask);
  ASSERT_TRUE(s.ok()) << s.error().describe();

  struct stat st {};
  ASSERT_EQ(::stat(dst.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(dst + ".tmp"));
  EXPECT_EQ(slurp(src), original);  // the caller removes it, not compress_file

  test::CommandResult r = test::run_command({"zstd", "-q", "-d", "-c", dst});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_TRUE(r.out == original);
  r = test::run_command({"zstd", "-q", "-t", dst});  // with its checksum
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(std::filesystem::file_size(dst), original.size() / 2);

  Outcome z = read_path(dst);
  ASSERT_FALSE(z.open_error || z.error);
  EXPECT_TRUE(z.records == read_path(kCapture).records);
}

TEST(ZstdCompressFile, EmptyFileAndHighLevel) {
  TempDir dir("zstd_test");
  const std::string src = dir.file("empty");
  spit(src, "");
  ASSERT_TRUE(compress_file(src, src + ".zst", 19).ok());
  test::CommandResult r = test::run_command({"zstd", "-q", "-d", "-c", src + ".zst"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "");
}

TEST(ZstdCompressFile, FailuresLeaveNoTmpAndTheSourceAlone) {
  TempDir dir("zstd_test");
  const std::string src = dir.file("c.pgwcap");
  spit(src, "some capture bytes");

  // A .tmp that exists (another compression, or one that died) is not touched.
  spit(src + ".zst.tmp", "someone else's");
  Status s = compress_file(src, src + ".zst", 3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kIo);
  EXPECT_NE(s.error().message.find(src + ".zst.tmp"), std::string::npos) << s.error().message;
  EXPECT_EQ(slurp(src + ".zst.tmp"), "someone else's");
  EXPECT_FALSE(std::filesystem::exists(src + ".zst"));
  std::filesystem::remove(src + ".zst.tmp");

  // No source.
  s = compress_file(dir.file("missing"), dir.file("missing.zst"), 3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(dir.file("missing")), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.zst.tmp")));

  // A destination that cannot be made.
  s = compress_file(src, dir.file("no/such/dir/c.zst"), 3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kIo);

  // The rename fails (the destination is a non-empty directory): the .tmp goes.
  std::filesystem::create_directories(dir.file("busy.zst/inside"));
  s = compress_file(src, dir.file("busy.zst"), 3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("rename"), std::string::npos) << s.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir.file("busy.zst.tmp")));

  // A level zstd does not have.
  s = compress_file(src, src + ".zst", 1000);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kBadValue);
  EXPECT_FALSE(std::filesystem::exists(src + ".zst.tmp"));

  EXPECT_EQ(slurp(src), "some capture bytes");
}

}  // namespace
}  // namespace pgwire
