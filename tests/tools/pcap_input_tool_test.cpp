// pgdump-log and pgreplay --dry-run on hand-made packet captures
// (pcap_builder.hpp): every output format, stdin, --port, and the exit status
// and report of a capture that lost a packet.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "pcap_builder.hpp"
#include "subprocess.hpp"
#include "wire_builder.hpp"

namespace pgwire {
namespace {

using test::PacketBytes;
using test::TcpFlow;
using test::W;

const std::string kPgdumpLog = std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log";
const std::string kPgreplay = std::string(PGWIRE_BINARY_DIR) + "/tools/pgreplay/pgreplay";

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "pcap_tool_test_" + std::to_string(getpid()) + "_" + name;
}

std::string write(const std::string& name, const PacketBytes& bytes) {
  std::string p = temp_path(name);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  ::chmod(p.c_str(), 0600);
  return p;
}

test::CommandResult run(const std::vector<std::string>& argv, const std::string& stdin_data = {}) {
  test::CommandOptions o;
  o.stdin_data = stdin_data;
  return test::run_command(argv, o);
}

// Two sessions on port 6000 over Ethernet; the first loses its second query
// (the server acknowledges it), the second goes on to the end.
PacketBytes two_sessions_one_gap(size_t* gap_packet_offset) {
  test::PcapFile file(1);
  TcpFlow a(test::v4(192, 168, 1, 10, 50000), test::v4(192, 168, 1, 20, 6000));
  TcpFlow b(test::v4(192, 168, 1, 11, 50001), test::v4(192, 168, 1, 20, 6000));
  int64_t ts = 1'764'700'000'000'000'000;  // 2025-12-02T18:26:40Z
  auto put = [&](const PacketBytes& ip) { file.packet(ts += 1'000'000, test::ethernet(ip, false)); };
  for (TcpFlow* f : {&a, &b}) {
    put(f->syn());
    put(f->syn_ack());
    put(f->client(W().startup({{"user", "bob"}, {"database", "inventory"}}).bytes()));
    put(f->server(W().msg('R', W().i32(0)).msg('Z', W().byte('I')).bytes()));
  }
  put(a.client(W().msg('Q', W().str("SELECT 'kept'")).bytes()));
  put(a.server(W().msg('C', W().str("SELECT 1")).msg('Z', W().byte('I')).bytes()));
  a.skip_client(static_cast<uint32_t>(W().msg('Q', W().str("SELECT 'lost'")).bytes().size()));
  *gap_packet_offset = file.bytes().size();
  put(a.server(W().msg('C', W().str("SELECT 1")).msg('Z', W().byte('I')).bytes()));
  // The second session's extended query: Parse, Bind with a parameter, Execute, Sync.
  put(b.client(W().msg('P', W().str("").str("SELECT $1::int + 1").i16(0))
                   .msg('B', W().str("").str("").i16(0).i16(1).value("41").i16(0))
                   .msg('E', W().str("").i32(0))
                   .msg('S', W())
                   .bytes()));
  put(b.server(W().msg('1', W())
                   .msg('2', W())
                   .msg('D', W().i16(1).value("42"))
                   .msg('C', W().str("SELECT 1"))
                   .msg('Z', W().byte('I'))
                   .bytes()));
  put(b.client(W().msg('X', W()).bytes()));
  put(b.client_fin());
  put(b.server_fin());
  return file.bytes();
}

TEST(PcapInputTool, DamageIsReportedAndTheRestPrinted) {
  size_t gap_at = 0;
  const std::string pcap = write("gap.pcap", two_sessions_one_gap(&gap_at));
  test::CommandResult r = run({kPgdumpLog, "--no-progress", "--port", "6000", pcap});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("SELECT 'kept'"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("SELECT 'lost'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("params=($1='41')"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client=192.168.1.11:50001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("user=bob"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find(pcap + ": damaged: truncated at offset " + std::to_string(gap_at) + ": packet 11: session 1"),
            std::string::npos)
      << r.err;

  // Every format reads it; the damage is the same.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--format", "json"}, {"--format", "trace"}, {"--stats"}, {"--check"}, {"--session", "2"}}) {
    std::vector<std::string> argv = {kPgdumpLog, "--no-progress", "--port", "6000"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(pcap);
    test::CommandResult f = run(argv);
    EXPECT_EQ(f.exit_code, 1) << args[0] << ": " << f.describe();
    EXPECT_NE(f.err.find("packet 11: session 1"), std::string::npos) << args[0] << ": " << f.err;
  }
  test::CommandResult json = run({kPgdumpLog, "--no-progress", "--format", "json", "--port", "6000", pcap});
  EXPECT_NE(json.out.find("\"SELECT $1::int + 1\""), std::string::npos) << json.out;

  // From stdin: the same output.
  std::ifstream in(pcap, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  test::CommandResult piped = run({kPgdumpLog, "--no-progress", "--port", "6000", "-"}, bytes);
  EXPECT_EQ(piped.exit_code, 1);
  EXPECT_EQ(piped.out, r.out);
  EXPECT_NE(piped.err.find("-: damaged: truncated at offset " + std::to_string(gap_at)), std::string::npos)
      << piped.err;
}

TEST(PcapInputTool, PortSelectsConnectionsThatStartedBeforeTheCapture) {
  // No SYN: only a --port makes this connection PostgreSQL.
  test::PcapFile file(101);
  TcpFlow f(test::v4(10, 1, 1, 1, 41000), test::v4(10, 1, 1, 2, 7000));
  const int64_t ts = 1'764'700'000'000'000'000;
  file.packet(ts + 1000, f.client(W().msg('Q', W().str("SELECT 'joined late'")).bytes()));
  file.packet(ts + 2000, f.server(W().msg('C', W().str("SELECT 1")).msg('Z', W().byte('I')).bytes()));
  const std::string pcap = write("late.pcap", file.bytes());
  test::CommandResult without = run({kPgdumpLog, "--no-progress", pcap});
  EXPECT_EQ(without.exit_code, 0) << without.describe();
  EXPECT_EQ(without.out, "");
  test::CommandResult with = run({kPgdumpLog, "--no-progress", "--port", "5432,7000", pcap});
  EXPECT_EQ(with.exit_code, 0) << with.describe();
  EXPECT_NE(with.out.find("SELECT 'joined late'"), std::string::npos) << with.describe();

  test::CommandResult dry = run({kPgreplay, "--dry-run", "--pcap-port", "7000", pcap});
  EXPECT_NE(dry.out.find("session 1 is partial"), std::string::npos) << dry.describe();
}

TEST(PcapInputTool, PgreplayDryRunReadsAPcap) {
  size_t gap_at = 0;
  const std::string pcap = write("dry.pcap", two_sessions_one_gap(&gap_at));
  test::CommandResult dry = run({kPgreplay, "--dry-run", "--pcap-port", "6000", pcap});
  EXPECT_NE(dry.out.find("session 2 execute: SELECT $1::int + 1 params: $1 = '41'"), std::string::npos)
      << dry.describe();
  EXPECT_NE(dry.err.find("damaged"), std::string::npos) << dry.err;
}

}  // namespace
}  // namespace pgwire
