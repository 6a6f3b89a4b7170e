#include "pgwire/capture.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_files.hpp"

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;

ByteVec hex(std::string_view h) { return from_hex(h).value(); }
ByteVec bytes_of(std::string_view s) { return {as_bytes(s).begin(), as_bytes(s).end()}; }

bool contains(const ByteVec& haystack, std::string_view needle) {
  Bytes n = as_bytes(needle);
  return std::search(haystack.begin(), haystack.end(), n.begin(), n.end()) != haystack.end();
}

// ---------------------------------------------------------------------------
// A test-only encoder written from docs/capture-format.md, independent of
// CaptureWriter: used to build files the writer cannot produce.

struct Enc {
  ByteVec b;
  Enc& u8(uint8_t v) {
    b.push_back(std::byte(v));
    return *this;
  }
  Enc& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Enc& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  Enc& u64(uint64_t v) { return u32(static_cast<uint32_t>(v >> 32)).u32(static_cast<uint32_t>(v)); }
  Enc& raw(Bytes x) {
    b.insert(b.end(), x.begin(), x.end());
    return *this;
  }
  Enc& raw(std::string_view s) { return raw(as_bytes(s)); }
  Enc& str16(std::string_view s) { return u16(static_cast<uint16_t>(s.size())).raw(s); }
};

ByteVec file_header(uint16_t major = 1, uint16_t minor = 0, std::string_view creator = "enc",
                    std::string_view extra_fields = {}) {
  Enc rest;
  rest.u64(42).u32(7).str16(creator).raw(extra_fields);
  Enc h;
  h.raw(std::string_view("PGWCAP\r\n", 8)).u16(major).u16(minor).u32(static_cast<uint32_t>(rest.b.size() + 4));
  h.raw(rest.b);
  h.u32(crc32_ieee(h.b));
  return h.b;
}

// The set fields every header of version 1.1 or later has: set_id 0 (no set), set_index 0.
const std::string_view kNoSet("\0\0\0\0\0\0\0\0\0\0\0\0", 12);

ByteVec record(uint16_t type, Bytes payload, uint16_t flags = 0) {
  Enc r;
  r.u32(static_cast<uint32_t>(payload.size())).u16(type).u16(flags).raw(payload);
  r.u32(crc32_ieee(r.b));
  return r.b;
}

ByteVec open_payload(uint64_t sid, int64_t ts, std::string_view client, std::string_view server) {
  Enc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).str16(client).str16(server);
  return p.b;
}

ByteVec frame_payload(uint64_t sid, int64_t ts, uint8_t dir, uint8_t flags, uint8_t kind, Bytes data) {
  Enc p;
  p.u64(sid).u64(static_cast<uint64_t>(ts)).u8(dir).u8(flags).u8(kind).u32(static_cast<uint32_t>(data.size()));
  p.raw(data);
  return p.b;
}

