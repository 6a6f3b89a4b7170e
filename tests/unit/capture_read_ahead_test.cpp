// CaptureReadAhead must return exactly what CaptureReader returns: the same
// records with the same contents and offsets, then the same end or error.
#include "pgwire/capture_read_ahead.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "pgwire/capture.hpp"

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;

int memfd_with(const ByteVec& content) {
  int fd = memfd_create("read-ahead-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  EXPECT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  return fd;
}

// Every field of a record, its views as bytes, and the reader's offset after it.
std::string describe(const CaptureRecord& r, uint64_t offset_after) {
  auto text = [](Bytes b) { return std::string(as_string_view(b)); };
  return std::to_string(static_cast<int>(r.type)) + "|" + std::to_string(r.file_offset) + "|" +
         std::to_string(r.session_id) + "|" + std::to_string(r.ts_ns) + "|" + std::string(r.client) + "|" +
         std::string(r.server) + "|" + std::to_string(static_cast<int>(r.direction)) + "|" +
         std::to_string(r.frame_flags) + "|" + std::to_string(static_cast<int>(r.frame_kind)) + "|" + text(r.data) +
         "|" + std::string(r.reason) + "|" + std::string(r.key) + "|" + text(r.value) + "|" +
         std::to_string(offset_after);
}

struct Outcome {
  std::vector<std::string> records;
  std::optional<Error> error;
  uint64_t end_offset = 0;
};

// CaptureReadAhead as a CaptureReader: next(rec) copies the record out.
struct AsReader {
  CaptureReadAhead& ahead;
  Result<bool> next(CaptureRecord& rec) {
    Result<const CaptureRecord*> r = ahead.next();
    if (!r) return r.error();
    if (*r) rec = **r;
    return *r != nullptr;
  }
  uint64_t offset() const { return ahead.offset(); }
};

template <class Reader>
Outcome read_all(Reader& reader) {
  Outcome out;
  CaptureRecord rec;
  for (;;) {
    Result<bool> r = reader.next(rec);
    if (!r || !*r) {
      if (!r) out.error = r.error();
      out.end_offset = reader.offset();
      // Sticky, as the reader's own end or error.
      Result<bool> again = reader.next(rec);
      EXPECT_EQ(again.ok(), r.ok());
      if (!again.ok()) {
        EXPECT_EQ(again.error().offset, r.error().offset);
      } else {
        EXPECT_FALSE(*again);
      }
      return out;
    }
    out.records.push_back(describe(rec, reader.offset()));
  }
}

// Many sessions and frames of every size, a frame larger than a block (split
// by the writer), meta and close records.
ByteVec sample_capture() {
  char path[] = "/tmp/read-ahead-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  auto w = CaptureWriter::from_fd(fd, true);
  EXPECT_TRUE(w.ok());
  std::mt19937 rng(7);
  for (uint64_t s = 1; s <= 20; ++s) EXPECT_TRUE((*w)->session_open(s, 1000 + s, "10.0.0.1:5000", "db:5432").ok());
  for (int i = 0; i < 20000; ++i) {
    Frame f;
    f.type = 'Q';
    std::string body(rng() % 300, 'x');
    if (i == 7777) body.assign(3u << 20, 'y');  // several blocks' worth, in 1 MiB records
    f.length = static_cast<uint32_t>(body.size() + 4);
    f.body = as_bytes(body);
    EXPECT_TRUE((*w)->frame(1 + rng() % 20, 2000 + i, i % 2 ? Direction::kBackend : Direction::kFrontend, f).ok());
    if (i % 1000 == 0) {
      EXPECT_TRUE((*w)->session_meta(1 + rng() % 20, 3000 + i, "k", as_bytes("v")).ok());
    }
  }
  for (uint64_t s = 1; s <= 20; ++s) EXPECT_TRUE((*w)->session_close(s, 9000 + s, "eof").ok());
  EXPECT_TRUE((*w)->close().ok());
  ByteVec file;
  FILE* f = std::fopen(path, "rb");
  std::byte buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) file.insert(file.end(), buf, buf + n);
  std::fclose(f);
  ::unlink(path);
  return file;
}

void expect_same(const ByteVec& file) {
  auto direct = CaptureReader::from_fd(memfd_with(file), true, "direct");
  auto ahead_reader = CaptureReader::from_fd(memfd_with(file), true, "ahead");
  ASSERT_EQ(direct.ok(), ahead_reader.ok());
  if (!direct.ok()) return;
  CaptureReadAhead ahead(std::move(ahead_reader).value(), /*threaded=*/true);
  Outcome want = read_all(**direct);
  AsReader as{ahead};
  Outcome got = read_all(as);
  ASSERT_EQ(got.records.size(), want.records.size());
  for (size_t i = 0; i < want.records.size(); ++i) ASSERT_EQ(got.records[i], want.records[i]) << "record " << i;
  ASSERT_EQ(got.error.has_value(), want.error.has_value());
  if (want.error) {
    EXPECT_EQ(got.error->code, want.error->code);
    EXPECT_EQ(got.error->offset, want.error->offset);
    EXPECT_EQ(got.error->message, want.error->message);
  }
  EXPECT_EQ(got.end_offset, want.end_offset);
}

TEST(CaptureReadAhead, SameRecordsAsTheReader) { expect_same(sample_capture()); }

TEST(CaptureReadAhead, SameDamageAtTheSamePlace) {
  const ByteVec file = sample_capture();
  std::mt19937 rng(11);
  for (int i = 0; i < 6; ++i) {
    ByteVec cut(file.begin(), file.begin() + static_cast<ptrdiff_t>(100 + rng() % (file.size() - 100)));
    expect_same(cut);  // truncated tail
    ByteVec flipped = file;
    flipped[100 + rng() % (file.size() - 100)] ^= std::byte{0x20};
    expect_same(flipped);  // bad checksum, or an impossible length
  }
}

TEST(CaptureReadAhead, StopsWhenDestroyedEarly) {
  const ByteVec file = sample_capture();
  for (int n : {0, 1, 5000}) {
    auto reader = CaptureReader::from_fd(memfd_with(file), true, "early");
    ASSERT_TRUE(reader.ok());
    CaptureReadAhead ahead(std::move(reader).value(), /*threaded=*/true);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(ahead.next().ok());
  }  // joins the thread, whether it is waiting for a free block or reading
}

TEST(CaptureReadAhead, UnthreadedIsTheReaderItself) {
  const ByteVec file = sample_capture();
  auto direct = CaptureReader::from_fd(memfd_with(file), true, "direct");
  auto inner = CaptureReader::from_fd(memfd_with(file), true, "inner");
  ASSERT_TRUE(direct.ok() && inner.ok());
  CaptureReadAhead same(std::move(inner).value(), /*threaded=*/false);
  Outcome want = read_all(**direct);
  AsReader as{same};
  Outcome got = read_all(as);
  EXPECT_EQ(got.records, want.records);
  EXPECT_EQ(got.end_offset, want.end_offset);
}

}  // namespace
}  // namespace pgwire
