// The .rec format (tests/support/recording.hpp) and the recorded corpus in corpus/recorded/.
// No server needed: these check the committed recordings with an independent message splitter.
#include "recording.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "wire_scan.hpp"

namespace pt = pgwire::test;
namespace scan = pgwire::test::scan;
namespace fs = std::filesystem;

namespace {

const std::string kRecorded = std::string(PGWIRE_CORPUS_DIR) + "/recorded";

pt::Recording load(const std::string& name) { return pt::load_recording(kRecorded + "/" + name); }

std::string text_of(const std::vector<std::byte>& bytes) {
  std::string s;
  for (std::byte b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

std::string parse_error(std::string_view text) {
  try {
    pt::parse_recording(text, "t.rec");
  } catch (const pt::RecordingParseError& e) {
    return e.what();
  }
  return "no error";
}

// The connection of a recording whose frontend sent a message of this type.
int connection_with(const pt::Recording& rec, char type) {
  for (int conn : pt::connections(rec)) {
    if (scan::count(scan::split_connection(rec, conn).first, type) > 0) return conn;
  }
  return -1;
}

// Backend messages after the startup phase's ReadyForQuery.
std::vector<scan::Message> after_login(const scan::Stream& backend) {
  auto it = std::find_if(backend.messages.begin(), backend.messages.end(),
                         [](const scan::Message& m) { return m.type == 'Z'; });
  if (it == backend.messages.end()) return {};
  return {it + 1, backend.messages.end()};
}

}  // namespace

TEST(RecordingFormat, ParsesCommentsAndChunks) {
  pt::Recording rec = pt::parse_recording(
      "# header line\n#\n# second\n\n0 F 12 0000000804d2162f\n0 B 15 4E\r\n  2   B   7   ff  \n", "t.rec");
  ASSERT_EQ(rec.comments.size(), 3u);
  EXPECT_EQ(rec.comments[0], "header line");
  EXPECT_EQ(rec.comments[1], "");
  EXPECT_EQ(rec.comments[2], "second");
  ASSERT_EQ(rec.chunks.size(), 3u);
  EXPECT_EQ(rec.chunks[0].conn, 0);
  EXPECT_EQ(rec.chunks[0].dir, 'F');
  EXPECT_EQ(rec.chunks[0].usec, 12u);
  EXPECT_EQ(rec.chunks[0].bytes.size(), 8u);
  EXPECT_EQ(rec.chunks[0].bytes[7], std::byte{0x2f});
  EXPECT_EQ(rec.chunks[1].bytes, std::vector<std::byte>{std::byte{0x4e}});
  EXPECT_EQ(rec.chunks[2].conn, 2);
  EXPECT_EQ(rec.chunks[2].dir, 'B');
}

TEST(RecordingFormat, RejectsBadLinesWithTheirLineNumber) {
  EXPECT_EQ(parse_error("# ok\n0 X 1 00\n"), "t.rec:2: bad direction 'X' (want F or B)");
  EXPECT_EQ(parse_error("0 F 1 abc\n"), "t.rec:1: odd number of hex digits");
  EXPECT_EQ(parse_error("0 F 1 0g\n"), "t.rec:1: bad hex digit at column 1");
  EXPECT_EQ(parse_error("-1 F 1 00\n"), "t.rec:1: bad connection index '-1'");
  EXPECT_EQ(parse_error("99999999999 F 1 00\n"), "t.rec:1: bad connection index '99999999999'");
  EXPECT_EQ(parse_error("0 F x 00\n"), "t.rec:1: bad microsecond offset 'x'");
  EXPECT_EQ(parse_error("0 F 1\n"), "t.rec:1: expected 4 fields `<conn> <F|B> <usec> <hex>`, got 3");
  EXPECT_EQ(parse_error("\n\n0 f 1 00\n"), "t.rec:3: bad direction 'f' (want F or B)");
  EXPECT_THROW(pt::load_recording(kRecorded + "/no-such-file.rec"), std::runtime_error);
}

TEST(RecordingFormat, FormatRoundTrips) {
  pt::Recording rec;
  rec.comments = {"two\nlines", "x"};
  rec.chunks.push_back({0, 'F', 1, {std::byte{0}, std::byte{0xab}}});
  rec.chunks.push_back({3, 'B', 99, {std::byte{0xff}}});
  std::string text = pt::format_recording(rec);
  EXPECT_EQ(text, "# two\n# lines\n# x\n0 F 1 00ab\n3 B 99 ff\n");
  pt::Recording back = pt::parse_recording(text);
  ASSERT_EQ(back.chunks.size(), 2u);
  EXPECT_EQ(back.chunks[1].conn, 3);
  EXPECT_EQ(back.chunks[1].usec, 99u);
  EXPECT_EQ(back.chunks[0].bytes, rec.chunks[0].bytes);
  EXPECT_EQ(pt::connections(back), (std::vector<int>{0, 3}));
  EXPECT_EQ(pt::stream_bytes(back, 0, 'F'), rec.chunks[0].bytes);
}

// Every committed recording loads, is small, and splits into whole messages on both sides of
// every connection.
TEST(RecordedCorpus, EveryRecordingIsWellFormed) {
  std::set<std::string> found;
  for (const auto& entry : fs::directory_iterator(kRecorded)) {
    if (entry.path().extension() != ".rec") continue;
    std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    found.insert(name);
    EXPECT_LT(fs::file_size(entry.path()), 200u * 1024u);
    pt::Recording rec = pt::load_recording(entry.path().string());
    EXPECT_FALSE(rec.comments.empty());
    ASSERT_FALSE(rec.chunks.empty());
    EXPECT_TRUE(std::is_sorted(rec.chunks.begin(), rec.chunks.end(),
                               [](const pt::Chunk& a, const pt::Chunk& b) { return a.usec < b.usec; }));
    for (int conn : pt::connections(rec)) {
      SCOPED_TRACE("connection " + std::to_string(conn));
      auto [fe, be] = scan::split_connection(rec, conn);
      EXPECT_EQ(fe.error, "");
      EXPECT_EQ(be.error, "");
      EXPECT_EQ(fe.leftover, 0u);
      EXPECT_EQ(be.leftover, 0u);
      ASSERT_FALSE(fe.messages.empty());
      if (fe.messages.back().code == scan::kCancelCode) continue;  // no answer, no Terminate
      EXPECT_EQ(fe.messages.back().type, 'X') << "ends with Terminate";
      auto login =
          std::find_if(be.messages.begin(), be.messages.end(), [](const scan::Message& m) { return m.type != 'N'; });
      ASSERT_NE(login, be.messages.end());
      EXPECT_EQ(login->type, 'R');
      EXPECT_EQ(scan::count(be, 'K'), 1u);
    }
  }
  for (const char* expected : {"psql_multi.rec", "pgbench_simple.rec", "pgbench_extended.rec", "pgbench_prepared.rec",
                               "copy_in_out.rec", "pipeline_error.rec", "scram_login.rec", "cancel.rec"}) {
    EXPECT_TRUE(found.contains(expected)) << expected << " missing (scripts/record-corpus.sh)";
  }
}

TEST(RecordedCorpus, PsqlMulti) {
  pt::Recording rec = load("psql_multi.rec");
  ASSERT_EQ(pt::connections(rec).size(), 1u);
  auto [fe, be] = scan::split_connection(rec, 0);
  EXPECT_EQ(fe.messages.front().code, scan::kSslCode);  // psql's sslmode=prefer, answered N
  EXPECT_EQ(scan::count(fe, 'Q'), 6u);
  EXPECT_EQ(scan::count(be, 'Z'), 7u);  // one for the login, one per Query
  EXPECT_EQ(scan::sqlstates(be), (std::vector<std::string>{"42P01", "22012"}));
  std::string frontend = text_of(pt::stream_bytes(rec, 0, 'F'));
  EXPECT_NE(frontend.find("SELECT 1 AS first ; SELECT 2 AS second;"), std::string::npos);
  EXPECT_NE(frontend.find("h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83"), std::string::npos);
  EXPECT_NE(frontend.find("AS unicode,\n"), std::string::npos);
}

TEST(RecordedCorpus, PgbenchModes) {
  for (const char* mode : {"simple", "extended", "prepared"}) {
    SCOPED_TRACE(mode);
    pt::Recording rec = load(std::string("pgbench_") + mode + ".rec");
    ASSERT_EQ(pt::connections(rec).size(), 2u);  // pgbench's setup connection, then the client
    auto [fe, be] = scan::split_connection(rec, 1);
    EXPECT_EQ(fe.messages.front().code, scan::kProtocol30);  // PGSSLMODE=disable
    EXPECT_TRUE(scan::sqlstates(be).empty());
    if (std::string(mode) == "simple") {
      EXPECT_EQ(scan::count(fe, 'Q'), 35u);  // 5 transactions of 7 statements
      EXPECT_EQ(scan::count(fe, 'P'), 0u);
    } else {
      EXPECT_EQ(scan::count(fe, 'Q'), 0u);
      EXPECT_EQ(scan::count(fe, 'E'), 35u);
      // extended: an unnamed Parse per statement; prepared: 7 named statements, parsed once.
      EXPECT_EQ(scan::count(fe, 'P'), std::string(mode) == "extended" ? 35u : 7u);
      for (const auto& m : fe.messages) {
        if (m.type != 'P') continue;
        EXPECT_EQ(m.body[0] == '\0', std::string(mode) == "extended") << m.body;
      }
    }
  }
}

TEST(RecordedCorpus, CopyInOut) {
  pt::Recording rec = load("copy_in_out.rec");
  auto [fe, be] = scan::split_connection(rec, 0);
  EXPECT_EQ(scan::count(be, 'G'), 3u);  // CopyInResponse
  EXPECT_EQ(scan::count(be, 'H'), 2u);  // CopyOutResponse
  EXPECT_EQ(scan::count(be, 'c'), 2u);  // the backend's CopyDone after COPY TO STDOUT
  EXPECT_EQ(scan::count(fe, 'c'), 3u);  // the frontend's CopyDone after each COPY FROM STDIN
  EXPECT_GE(scan::count(fe, 'd'), 3u);
  EXPECT_EQ(scan::sqlstates(be), std::vector<std::string>{"22P02"});
}

// The point of this recording: the frontend sent the whole pipeline (3 queries and the Sync)
// before the backend answered anything, and after the error the backend skipped to the Sync.
TEST(RecordedCorpus, PipelineWithErrorInTheMiddle) {
  pt::Recording rec = load("pipeline_error.rec");
  int conn = connection_with(rec, 'P');
  ASSERT_GE(conn, 0);
  auto [fe, be] = scan::split_connection(rec, conn);
  EXPECT_EQ(scan::count(fe, 'P'), 3u);
  EXPECT_EQ(scan::count(fe, 'E'), 3u);
  EXPECT_EQ(scan::count(fe, 'S'), 1u);
  size_t last_request_chunk = 0;
  for (const auto& m : fe.messages) {
    if (m.type == 'P' || m.type == 'B' || m.type == 'E' || m.type == 'S') {
      last_request_chunk = std::max(last_request_chunk, m.chunk);
    }
  }
  std::vector<scan::Message> answers = after_login(be);
  ASSERT_FALSE(answers.empty());
  EXPECT_GT(answers.front().chunk, last_request_chunk) << "the pipeline was not sent at once";
  size_t ready = 0;
  for (const auto& m : answers) ready += m.type == 'Z' ? 1 : 0;
  EXPECT_EQ(ready, 1u);                 // one Sync, one ReadyForQuery
  EXPECT_EQ(scan::count(be, 'C'), 1u);  // only SELECT 1 completed; SELECT 3 was never run
  EXPECT_EQ(scan::sqlstates(be), std::vector<std::string>{"22012"});
  EXPECT_EQ(answers.back().type, 'Z');
  EXPECT_EQ(answers.back().body, "I");  // no transaction open afterwards
}

TEST(RecordedCorpus, ScramLogin) {
  pt::Recording rec = load("scram_login.rec");
  auto [fe, be] = scan::split_connection(rec, 0);
  std::vector<uint32_t> auth_codes;
  for (const auto& m : be.messages) {
    if (m.type == 'R') auth_codes.push_back(scan::be32(m.body, 0));
  }
  EXPECT_EQ(auth_codes, (std::vector<uint32_t>{10, 11, 12, 0}));  // SASL, Continue, Final, Ok
  ASSERT_EQ(scan::count(fe, 'p'), 2u);                            // SASLInitial, SASLResponse
  auto first =
      std::find_if(fe.messages.begin(), fe.messages.end(), [](const scan::Message& m) { return m.type == 'p'; });
  EXPECT_EQ(first->body.substr(0, 14), std::string("SCRAM-SHA-256\0", 14));
  EXPECT_EQ(scan::count(fe, 'Q'), 1u);
}

TEST(RecordedCorpus, CancelRequestOnASecondConnection) {
  pt::Recording rec = load("cancel.rec");
  ASSERT_EQ(pt::connections(rec), (std::vector<int>{0, 1}));
  auto [fe0, be0] = scan::split_connection(rec, 0);
  auto [fe1, be1] = scan::split_connection(rec, 1);
  ASSERT_EQ(fe1.messages.size(), 1u);
  EXPECT_EQ(fe1.messages[0].code, scan::kCancelCode);
  EXPECT_TRUE(be1.messages.empty());  // the server answers a CancelRequest by closing
  auto key =
      std::find_if(be0.messages.begin(), be0.messages.end(), [](const scan::Message& m) { return m.type == 'K'; });
  ASSERT_NE(key, be0.messages.end());
  EXPECT_EQ(fe1.messages[0].body, key->body);  // process id and secret key of connection 0
  EXPECT_EQ(scan::sqlstates(be0), std::vector<std::string>{"57014"});
  auto error =
      std::find_if(be0.messages.begin(), be0.messages.end(), [](const scan::Message& m) { return m.type == 'E'; });
  EXPECT_LT(fe1.messages[0].chunk, error->chunk);
}
