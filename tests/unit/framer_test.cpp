#include "pgwire/framer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgwire {
namespace {

std::vector<std::byte> hex(std::string_view h) { return from_hex(h).value(); }

struct Collected {
  std::vector<OwnedFrame> frames;
  std::vector<std::string> kinds;
  std::optional<Error> error;
};

// Feeds `stream` to a framer in chunks of `chunk` bytes, reassembling pieces.
Collected collect(Framer& framer, const std::vector<std::byte>& stream, size_t chunk) {
  Collected out;
  for (size_t pos = 0; pos < stream.size() && !out.error; pos += chunk) {
    Bytes in{stream.data() + pos, std::min(chunk, stream.size() - pos)};
    for (;;) {
      FrameResult r = framer.next(in);
      if (r.failed()) {
        out.error = r.error();
        break;
      }
      if (r.needs_more()) break;
      const Frame& f = r.frame();
      if (f.first)
        out.frames.emplace_back(f);
      else
        out.frames.back().body.insert(out.frames.back().body.end(), f.body.begin(), f.body.end());
    }
  }
  return out;
}

// psql's opening: StartupMessage 3.0 user=alice database=db, then Query "SELECT 1;".
const char* kStartupAndQuery =
    "00000020 00030000"
    "7573657200 616c69636500"    // user\0alice\0
    "646174616261736500 646200"  // database\0db\0
    "00"
    "51 0000000e 53454c45435420313b00";  // Q len=14 "SELECT 1;\0"

TEST(Framer, StartupThenQueryAtEverySplit) {
  auto stream = hex(kStartupAndQuery);
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    Framer f(Direction::kFrontend);
    Collected c = collect(f, stream, chunk);
    ASSERT_FALSE(c.error) << c.error->describe();
    ASSERT_EQ(c.frames.size(), 2u) << "chunk " << chunk;
    EXPECT_EQ(c.frames[0].kind, FrameKind::kStartup);
    EXPECT_EQ(c.frames[0].length, 0x20u);
    EXPECT_EQ(c.frames[1].kind, FrameKind::kTyped);
    EXPECT_EQ(c.frames[1].type, 'Q');
    EXPECT_EQ(c.frames[1].offset, 0x20u);
    EXPECT_EQ(as_string_view({c.frames[1].body.data(), c.frames[1].body.size()}), std::string_view("SELECT 1;\0", 10));
  }
}

TEST(Framer, LengthBelowFourIsAnErrorWithOffset) {
  auto stream = hex("00000008 04d2162f 51 00000003");
  Framer f(Direction::kFrontend);
  // The startup code 80877103 is SSLRequest: make it a plain startup instead.
  stream = hex("00000009 00030000 00 51 00000003");
  Collected c = collect(f, stream, stream.size());
  ASSERT_TRUE(c.error);
  EXPECT_EQ(c.error->code, Errc::kBadLength);
  EXPECT_EQ(c.error->offset, 10u);  // the length field after the type byte at 9
}

TEST(Framer, LargeFrameComesInPieces) {
  FramerOptions opts;
  opts.max_buffered = 16;  // raised to the startup limit internally; use a 20000-byte body
  Framer f(Direction::kBackend, opts);
  std::vector<std::byte> stream = hex("64 00004e24");  // CopyData, length 20004
  stream.resize(5 + 20000, std::byte{'x'});
  Bytes in{stream};
  size_t pieces = 0, body = 0;
  while (!in.empty()) {
    Bytes chunk = in.first(std::min<size_t>(in.size(), 4096));
    in = in.subspan(chunk.size());
    for (;;) {
      FrameResult r = f.next(chunk);
      ASSERT_FALSE(r.failed());
      if (r.needs_more()) break;
      EXPECT_EQ(r.frame().first, body == 0);
      EXPECT_EQ(r.frame().body_offset, body);
      body += r.frame().body.size();
      ++pieces;
    }
  }
  EXPECT_EQ(body, 20000u);
  EXPECT_GT(pieces, 1u);
  EXPECT_FALSE(f.mid_frame());
}

TEST(Framer, SslRequestAnsweredNThenStartup) {
  ConnectionFramer conn;
  auto ssl = hex("00000008 04d2162f");
  Bytes in{ssl};
  FrameResult r = conn.next(Direction::kFrontend, in);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().startup_code(), kSslRequestCode);
  auto answer = hex("4e");
  Bytes a{answer};
  r = conn.next(Direction::kBackend, a);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().kind, FrameKind::kAnswer);
  EXPECT_EQ(r.frame().type, 'N');
  auto startup = hex("00000009 00030000 00");
  Bytes s{startup};
  r = conn.next(Direction::kFrontend, s);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().startup_code(), kProtocol30);
}

TEST(Framer, BytesAfterSslRequestBeforeAnswerAreRejected) {
  Framer f(Direction::kFrontend);
  auto stream = hex("00000008 04d2162f 00000009 00030000 00");
  Bytes in{stream};
  ASSERT_TRUE(f.next(in).has_frame());
  FrameResult r = f.next(in);
  ASSERT_TRUE(r.failed());
  EXPECT_EQ(r.error().code, Errc::kUnexpected);
  EXPECT_EQ(r.error().offset, 8u);
}

TEST(Framer, DirectTlsIsOpaque) {
  Framer f(Direction::kFrontend);
  auto stream = hex("160301020001");
  Bytes in{stream};
  FrameResult r = f.next(in);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().kind, FrameKind::kOpaque);
  EXPECT_TRUE(f.encrypted());
}

}  // namespace
}  // namespace pgwire