ByteVec cat(std::initializer_list<ByteVec> parts) {
  ByteVec out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---------------------------------------------------------------------------
// Reading helpers.

struct OwnedRecord {
  CaptureRecordType type;
  uint64_t file_offset, session_id;
  int64_t ts_ns;
  std::string client, server;
  Direction direction;
  uint8_t frame_flags;
  FrameKind frame_kind;
  ByteVec data;
  std::string reason, key;
  ByteVec value;

  explicit OwnedRecord(const CaptureRecord& r)
      : type(r.type),
        file_offset(r.file_offset),
        session_id(r.session_id),
        ts_ns(r.ts_ns),
        client(r.client),
        server(r.server),
        direction(r.direction),
        frame_flags(r.frame_flags),
        frame_kind(r.frame_kind),
        data(r.data.begin(), r.data.end()),
        reason(r.reason),
        key(r.key),
        value(r.value.begin(), r.value.end()) {}
  bool operator==(const OwnedRecord&) const = default;
};

// An in-memory file: a memfd rewound to its start.
int memfd_with(const ByteVec& content) {
  int fd = memfd_create("capture-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  EXPECT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  return fd;
}

struct Outcome {
  std::optional<Error> open_error;
  std::vector<OwnedRecord> records;
  std::optional<Error> error;  // unset: clean end
  uint64_t skipped = 0;
  uint64_t end_offset = 0;
  size_t buffer_capacity = 0;
};

Outcome read_reader(CaptureReader& reader) {
  Outcome out;
  CaptureRecord rec;
  for (;;) {
    Result<bool> r = reader.next(rec);
    if (!r) {
      out.error = r.error();
      // Nothing of the bad record is consumed: offset() is the usable prefix.
      EXPECT_EQ(reader.offset(), r.error().offset);
      // Sticky: the same error again.
      CaptureRecord again;
      Result<bool> r2 = reader.next(again);
      EXPECT_FALSE(r2.ok());
      if (!r2.ok()) {
        EXPECT_EQ(r2.error().code, r.error().code);
        EXPECT_EQ(r2.error().offset, r.error().offset);
      }
      break;
    }
    if (!*r) {
      CaptureRecord again;  // a clean end stays a clean end
      Result<bool> r2 = reader.next(again);
      EXPECT_TRUE(r2.ok() && !*r2);
      break;
    }
    out.records.emplace_back(rec);
  }
  out.skipped = reader.skipped_records();
  out.end_offset = reader.offset();
  out.buffer_capacity = reader.buffer_capacity();
  return out;
}

Outcome read_all(const ByteVec& content) {
  auto reader = CaptureReader::from_fd(memfd_with(content), true, "memfd");
  if (!reader) {
    Outcome out;
    out.open_error = reader.error();
    return out;
  }
  return read_reader(**reader);
}

using test::TempDir;

ByteVec read_file(const std::string& path) {
  ByteVec out(std::filesystem::file_size(path));
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  EXPECT_TRUE(in.good());
  return out;
}

Frame typed_frame(char type, Bytes body) {
  Frame f;
  f.kind = FrameKind::kTyped;
  f.type = static_cast<uint8_t>(type);
  f.length = static_cast<uint32_t>(body.size() + 4);
  f.body = body;
  return f;
}

// Writes with `opts` into a memfd-like temp file and returns the bytes.
template <class Fn>
ByteVec write_capture(Fn&& fn, CaptureWriterOptions opts = {}) {
  TempDir dir;
  std::string path = dir.file("c.pgwcap");
  auto w = CaptureWriter::create(path, std::move(opts));
  EXPECT_TRUE(w.ok()) << w.error().describe();
  if (!w) return {};
  fn(**w);
  Status s = (*w)->close();
  EXPECT_TRUE(s.ok()) << s.error().describe();
  ByteVec bytes = read_file(path);
  EXPECT_EQ((*w)->bytes_written(), bytes.size());
  return bytes;
}

// ---------------------------------------------------------------------------
// CRC-32

uint32_t bitwise_crc32(Bytes data) {
  uint32_t c = 0xffffffff;
  for (std::byte b : data) {
    c ^= std::to_integer<uint32_t>(b);
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

TEST(CaptureCrc32, CheckValue) {
  EXPECT_EQ(crc32_ieee(as_bytes("123456789")), 0xCBF43926u);
  EXPECT_EQ(crc32_ieee({}), 0u);
  EXPECT_EQ(crc32_ieee(as_bytes("The quick brown fox jumps over the lazy dog")), 0x414FA339u);
}

TEST(CaptureCrc32, MatchesBitwiseReferenceAndChains) {
  std::mt19937 rng(1234);
  ByteVec data(300);
  for (auto& b : data) b = std::byte(rng() & 0xff);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t len = 0; start + len <= data.size(); len += 7) {
      Bytes span{data.data() + start, len};
      ASSERT_EQ(crc32_ieee(span), bitwise_crc32(span)) << start << "+" << len;
      for (size_t cut = 0; cut <= len; cut += 5) {
        ASSERT_EQ(crc32_ieee(span.subspan(cut), crc32_ieee(span.first(cut))), bitwise_crc32(span));
      }
    }
  }
}

TEST(CaptureCrc32, PortableCheckValue) {
  EXPECT_EQ(crc32_ieee_portable(as_bytes("123456789")), 0xCBF43926u);
  EXPECT_EQ(crc32_ieee_portable({}), 0u);
}

// crc32_ieee folds 16 and 64 bytes at a time when the CPU allows: every
// length around those block sizes, every alignment, chained at odd points.
TEST(CaptureCrc32, MatchesPortableOnRandomLengths) {
  std::mt19937 rng(99);
  ByteVec data(1100);
  for (auto& b : data) b = std::byte(rng() & 0xff);
  for (size_t len = 0; len <= 1000; ++len) {
    const size_t start = rng() % 16;
    Bytes span{data.data() + start, len};
    ASSERT_EQ(crc32_ieee(span), crc32_ieee_portable(span)) << start << "+" << len;
    ASSERT_EQ(crc32_ieee(span), bitwise_crc32(span)) << start << "+" << len;
    const uint32_t seed = static_cast<uint32_t>(rng());
    ASSERT_EQ(crc32_ieee(span, seed), crc32_ieee_portable(span, seed)) << start << "+" << len;
  }
  // All ones and all zeros: the folding constants must not depend on the data.
  for (std::byte fill : {std::byte{0}, std::byte{0xff}}) {
    ByteVec same(777, fill);
    for (size_t len : {16u, 63u, 64u, 65u, 128u, 777u}) {
      ASSERT_EQ(crc32_ieee({same.data(), len}), bitwise_crc32({same.data(), len})) << len;
    }
  }
}

// ---------------------------------------------------------------------------
// Golden bytes: docs/capture-format.md section 9, CRCs from Python's zlib.crc32.

const char* kGolden =
    // header
    "5047574341500d0a 0001 0000 0000001d 17979cfe3d85cd15 00001092 000b 6578616d706c6520312e30"
    "aa270a61"
    // SessionOpen at 45
    "0000002e 0001 0000 0000000000000001 17979cfe4215c200 000d 31302e302e302e313a35303030"
    "000d 31302e302e302e323a35343332 2da7daa1"
    // Frame F Query at 103
    "00000026 0002 0000 0000000000000001 17979cfe480ba300 00 03 00 0000000f"
    "51 0000000e 53454c45435420313b00 5641b332"
    // Frame B ReadyForQuery at 153
    "0000001d 0002 0000 0000000000000001 17979cfe4e018400 01 03 00 00000006"
    "5a 00000005 49 58ed5eda"
    // SessionMeta at 194
    "0000001d 0004 0000 0000000000000001 17979cfe53f76500 0003 706964 00000004 00003039"
    "b7bd55b6"
    // SessionClose at 235
    "00000015 0003 0000 0000000000000001 17979cfe59ed4600 0003 656f66 5ec7601f";

constexpr int64_t kT0 = 1700000000000000000;

void write_golden_session(CaptureWriter& w) {
  const ByteVec query = bytes_of(std::string_view("SELECT 1;\0", 10));
  const ByteVec rfq = bytes_of("I");
  ASSERT_TRUE(w.session_open(1, kT0 + 200000000, "10.0.0.1:5000", "10.0.0.2:5432").ok());
  ASSERT_TRUE(w.frame(1, kT0 + 300000000, Direction::kFrontend, typed_frame('Q', query)).ok());
  ASSERT_TRUE(w.frame(1, kT0 + 400000000, Direction::kBackend, typed_frame('Z', rfq)).ok());
  ASSERT_TRUE(w.session_meta(1, kT0 + 500000000, "pid", hex("00003039")).ok());
  ASSERT_TRUE(w.session_close(1, kT0 + 600000000, "eof").ok());
}

CaptureWriterOptions golden_options() {
  CaptureWriterOptions o;
  o.creator = "example 1.0";
  o.creator_pid = 4242;
  o.created_ns = kT0 + 123456789;
  return o;
}

TEST(CaptureFormat, WriterProducesTheGoldenBytes) {
  ByteVec bytes = write_capture(write_golden_session, golden_options());
  EXPECT_EQ(to_hex(bytes), to_hex(hex(kGolden)));
}

TEST(CaptureFormat, ReaderDecodesTheGoldenBytes) {
  auto reader = CaptureReader::from_fd(memfd_with(hex(kGolden)), true, "golden");
  ASSERT_TRUE(reader.ok()) << reader.error().describe();
  CaptureReader& r = **reader;
  EXPECT_EQ(r.version_major(), 1);
  EXPECT_EQ(r.version_minor(), 0);
  EXPECT_EQ(r.creator(), "example 1.0");
  EXPECT_EQ(r.creator_pid(), 4242u);
  EXPECT_EQ(r.created_ns(), kT0 + 123456789);
  EXPECT_EQ(r.offset(), 45u);
  EXPECT_EQ(r.name(), "golden");
  EXPECT_EQ(r.set_id(), 0u);  // a 1.0 file is part of no set
  EXPECT_EQ(r.set_index(), 0u);

  CaptureRecord rec;
  auto next = [&] {
    Result<bool> res = r.next(rec);
    EXPECT_TRUE(res.ok() && *res) << (res.ok() ? "clean end" : res.error().describe());
  };
  next();
  EXPECT_EQ(rec.type, CaptureRecordType::kSessionOpen);
  EXPECT_EQ(rec.file_offset, 45u);
  EXPECT_EQ(rec.session_id, 1u);
  EXPECT_EQ(rec.ts_ns, kT0 + 200000000);
  EXPECT_EQ(rec.client, "10.0.0.1:5000");
  EXPECT_EQ(rec.server, "10.0.0.2:5432");

  next();
  EXPECT_EQ(rec.type, CaptureRecordType::kFrame);
  EXPECT_EQ(rec.file_offset, 103u);
  EXPECT_EQ(rec.ts_ns, kT0 + 300000000);
  EXPECT_EQ(rec.direction, Direction::kFrontend);
  EXPECT_TRUE(rec.first() && rec.last() && !rec.redacted());
  EXPECT_EQ(rec.frame_kind, FrameKind::kTyped);
  EXPECT_EQ(to_hex(rec.data), to_hex(hex("510000000e53454c45435420313b00")));

  next();
  EXPECT_EQ(rec.file_offset, 153u);
  EXPECT_EQ(rec.direction, Direction::kBackend);
  EXPECT_EQ(to_hex(rec.data), to_hex(hex("5a0000000549")));

  next();
  EXPECT_EQ(rec.type, CaptureRecordType::kSessionMeta);
  EXPECT_EQ(rec.file_offset, 194u);
  EXPECT_EQ(rec.ts_ns, kT0 + 500000000);
  EXPECT_EQ(rec.key, "pid");
  EXPECT_EQ(to_hex(rec.value), to_hex(hex("00003039")));

  next();
  EXPECT_EQ(rec.type, CaptureRecordType::kSessionClose);
  EXPECT_EQ(rec.file_offset, 235u);
  EXPECT_EQ(rec.ts_ns, kT0 + 600000000);
  EXPECT_EQ(rec.reason, "eof");

  Result<bool> end = r.next(rec);
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
  EXPECT_EQ(r.offset(), 268u);
  EXPECT_EQ(r.skipped_records(), 0u);
}

// The header of a file of a rotated set, version 1.1: docs/capture-format.md
// section 3.2, its CRC from Python's zlib.crc32.
const char* kGoldenSetHeader =
    "5047574341500d0a 0001 0001 00000029 17979cfe3d85cd15 00001092 000b 6578616d706c6520312e31"
    "1a2b3c4d5e6f7081 00000002 9e47be5e";

TEST(CaptureFormat, WriterOfASetFileProducesTheGoldenHeader) {
  CaptureWriterOptions o = golden_options();
  o.creator = "example 1.1";
  o.set_id = 0x1a2b3c4d5e6f7081;
  o.set_index = 2;
  ByteVec bytes = write_capture([](CaptureWriter&) {}, o);
  EXPECT_EQ(to_hex(bytes), to_hex(hex(kGoldenSetHeader)));
}

TEST(CaptureFormat, ReaderDecodesTheGoldenSetHeader) {
  // The set header, then the records of the 1.0 example.
  const ByteVec golden = hex(kGolden);
  ByteVec file = cat({hex(kGoldenSetHeader), ByteVec(golden.begin() + 45, golden.end())});
  auto reader = CaptureReader::from_fd(memfd_with(file), true, "set");
  ASSERT_TRUE(reader.ok()) << reader.error().describe();
  CaptureReader& r = **reader;
  EXPECT_EQ(r.version_minor(), 1);
  EXPECT_EQ(r.creator(), "example 1.1");
  EXPECT_EQ(r.creator_pid(), 4242u);
  EXPECT_EQ(r.created_ns(), kT0 + 123456789);
  EXPECT_EQ(r.set_id(), 0x1a2b3c4d5e6f7081u);
  EXPECT_EQ(r.set_index(), 2u);
  EXPECT_EQ(r.offset(), 57u);
  Outcome o = read_reader(r);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 5u);
  EXPECT_EQ(o.records[0].file_offset, 57u);
  EXPECT_EQ(o.records[0].client, "10.0.0.1:5000");
}

TEST(CaptureFormat, SetIndexWithoutASetIsRefused) {
  CaptureWriterOptions o;
  o.set_index = 1;
  auto w = CaptureWriter::from_fd(::open("/dev/null", O_WRONLY | O_CLOEXEC), true, o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, Errc::kBadValue);
}

TEST(CaptureFormat, MinorVersionOneWithoutRoomForTheSetFields) {
  // 1.1 says set_id and set_index follow the creator: 11 bytes are not 12.
  Outcome o = read_all(file_header(1, 1, "enc", std::string_view("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b", 11)));
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kBadLength);
  EXPECT_EQ(o.open_error->offset, 12u);
  // Exactly 12: read.
  Enc set;
  set.u64(0xfeedfacecafebeef).u32(7);
  auto reader = CaptureReader::from_fd(memfd_with(file_header(1, 1, "enc", as_string_view(set.b))), true, "ok");
  ASSERT_TRUE(reader.ok()) << reader.error().describe();
  EXPECT_EQ((*reader)->set_id(), 0xfeedfacecafebeefu);
  EXPECT_EQ((*reader)->set_index(), 7u);
}

