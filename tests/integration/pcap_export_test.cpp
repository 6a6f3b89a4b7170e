// pgdump-log --format pcap on a capture pgproxy made of real clients (psql
// and pgbench -M extended) talking over IPv6 loopback to a real PostgreSQL,
// read back by Debian's tshark: clean dissection, good checksums, IPv6
// packets, a 200 KiB Query split over several segments, and the statements
// tshark finds equal to pgdump-log's.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"
#include "tshark.hpp"

namespace pt = pgwire::test;

namespace {

bool ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

class PcapExportTest : public pt::SharedServerTest<PcapExportTest> {};

TEST_F(PcapExportTest, PsqlAndPgbenchOverIpv6ReadBackByTshark) {
  if (!pt::have_tshark()) GTEST_SKIP() << "no " << pt::kTshark;
  if (!ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback";
  pt::ProxyOptions o;
  o.upstream = "127.0.0.1:" + std::to_string(pg().port());
  o.listen = "[::1]:0";
  pt::ProxyProcess proxy(o);
  const std::string out = proxy.output();
  const std::string marker = "listening on [::1]:";
  const size_t at = out.find(marker);
  ASSERT_NE(at, std::string::npos) << out;
  const std::string port = std::to_string(std::stoi(out.substr(at + marker.size())));
  const std::map<std::string, std::string> env = {{"PGHOST", "::1"}, {"PGPORT", port}};

  const std::string big = "SELECT length('" + std::string(200 << 10, 'x') + "') AS big;";
  pt::CommandResult psql = proxy.run(pg(), {pg().bindir() + "/psql", "-X", "-v", "ON_ERROR_STOP=1", "-q"},
                                     "SELECT 1 AS one;\n" + big + "\nSELECT 'tab\there' AS t;\n", env);
  ASSERT_TRUE(psql.ok()) << psql.describe();
  EXPECT_NE(psql.out.find("204800"), std::string::npos);
  const std::string script = proxy.dir() + "/extended.sql";
  pt::spit(script, "\\set x 41\nSELECT :x::int + 1 AS answer;\n");
  pt::CommandResult bench =
      proxy.run(pg(), {pg().bindir() + "/pgbench", "-n", "-t", "3", "-M", "extended", "-f", script}, {}, env);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  ASSERT_EQ(proxy.stop(), 0);

  const std::string pcap = proxy.dir() + "/capture.pcap";
  pt::CommandResult dump =
      pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--format", "pcap", "-o", pcap, proxy.capture()});
  ASSERT_TRUE(dump.ok()) << dump.describe();

  const uint16_t server_port = pg().port();
  pt::CommandResult bad = pt::tshark(pcap, server_port,
                                     {"-Y",
                                      "_ws.malformed || _ws.expert.severity >= 0x00600000 || ip || "
                                      "tcp.checksum.status == 0 || (tcp && tcp.checksum.status != 1)"});
  ASSERT_TRUE(bad.ok()) << bad.describe();
  EXPECT_EQ(bad.out, "");  // nothing malformed, no warning, no bad checksum, no IPv4 packet

  // Client [::1], server 127.0.0.1 as ::ffff:127.0.0.1: every packet IPv6.
  pt::CommandResult addrs = pt::tshark(pcap, server_port, {"-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst"});
  ASSERT_TRUE(addrs.ok()) << addrs.describe();
  std::set<std::string> pairs;
  for (const std::string& l : pt::lines_of(addrs.out)) pairs.insert(l);
  EXPECT_EQ(pairs, (std::set<std::string>{"::1\t::ffff:127.0.0.1", "::ffff:127.0.0.1\t::1"}));

  // The big Query: segments of at most 65495 bytes, at least three of them full.
  pt::CommandResult lens = pt::tshark(pcap, server_port, {"-Y", "tcp.len >= 65495", "-T", "fields", "-e", "tcp.len"});
  ASSERT_TRUE(lens.ok()) << lens.describe();
  EXPECT_EQ(pt::lines_of(lens.out), (std::vector<std::string>{"65495", "65495", "65495"}));

  pt::CommandResult seen;
  const std::vector<std::string> queries = pt::tshark_queries(pcap, server_port, &seen);
  ASSERT_TRUE(seen.ok()) << seen.describe();
  pt::CommandResult logged =
      pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--format", "json", proxy.capture()});
  ASSERT_TRUE(logged.ok()) << logged.describe();
  std::vector<std::string> expected;
  for (const std::string& l : pt::lines_of(logged.out)) {
    const size_t q = l.find("\"query\":\"");
    ASSERT_NE(q, std::string::npos) << l;
    std::string text;
    for (size_t i = q + 9; i < l.size() && l[i] != '"'; ++i) {
      if (l[i] == '\\') {
        // JSON's \t is a tab, which tshark shows as \t: the same two characters.
        text += l[i];
        text += l[++i];
        continue;
      }
      text += l[i];
    }
    expected.push_back(text);
  }
  EXPECT_EQ(queries, expected);
  EXPECT_EQ(expected.size(), 6u);  // three from psql, three Executes of pgbench's unnamed Parse
  EXPECT_EQ(expected.back(), "SELECT $1::int + 1 AS answer;");
  EXPECT_EQ(expected[1], big);
}

}  // namespace
