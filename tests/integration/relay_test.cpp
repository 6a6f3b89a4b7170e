// RecordRelay in front of a real server, driven by real clients.
#include <gtest/gtest.h>

#include <algorithm>

#include "pg_server.hpp"
#include "record_relay.hpp"
#include "wire_scan.hpp"

namespace pt = pgwire::test;
namespace scan = pgwire::test::scan;

namespace {

std::string text_of(const std::vector<std::byte>& bytes) {
  std::string s;
  for (std::byte b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Runs a client command against the relay instead of the server.
pt::CommandResult via_relay(const pt::TempPostgres& pg, const pt::RecordRelay& relay, std::vector<std::string> argv,
                            const std::map<std::string, std::string>& extra_env = {}) {
  pt::CommandOptions opts;
  opts.env = pg.client_env();
  opts.env["PGPORT"] = std::to_string(relay.port());
  for (auto& [name, value] : extra_env) opts.env[name] = value;
  opts.timeout = std::chrono::seconds(60);
  argv[0] = pg.bindir() + "/" + argv[0];
  return pt::run_command(argv, opts);
}

}  // namespace

TEST(RecordRelay, RecordsAPsqlSession) {
  pt::TempPostgres pg;
  pt::RecordRelay relay(pg.host(), pg.port());
  pt::CommandResult r = via_relay(pg, relay, {"psql", "-X", "-At", "-c", "SELECT 'through the relay'"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "through the relay\n");
  ASSERT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  relay.stop();
  EXPECT_TRUE(relay.errors().empty());

  pt::Recording rec = relay.recording();
  EXPECT_EQ(relay.connections_accepted(), 1u);
  EXPECT_NE(text_of(pt::stream_bytes(rec, 0, 'F')).find("SELECT 'through the relay'"), std::string::npos);
  auto [fe, be] = scan::split_connection(rec, 0);
  EXPECT_EQ(fe.leftover, 0u);
  EXPECT_EQ(be.leftover, 0u);
  EXPECT_EQ(fe.messages.back().type, 'X');
  EXPECT_EQ(scan::count(be, 'Z'), 2u);
  EXPECT_TRUE(std::is_sorted(rec.chunks.begin(), rec.chunks.end(),
                             [](const pt::Chunk& a, const pt::Chunk& b) { return a.usec < b.usec; }));

  // What is written is what is read back.
  pt::Recording back = pt::parse_recording(pt::format_recording(rec));
  ASSERT_EQ(back.chunks.size(), rec.chunks.size());
  for (size_t i = 0; i < rec.chunks.size(); ++i) {
    EXPECT_EQ(back.chunks[i].bytes, rec.chunks[i].bytes);
    EXPECT_EQ(back.chunks[i].dir, rec.chunks[i].dir);
    EXPECT_EQ(back.chunks[i].usec, rec.chunks[i].usec);
  }
}

// Several MB in one direction: the relay must cope with partial writes and its high-water mark
// without losing or reordering a byte.
TEST(RecordRelay, ForwardsLargeResultsIntact) {
  pt::TempPostgres pg;
  pt::RecordRelay relay(pg.host(), pg.port());
  const std::string sql = "COPY (SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g) TO STDOUT";
  pt::CommandResult direct = pg.run_psql({"-c", sql});
  ASSERT_EQ(direct.exit_code, 0) << direct.describe();
  pt::CommandResult relayed = via_relay(pg, relay, {"psql", "-X", "-c", sql});
  ASSERT_EQ(relayed.exit_code, 0) << relayed.describe();
  EXPECT_GT(relayed.out.size(), 5'000'000u);
  EXPECT_TRUE(relayed.out == direct.out);
  ASSERT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  pt::Recording rec = relay.recording();
  auto [fe, be] = scan::split_connection(rec, 0);
  EXPECT_EQ(be.leftover, 0u);
  EXPECT_EQ(scan::count(be, 'd'), 40000u);
}

TEST(RecordRelay, ManyConcurrentConnections) {
  pt::TempPostgres pg;
  ASSERT_TRUE(pt::run_command({pg.bindir() + "/pgbench", "-i", "-q", "-s", "1"}, pg.client_env()).ok());
  pt::RecordRelay relay(pg.host(), pg.port());
  pt::CommandResult r = via_relay(pg, relay, {"pgbench", "-n", "-S", "-c", "4", "-j", "2", "-t", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  pt::Recording rec = relay.recording();
  EXPECT_EQ(relay.connections_accepted(), 5u);  // pgbench's setup connection + 4 clients
  ASSERT_EQ(pt::connections(rec).size(), 5u);
  for (int conn : pt::connections(rec)) {
    auto [fe, be] = scan::split_connection(rec, conn);
    EXPECT_EQ(fe.messages.back().type, 'X') << conn;
    EXPECT_EQ(be.leftover, 0u) << conn;
  }
}

TEST(RecordRelay, Md5ChallengeIsOnTheWire) {
  pt::TempPostgresOptions options;
  options.host_auth = pt::HostAuth::md5;
  pt::TempPostgres pg(options);
  pt::RecordRelay relay(pg.host(), pg.port());
  pt::CommandResult r = via_relay(pg, relay, {"psql", "-X", "-At", "-c", "SELECT 1"}, {{"PGSSLMODE", "disable"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  auto [fe, be] = scan::split_connection(relay.recording(), 0);
  ASSERT_FALSE(be.messages.empty());
  EXPECT_EQ(be.messages[0].type, 'R');
  EXPECT_EQ(scan::be32(be.messages[0].body, 0), 5u);  // AuthenticationMD5Password
  EXPECT_EQ(be.messages[0].body.size(), 8u);          // code + 4-byte salt
}

TEST(RecordRelay, UpstreamRefusedClosesTheClient) {
  uint16_t nothing_there = pt::pick_free_port();
  pt::RecordRelay relay("127.0.0.1", nothing_there);
  pt::CommandOptions opts;
  opts.env = {{"PGHOST", "127.0.0.1"},
              {"PGPORT", std::to_string(relay.port())},
              {"PGCONNECT_TIMEOUT", "5"},
              {"PGUSER", "postgres"}};
  pt::CommandResult r = pt::run_command({pt::find_postgres_bindir() + "/psql", "-X", "-c", "SELECT 1"}, opts);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  ASSERT_FALSE(relay.errors().empty());
  EXPECT_NE(relay.errors()[0].find("connect to upstream"), std::string::npos);
}

TEST(RecordRelay, StopIsIdempotentAndKeepsTheRecording) {
  pt::TempPostgres pg;
  pt::RecordRelay relay(pg.host(), pg.port());
  ASSERT_EQ(via_relay(pg, relay, {"psql", "-X", "-c", "SELECT 1"}).exit_code, 0);
  ASSERT_TRUE(relay.wait_idle(std::chrono::seconds(10)));
  relay.stop();
  relay.stop();
  EXPECT_FALSE(relay.recording().chunks.empty());
  EXPECT_TRUE(relay.wait_idle(std::chrono::milliseconds(10)));
}