// ---------------------------------------------------------------------------
// Round trips

TEST(CaptureRoundTrip, EveryRecordTypeAndFrameKind) {
  const ByteVec startup = hex("00030000 7573657200 616c69636500 00");
  const ByteVec tls = hex("160301020001fc0303");
  const ByteVec meta_value = hex("00ff00010203");
  const ByteVec empty;
  const uint64_t big_sid = 0xfedcba9876543210ull;

  ByteVec file = write_capture([&](CaptureWriter& w) {
    ASSERT_TRUE(w.session_open(big_sid, -5, "", "[::1]:5432").ok());
    Frame s;
    s.kind = FrameKind::kStartup;
    s.length = static_cast<uint32_t>(startup.size() + 4);
    s.body = startup;
    ASSERT_TRUE(w.frame(big_sid, 1, Direction::kFrontend, s).ok());
    Frame answer;
    answer.kind = FrameKind::kAnswer;
    answer.type = 'S';
    ASSERT_TRUE(w.frame(big_sid, 2, Direction::kBackend, answer).ok());
    Frame opaque;
    opaque.kind = FrameKind::kOpaque;
    opaque.body = tls;
    ASSERT_TRUE(w.frame(big_sid, 3, Direction::kFrontend, opaque).ok());
    ASSERT_TRUE(w.frame(big_sid, 4, Direction::kBackend, typed_frame('Z', as_bytes("T"))).ok());
    ASSERT_TRUE(w.session_meta(big_sid, 5, "backend_key_data", meta_value).ok());
    ASSERT_TRUE(w.session_meta(0, 6, "", empty).ok());
    ASSERT_TRUE(w.session_close(big_sid, INT64_MAX, "").ok());
  });

  Outcome o = read_all(file);
  ASSERT_FALSE(o.open_error) << o.open_error->describe();
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 8u);
  EXPECT_EQ(o.end_offset, file.size());
  const auto& r = o.records;

  EXPECT_EQ(r[0].type, CaptureRecordType::kSessionOpen);
  EXPECT_EQ(r[0].session_id, big_sid);
  EXPECT_EQ(r[0].ts_ns, -5);
  EXPECT_EQ(r[0].client, "");
  EXPECT_EQ(r[0].server, "[::1]:5432");

  EXPECT_EQ(r[1].frame_kind, FrameKind::kStartup);
  EXPECT_EQ(r[1].direction, Direction::kFrontend);
  EXPECT_EQ(r[1].frame_flags, kFrameFirst | kFrameLast);
  EXPECT_EQ(to_hex(r[1].data), to_hex(cat({hex("00000014"), startup})));  // length 4 + 16

  EXPECT_EQ(r[2].frame_kind, FrameKind::kAnswer);
  EXPECT_EQ(r[2].direction, Direction::kBackend);
  EXPECT_EQ(to_hex(r[2].data), "53");

  EXPECT_EQ(r[3].frame_kind, FrameKind::kOpaque);
  EXPECT_EQ(to_hex(r[3].data), to_hex(tls));

  EXPECT_EQ(r[4].frame_kind, FrameKind::kTyped);
  EXPECT_EQ(r[4].ts_ns, 4);
  EXPECT_EQ(to_hex(r[4].data), "5a0000000554");

  EXPECT_EQ(r[5].type, CaptureRecordType::kSessionMeta);
  EXPECT_EQ(r[5].key, "backend_key_data");
  EXPECT_EQ(r[5].value, meta_value);
  EXPECT_EQ(r[6].session_id, 0u);
  EXPECT_EQ(r[6].key, "");
  EXPECT_TRUE(r[6].value.empty());

  EXPECT_EQ(r[7].type, CaptureRecordType::kSessionClose);
  EXPECT_EQ(r[7].ts_ns, INT64_MAX);
  EXPECT_EQ(r[7].reason, "");

  for (size_t i = 1; i < r.size(); ++i) EXPECT_GT(r[i].file_offset, r[i - 1].file_offset);
}

TEST(CaptureRoundTrip, SameBytesWhateverTheBufferSize) {
  auto session = [](CaptureWriter& w) {
    for (uint64_t i = 0; i < 50; ++i) {
      ASSERT_TRUE(w.session_open(i, 1, "c", "s").ok());
      ASSERT_TRUE(w.frame(i, 2, Direction::kFrontend, typed_frame('Q', as_bytes("SELECT 1\0"))).ok());
    }
  };
  CaptureWriterOptions unbuffered = golden_options();
  unbuffered.buffer_size = 0;
  CaptureWriterOptions small = golden_options();
  small.buffer_size = 100;
  ByteVec a = write_capture(session, golden_options());
  EXPECT_EQ(write_capture(session, unbuffered), a);
  EXPECT_EQ(write_capture(session, small), a);
  Outcome o = read_all(a);
  EXPECT_FALSE(o.error);
  EXPECT_EQ(o.records.size(), 100u);
}

TEST(CaptureRoundTrip, LargeFrameIsSplitAcrossRecords) {
  // A 2.5 MiB CopyData frame, whole: more than two records' worth.
  ByteVec body(size_t{5} << 19);
  for (size_t i = 0; i < body.size(); ++i) body[i] = std::byte((i * 131) >> 3);
  Frame f = typed_frame('d', body);
  ByteVec wire = cat({hex("64"), hex("00280004"), body});  // 'd', length 2621444

  ByteVec file = write_capture([&](CaptureWriter& w) {
    ASSERT_TRUE(w.frame(9, 10, Direction::kFrontend, f).ok());
    ASSERT_TRUE(w.session_close(9, 11, "done").ok());
  });
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 4u);
  ByteVec joined;
  for (size_t i = 0; i < 3; ++i) {
    const OwnedRecord& r = o.records[i];
    EXPECT_EQ(r.type, CaptureRecordType::kFrame);
    EXPECT_EQ(r.session_id, 9u);
    EXPECT_EQ(r.frame_flags & kFrameFirst, i == 0 ? kFrameFirst : 0) << i;
    EXPECT_EQ(r.frame_flags & kFrameLast, i == 2 ? kFrameLast : 0) << i;
    EXPECT_LE(r.data.size(), kMaxCaptureFrameData);
    if (i < 2) {
      EXPECT_EQ(r.data.size(), kMaxCaptureFrameData);
    }
    joined.insert(joined.end(), r.data.begin(), r.data.end());
  }
  EXPECT_TRUE(joined == wire);
  EXPECT_EQ(o.records[3].reason, "done");
  // One record at a time: the read buffer never holds more than the largest one.
  EXPECT_LE(o.buffer_capacity, kCaptureFileHeaderFixedSize + kMaxCaptureReadLength);
  // And no record payload is above the writer's limit.
  for (const OwnedRecord& r : o.records) {
    size_t next_offset = &r == &o.records.back() ? file.size() : (&r + 1)->file_offset;
    EXPECT_LE(next_offset - r.file_offset - 12, kMaxCaptureRecordPayload);
  }
}

TEST(CaptureRoundTrip, FramerPiecesReassembleToTheWireBytes) {
  // A DataRow of 30000 bytes and a ReadyForQuery, framed with a small
  // max_buffered (the framer raises it to 10000) so the DataRow comes out in
  // pieces, fed in 777-byte chunks.
  size_t at = 0;
  Framer backend(Direction::kBackend, FramerOptions{1000});
  Buffer be;
  at = be.begin_message('D');
  be.i16(1);
  be.nullable_bytes(as_bytes(std::string(30000, 'y')));
  be.end_message(at);
  at = be.begin_message('Z');
  be.u8('I');
  be.end_message(at);
  ByteVec be_wire(be.view().begin(), be.view().end());
  size_t pieces = 0;
  ByteVec file = write_capture([&](CaptureWriter& w) {
    for (size_t pos = 0; pos < be_wire.size(); pos += 777) {
      Bytes in{be_wire.data() + pos, std::min<size_t>(777, be_wire.size() - pos)};
      for (;;) {
        FrameResult r = backend.next(in);
        ASSERT_FALSE(r.failed());
        if (r.needs_more()) break;
        ++pieces;
        ASSERT_TRUE(w.frame(4, static_cast<int64_t>(pos), Direction::kBackend, r.frame()).ok());
      }
    }
  });
  EXPECT_GT(pieces, 30u);
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(o.records.size(), pieces);
  ByteVec joined;
  size_t frames = 0;
  bool inside = false;
  for (const OwnedRecord& r : o.records) {
    EXPECT_EQ(inside, !(r.frame_flags & kFrameFirst)) << "first flag where a frame starts";
    inside = !(r.frame_flags & kFrameLast);
    if (r.frame_flags & kFrameLast) ++frames;
    joined.insert(joined.end(), r.data.begin(), r.data.end());
  }
  EXPECT_EQ(frames, 2u);
  EXPECT_TRUE(joined == be_wire);
}

// ---------------------------------------------------------------------------
// Redaction

constexpr std::string_view kSecret = "hunter2-very-secret";

void write_password_session(CaptureWriter& w) {
  ByteVec pw = bytes_of(std::string(kSecret) + '\0');
  ASSERT_TRUE(w.session_open(1, 0, "c", "s").ok());
  ASSERT_TRUE(w.frame(1, 1, Direction::kFrontend, typed_frame('p', pw)).ok());
  // A SASLResponse that arrives in two pieces.
  ByteVec sasl = bytes_of(std::string("n,,n=alice,r=") + std::string(kSecret));
  Frame first = typed_frame('p', Bytes(sasl).first(10));
  first.length = static_cast<uint32_t>(sasl.size() + 4);
  first.last = false;
  Frame rest = first;
  rest.body = Bytes(sasl).subspan(10);
  rest.body_offset = 10;
  rest.first = false;
  rest.last = true;
  ASSERT_TRUE(w.frame(1, 2, Direction::kFrontend, first).ok());
  ASSERT_TRUE(w.frame(1, 3, Direction::kFrontend, rest).ok());
  ASSERT_TRUE(w.frame(1, 4, Direction::kBackend, typed_frame('Z', as_bytes("I"))).ok());
}

TEST(CaptureRedaction, PasswordFramesAreStoredAsHeaderOnly) {
  CaptureWriterOptions opts;
  ASSERT_TRUE(opts.redact_secrets);  // the default
  ByteVec file = write_capture(write_password_session, opts);
  EXPECT_FALSE(contains(file, kSecret));
  EXPECT_FALSE(contains(file, "hunter2"));

  Outcome o = read_all(file);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 4u);
  const OwnedRecord& pw = o.records[1];
  EXPECT_EQ(pw.frame_flags, kFrameFirst | kFrameLast | kFrameRedacted);
  EXPECT_EQ(to_hex(pw.data), "7000000018");  // 'p', original length 24
  const OwnedRecord& sasl = o.records[2];
  EXPECT_EQ(sasl.frame_flags, kFrameFirst | kFrameLast | kFrameRedacted);
  EXPECT_EQ(to_hex(sasl.data), "7000000024");  // length 36: 32 body bytes dropped
  EXPECT_EQ(sasl.ts_ns, 2);
  EXPECT_EQ(o.records[3].direction, Direction::kBackend);
}

TEST(CaptureRedaction, OffKeepsEverything) {
  CaptureWriterOptions opts;
  opts.redact_secrets = false;
  ByteVec file = write_capture(write_password_session, opts);
  EXPECT_TRUE(contains(file, kSecret));
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(o.records.size(), 5u);
  EXPECT_EQ(o.records[1].frame_flags, kFrameFirst | kFrameLast);
  EXPECT_EQ(to_hex(o.records[1].data), to_hex(cat({hex("7000000018"), bytes_of(std::string(kSecret) + '\0')})));
  EXPECT_EQ(o.records[2].frame_flags, kFrameFirst);
  EXPECT_EQ(o.records[3].frame_flags, kFrameLast);
}

TEST(CaptureRedaction, OnlyFrontendPasswordFrames) {
  // The same bytes in a Query, or in a backend frame, are not secrets by type.
  ByteVec file = write_capture([](CaptureWriter& w) {
    ASSERT_TRUE(w.frame(1, 0, Direction::kFrontend, typed_frame('Q', as_bytes(kSecret))).ok());
    ASSERT_TRUE(w.frame(1, 0, Direction::kBackend, typed_frame('p', as_bytes(kSecret))).ok());
  });
  Outcome o = read_all(file);
  ASSERT_EQ(o.records.size(), 2u);
  for (const OwnedRecord& r : o.records) EXPECT_FALSE(r.frame_flags & kFrameRedacted);
}

// ---------------------------------------------------------------------------
// Files

mode_t file_mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(CaptureFile, CreatedWithMode0600EvenIfItExisted) {
  TempDir dir;
  std::string fresh = dir.file("fresh.pgwcap");
  {
    auto w = CaptureWriter::create(fresh);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->close().ok());
  }
  EXPECT_EQ(file_mode(fresh), 0600u);

  std::string old = dir.file("old.pgwcap");
  { std::ofstream(old) << "previous content, much longer than a capture header........"; }
  ASSERT_EQ(::chmod(old.c_str(), 0666), 0);
  {
    auto w = CaptureWriter::create(old);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(file_mode(old), 0600u);
    ASSERT_TRUE((*w)->session_close(1, 2, "x").ok());
  }  // the destructor flushes and closes
  EXPECT_EQ(file_mode(old), 0600u);
  auto r = CaptureReader::open(old);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  Outcome o = read_reader(**r);
  EXPECT_FALSE(o.error) << "the old content was truncated away";
  ASSERT_EQ(o.records.size(), 1u);
  EXPECT_EQ(o.records[0].reason, "x");
}

// A path that is not a regular file (pgproxy --capture /dev/null, a FIFO to
// a compressor) keeps its own mode: run as root, setting 0600 on /dev/null
// would lock every other user out of it.
TEST(CaptureFile, WhatIsNotARegularFileKeepsItsMode) {
  TempDir dir;
  const std::string fifo = dir.file("to-zstd");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  ASSERT_EQ(::chmod(fifo.c_str(), 0644), 0);                                   // whatever the umask
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // so that opening to write does not wait
  ASSERT_GE(reader, 0);
  {
    auto w = CaptureWriter::create(fifo);
    ASSERT_TRUE(w.ok()) << w.error().describe();
    EXPECT_EQ(file_mode(fifo), 0644u);
    ASSERT_TRUE((*w)->close().ok());
  }
  char header[8] = {};
  EXPECT_EQ(::read(reader, header, sizeof header), static_cast<ssize_t>(sizeof header));  // the writer wrote through it
  ::close(reader);
  EXPECT_EQ(file_mode(fifo), 0644u);
}

TEST(CaptureFile, OpenErrorsCarryTheErrnoText) {
  auto w = CaptureWriter::create("/nonexistent-dir/x.pgwcap");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, Errc::kIo);
  EXPECT_NE(w.error().message.find("No such file or directory"), std::string::npos) << w.error().message;
  auto r = CaptureReader::open("/nonexistent-dir/x.pgwcap");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kIo);
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
}

TEST(CaptureFile, EmptyFileIsNotACapture) {
  Outcome o = read_all({});
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kBadMagic);
  EXPECT_EQ(o.open_error->offset, 0u);
}

TEST(CaptureFile, TextFileIsNotACapture) {
  Outcome o = read_all(bytes_of("2024-01-01 LOG:  statement: SELECT 1;\nmore text\n"));
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kBadMagic);
  EXPECT_EQ(o.open_error->offset, 0u);
}

TEST(CaptureFile, TextModeTransferIsRecognised) {
  ByteVec good = hex(kGolden);
  ByteVec crlf_to_lf = cat({bytes_of("PGWCAP\n"), ByteVec(good.begin() + 8, good.end())});
  ByteVec lf_to_crlf = cat({bytes_of("PGWCAP\r\r\n"), ByteVec(good.begin() + 8, good.end())});
  for (const ByteVec& bad : {crlf_to_lf, lf_to_crlf}) {
    Outcome o = read_all(bad);
    ASSERT_TRUE(o.open_error);
    EXPECT_EQ(o.open_error->code, Errc::kBadMagic);
    EXPECT_NE(o.open_error->message.find("text mode"), std::string::npos) << o.open_error->message;
  }
}

TEST(CaptureFile, NewerMajorVersionIsUnsupported) {
  Outcome o = read_all(cat({file_header(2, 0), record(1, open_payload(1, 2, "c", "s"))}));
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kUnsupported);
  EXPECT_EQ(o.open_error->offset, 8u);
  // Even one whose header is laid out differently after byte 16.
  ByteVec odd = hex("5047574341500d0a 0007 0000 00000002 ffff");
  o = read_all(odd);
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kUnsupported);
}

TEST(CaptureFile, NewerMinorVersionWithLongerHeaderIsRead) {
  // The set fields of 1.1, then fields of a later minor version.
  Enc fields;
  fields.u64(99).u32(3).raw("new header fields");
  ByteVec file =
      cat({file_header(1, 3, "future writer", as_string_view(fields.b)), record(1, open_payload(5, 6, "c", "s"))});
  auto reader = CaptureReader::from_fd(memfd_with(file), true, "minor");
  ASSERT_TRUE(reader.ok()) << reader.error().describe();
  EXPECT_EQ((*reader)->version_minor(), 3);
  EXPECT_EQ((*reader)->creator(), "future writer");
  EXPECT_EQ((*reader)->created_ns(), 42);
  EXPECT_EQ((*reader)->creator_pid(), 7u);
  EXPECT_EQ((*reader)->set_id(), 99u);
  EXPECT_EQ((*reader)->set_index(), 3u);
  Outcome o = read_reader(**reader);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(o.records.size(), 1u);
  EXPECT_EQ(o.records[0].session_id, 5u);
}

TEST(CaptureFile, ImpossibleHeaderFields) {
  // header_length below the 1.0 minimum, and above the read limit.
  for (uint32_t hlen : {17u, kMaxCaptureReadLength + 1, 0xffffffffu}) {
    Enc h;
    h.raw(std::string_view("PGWCAP\r\n", 8)).u16(1).u16(0).u32(hlen).raw(ByteVec(64));
    Outcome o = read_all(h.b);
    ASSERT_TRUE(o.open_error);
    EXPECT_EQ(o.open_error->code, Errc::kBadLength) << hlen;
    EXPECT_EQ(o.open_error->offset, 12u);
  }
  // A creator length beyond the header, with a valid checksum.
  Enc h;
  h.raw(std::string_view("PGWCAP\r\n", 8)).u16(1).u16(0).u32(18).u64(0).u32(0).u16(1);
  h.u32(crc32_ieee(h.b));
  Outcome o = read_all(h.b);
  ASSERT_TRUE(o.open_error);
  EXPECT_EQ(o.open_error->code, Errc::kBadLength);
  EXPECT_EQ(o.open_error->offset, 28u);
}

// ---------------------------------------------------------------------------
// Damage

// The golden session plus a frame spread over several records, so damage can
// hit first, middle and last pieces.
ByteVec multi_record_file() {
  return write_capture(
      [](CaptureWriter& w) {
        write_golden_session(w);
        ByteVec body = bytes_of("0123456789abcdef");
        Frame a = typed_frame('d', Bytes(body).first(4));
        a.length = static_cast<uint32_t>(body.size() + 4);
        a.last = false;
        Frame b = a;
        b.body = Bytes(body).subspan(4, 8);
        b.first = false;
        Frame c = b;
        c.body = Bytes(body).subspan(12);
        c.last = true;
        ASSERT_TRUE(w.frame(2, 1, Direction::kFrontend, a).ok());
        ASSERT_TRUE(w.frame(2, 2, Direction::kFrontend, b).ok());
        ASSERT_TRUE(w.frame(2, 3, Direction::kFrontend, c).ok());
      },
      golden_options());
}

TEST(CaptureDamage, TruncatedAtEveryOffset) {
  const ByteVec file = multi_record_file();
  const Outcome whole = read_all(file);
  ASSERT_FALSE(whole.error);
  ASSERT_EQ(whole.records.size(), 8u);
  const uint64_t header_size = whole.records[0].file_offset;
  std::vector<uint64_t> starts;
  for (const auto& r : whole.records) starts.push_back(r.file_offset);

  for (size_t cut = 0; cut < file.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    Outcome o = read_all(ByteVec(file.begin(), file.begin() + static_cast<ptrdiff_t>(cut)));
    if (cut < header_size) {
      ASSERT_TRUE(o.open_error);
      EXPECT_EQ(o.open_error->code, cut < 8 ? Errc::kBadMagic : Errc::kTruncated);
      EXPECT_EQ(o.open_error->offset, 0u);
      continue;
    }
    ASSERT_FALSE(o.open_error) << o.open_error->describe();
    // Every record that ends before the cut, intact.
    size_t complete = 0;
    while (complete < starts.size() && (complete + 1 < starts.size() ? starts[complete + 1] : file.size()) <= cut) {
      ++complete;
    }
    ASSERT_EQ(o.records.size(), complete);
    for (size_t i = 0; i < complete; ++i) EXPECT_TRUE(o.records[i] == whole.records[i]) << i;
    const bool at_boundary = complete == starts.size() || starts[complete] == cut;
    if (at_boundary) {
      EXPECT_FALSE(o.error) << o.error->describe();
      EXPECT_EQ(o.end_offset, cut);
    } else {
      ASSERT_TRUE(o.error);
      EXPECT_EQ(o.error->code, Errc::kTruncated);
      EXPECT_EQ(o.error->offset, starts[complete]);
    }
  }
}

TEST(CaptureDamage, FlippedByteAtEveryOffsetIsDetected) {
  const ByteVec file = multi_record_file();
  const Outcome whole = read_all(file);
  ASSERT_FALSE(whole.error);
  const uint64_t header_size = whole.records[0].file_offset;
  std::vector<uint64_t> starts;
  for (const auto& r : whole.records) starts.push_back(r.file_offset);

  for (size_t at = 0; at < file.size(); ++at) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      SCOPED_TRACE("flip " + std::to_string(mask) + " at " + std::to_string(at));
      ByteVec damaged = file;
      damaged[at] ^= std::byte(mask);
      Outcome o = read_all(damaged);
      if (at < header_size) {
        ASSERT_TRUE(o.open_error) << "a damaged header was accepted";
        continue;
      }
      ASSERT_FALSE(o.open_error);
      size_t hit = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), at) - starts.begin()) - 1;
      // Records before the damaged one come back intact; the damaged one and
      // everything after it never do.
      ASSERT_EQ(o.records.size(), hit) << "a damaged record was returned as valid";
      for (size_t i = 0; i < hit; ++i) EXPECT_TRUE(o.records[i] == whole.records[i]);
      ASSERT_TRUE(o.error) << "damage not detected: the byte is covered by no check";
      EXPECT_EQ(o.error->offset, starts[hit]);
      EXPECT_TRUE(o.error->code == Errc::kBadChecksum || o.error->code == Errc::kTruncated ||
                  o.error->code == Errc::kTooLong)
          << o.error->describe();
    }
  }
}

TEST(CaptureDamage, ImpossibleLengthIsAnErrorNotAnAllocation) {
  Enc rec;
  rec.u32(0xfffffff0).u16(2).u16(0);
  ByteVec file = cat({file_header(), record(3, hex("0000000000000001 0000000000000002 0000")), rec.b});
  Outcome o = read_all(file);
  ASSERT_EQ(o.records.size(), 1u);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, Errc::kTooLong);
  EXPECT_EQ(o.error->offset, file.size() - 8);
  EXPECT_LE(o.buffer_capacity, 64u << 10);
}

TEST(CaptureDamage, KnownTypeWithPayloadShorterThanItsFields) {
  Enc p;
  p.u64(1).u64(2).u16(10).raw("abc");  // client length 10, 3 bytes left
  ByteVec file = cat({file_header(), record(1, p.b)});
  Outcome o = read_all(file);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, Errc::kBadLength);
  EXPECT_EQ(o.error->offset, file.size() - 12 - p.b.size());
  EXPECT_TRUE(o.records.empty());
}

// ---------------------------------------------------------------------------
// Forward compatibility

TEST(CaptureCompat, UnknownRecordTypeFromANewerWriterIsSkipped) {
  ByteVec file = write_capture([](CaptureWriter& w) {
    ASSERT_TRUE(w.session_open(1, 0, "c", "s").ok());
    ASSERT_TRUE(w.raw_record(77, as_bytes("whatever a 1.4 writer puts here")).ok());
    ASSERT_TRUE(w.frame(1, 1, Direction::kFrontend, typed_frame('S', {})).ok());
    ASSERT_TRUE(w.session_close(1, 2, "bye").ok());
  });
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 3u);
  EXPECT_EQ(o.skipped, 1u);
  EXPECT_EQ(o.records[1].type, CaptureRecordType::kFrame);
  EXPECT_EQ(to_hex(o.records[1].data), "5300000004");
  EXPECT_EQ(o.records[2].reason, "bye");
}

TEST(CaptureCompat, UnknownRecordIsStillChecksummed) {
  ByteVec file = write_capture(
      [](CaptureWriter& w) {
        ASSERT_TRUE(w.raw_record(77, as_bytes("payload")).ok());
        ASSERT_TRUE(w.session_close(1, 2, "bye").ok());
      },
      golden_options());
  file[45 + 8 + 2] ^= std::byte(0x20);  // inside the unknown record's payload
  Outcome o = read_all(file);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->code, Errc::kBadChecksum);
  EXPECT_EQ(o.error->offset, 45u);
  EXPECT_TRUE(o.records.empty());
}

TEST(CaptureCompat, KnownTypesWithExtraTrailingPayloadBytesAreAccepted) {
  const ByteVec future = bytes_of("\x01\x02 fields of version 1.7");
  Enc meta;
  meta.u64(3).u64(4).str16("k").u32(2).raw("vv").raw(future);
  Enc close;
  close.u64(3).u64(5).str16("r").raw(future);
  ByteVec file = cat({
      file_header(1, 7, "enc", kNoSet),
      record(1, cat({open_payload(3, 1, "cli", "srv"), future})),
      record(2, cat({frame_payload(3, 2, 1, 3, 0, hex("5a0000000549")), future})),
      record(4, meta.b),
      record(3, close.b),
  });
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 4u);
  EXPECT_EQ(o.records[0].client, "cli");
  EXPECT_EQ(o.records[0].server, "srv");
  EXPECT_EQ(to_hex(o.records[1].data), "5a0000000549");
  EXPECT_EQ(o.records[1].direction, Direction::kBackend);
  EXPECT_EQ(o.records[2].key, "k");
  EXPECT_EQ(to_hex(o.records[2].value), to_hex(bytes_of("vv")));
  EXPECT_EQ(o.records[3].reason, "r");
  EXPECT_EQ(o.records[3].ts_ns, 5);
  EXPECT_EQ(o.skipped, 0u);
}

TEST(CaptureCompat, RecordFlagsAndFrameValuesFromANewerWriter) {
  ByteVec open = open_payload(1, 2, "c", "s");
  ByteVec file = cat({
      file_header(1, 2, "enc", kNoSet), record(1, open, 0x0001),      // ignorable flag: read
      record(1, open, 0x0100),                                        // critical flag: skipped
      record(2, frame_payload(1, 3, 2, 3, 0, hex("5300000004"))),     // direction 2: skipped
      record(2, frame_payload(1, 3, 0, 3, 9, hex("5300000004"))),     // frame kind 9: skipped
      record(2, frame_payload(1, 3, 0, 0x83, 0, hex("5300000004"))),  // reserved frame flag: read
  });
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error) << o.error->describe();
  ASSERT_EQ(o.records.size(), 2u);
  EXPECT_EQ(o.skipped, 3u);
  EXPECT_EQ(o.records[0].client, "c");
  EXPECT_EQ(o.records[1].frame_flags, 0x83);
}

// ---------------------------------------------------------------------------
// Pipes and stdin

TEST(CapturePipe, ReaderOnAPipeFedInSmallChunks) {
  // Bigger than a pipe's buffer, delivered a few bytes at a time at first.
  ByteVec body(300000, std::byte{'z'});
  const ByteVec file = write_capture([&](CaptureWriter& w) {
    write_golden_session(w);
    ASSERT_TRUE(w.frame(2, 0, Direction::kBackend, typed_frame('d', body)).ok());
  });
  const Outcome expected = read_all(file);
  ASSERT_FALSE(expected.error);

  for (bool nonblocking : {false, true}) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    if (nonblocking) {
      ASSERT_EQ(::fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    }
    std::thread feeder([&file, wfd = fds[1]] {
      size_t pos = 0;
      for (size_t chunk = 1; pos < file.size(); chunk = std::min<size_t>(chunk * 2, 4096)) {
        size_t n = std::min(chunk, file.size() - pos);
        ssize_t w = ::write(wfd, file.data() + pos, n);
        if (w <= 0) break;
        pos += static_cast<size_t>(w);
      }
      ::close(wfd);
    });
    auto reader = CaptureReader::from_fd(fds[0], true, "pipe");
    ASSERT_TRUE(reader.ok()) << reader.error().describe();
    Outcome o = read_reader(**reader);
    feeder.join();
    ASSERT_FALSE(o.error) << o.error->describe();
    EXPECT_TRUE(o.records == expected.records);
  }
}

TEST(CapturePipe, WriterIntoAPipeAndReaderFromStdin) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  {
    auto w = CaptureWriter::from_fd(fds[1], true, golden_options());
    ASSERT_TRUE(w.ok());
    write_golden_session(**w);
    ASSERT_TRUE((*w)->close().ok());
  }
  // Read it back through "-": stdin replaced by the pipe for the moment.
  int saved_stdin = ::dup(STDIN_FILENO);
  ASSERT_GE(saved_stdin, 0);
  ASSERT_EQ(::dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
  ::close(fds[0]);
  Outcome o;
  {
    auto r = CaptureReader::open("-");
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ((*r)->name(), "<stdin>");
    o = read_reader(**r);
  }
  ASSERT_EQ(::dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
  ::close(saved_stdin);
  ASSERT_FALSE(o.error);
  EXPECT_TRUE(o.records == read_all(hex(kGolden)).records);
}

TEST(CaptureWriterErrors, WriteFailureIsStickyAndCarriesErrno) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto w = CaptureWriter::from_fd(fds[1], true);
  ASSERT_TRUE(w.ok());
  ::close(fds[0]);
  auto* previous = std::signal(SIGPIPE, SIG_IGN);
  ASSERT_TRUE((*w)->session_open(1, 0, "c", "s").ok());  // buffered
  Status s = (*w)->flush();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::kIo);
  EXPECT_NE(s.error().message.find("Broken pipe"), std::string::npos) << s.error().message;
  Status again = (*w)->session_close(1, 1, "x");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, s.error().message);
  EXPECT_FALSE((*w)->close().ok());
  std::signal(SIGPIPE, previous);
}

TEST(CaptureWriterErrors, HeaderWriteFailureFailsCreation) {
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto w = CaptureWriter::from_fd(fd, true);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, Errc::kIo);
  EXPECT_NE(w.error().message.find("No space left"), std::string::npos) << w.error().message;
}

TEST(CaptureWriterErrors, TooLongFieldsAreRefusedAndTheWriterGoesOn) {
  ByteVec file = write_capture([](CaptureWriter& w) {
    Status s = w.session_close(1, 0, std::string(70000, 'r'));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::kTooLong);
    s = w.session_meta(1, 0, "big", ByteVec(kMaxCaptureRecordPayload));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::kTooLong);
    ASSERT_TRUE(w.session_close(1, 0, "ok").ok());
  });
  Outcome o = read_all(file);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(o.records.size(), 1u);
  EXPECT_EQ(o.records[0].reason, "ok");
}

// ---------------------------------------------------------------------------
// Fuzz seeds: every committed seed reads without crashing; the valid ones end
// cleanly.

TEST(CaptureCorpus, FuzzSeedsRead) {
  std::filesystem::path dir = std::filesystem::path(PGWIRE_CORPUS_DIR) / "fuzz" / "capture";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++seeds;
    SCOPED_TRACE(entry.path().string());
    auto r = CaptureReader::open(entry.path().string());
    if (!r) continue;
    Outcome o = read_reader(**r);
    if (entry.path().filename().string().starts_with("valid-")) {
      EXPECT_FALSE(o.error) << o.error->describe();
      EXPECT_FALSE(o.records.empty());
    }
  }
  EXPECT_GE(seeds, 3u);
}

}  // namespace
}  // namespace pgwire
