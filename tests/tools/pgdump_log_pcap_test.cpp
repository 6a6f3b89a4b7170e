// pgdump-log --format pcap read back by Debian's tshark: no malformed packet,
// no expert warning, every IP and TCP checksum good, and the statements the
// pgsql dissector finds are those pgdump-log --format json prints.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "capture_builder.hpp"
#include "pgwire/bytes.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"
#include "tshark.hpp"

namespace pgwire {
namespace {

const std::string kCorpus = PGWIRE_CORPUS_DIR;
const std::string kTool = std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log";

test::CommandResult dump(std::vector<std::string> args) {
  args.insert(args.begin(), {kTool, "--no-progress"});
  return test::run_command(args);
}

// Packets tshark finds wrong: malformed, an expert warning or error
// (severity 0x00600000 and up), or a checksum it computed as bad.
std::string bad_packets(const std::string& pcap, uint16_t port) {
  test::CommandResult r =
      test::tshark(pcap, port,
                   {"-Y",
                    "_ws.malformed || _ws.expert.severity >= 0x00600000 || ip.checksum.status == 0 || "
                    "tcp.checksum.status == 0 || (tcp && tcp.checksum.status != 1)"});
  EXPECT_TRUE(r.ok()) << r.describe();
  return r.out;
}

size_t packet_count(const std::string& pcap, uint16_t port) {
  test::CommandResult r = test::tshark(pcap, port, {"-T", "fields", "-e", "frame.number"});
  EXPECT_TRUE(r.ok()) << r.describe();
  return test::lines_of(r.out).size();
}

std::vector<std::string> tshark_queries(const std::string& pcap, uint16_t port) {
  test::CommandResult r;
  std::vector<std::string> out = test::tshark_queries(pcap, port, &r);
  EXPECT_TRUE(r.ok()) << r.describe();
  return out;
}

// A JSON string's value from where its opening quote was.
std::string json_string(const std::string& s, size_t pos) {
  std::string out;
  for (size_t i = pos + 1; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    const char e = s[++i];
    if (e == 'n') {
      out += '\n';
    } else if (e == 't') {
      out += '\t';
    } else if (e == 'r') {
      out += '\r';
    } else if (e == 'u') {
      const auto cp = static_cast<uint32_t>(std::stoul(s.substr(i + 1, 4), nullptr, 16));
      i += 4;
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
      } else {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
      }
    } else {
      out += e;
    }
  }
  return out;
}

// The statement texts of pgdump-log --format json, as tshark prints strings
// of the pgsql dissector (ASCII): a newline as \n, a tab as \t, every byte
// outside ASCII as U+FFFD.
std::vector<std::string> dump_queries(const std::vector<std::string>& captures) {
  std::vector<std::string> args = {"--format", "json"};
  args.insert(args.end(), captures.begin(), captures.end());
  test::CommandResult r = dump(args);
  EXPECT_TRUE(r.ok()) << r.describe();
  std::vector<std::string> out;
  for (const std::string& l : test::lines_of(r.out)) {
    const size_t at = l.find("\"query\":\"");
    if (at == std::string::npos) continue;
    std::string shown;
    for (char c : json_string(l, at + 8)) {
      if (c == '\n') {
        shown += "\\n";
      } else if (c == '\t') {
        shown += "\\t";
      } else if (static_cast<unsigned char>(c) >= 0x80) {
        shown += "\xef\xbf\xbd";
      } else {
        shown += c;
      }
    }
    out.push_back(shown);
  }
  return out;
}

bool is_subsequence(const std::vector<std::string>& part, const std::vector<std::string>& whole) {
  size_t i = 0;
  for (const std::string& w : whole) {
    if (i < part.size() && part[i] == w) ++i;
  }
  return i == part.size();
}

class PcapOfCorpus : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!test::have_tshark()) GTEST_SKIP() << "no " << test::kTshark;
  }
};

TEST_P(PcapOfCorpus, TsharkDissectsItCleanlyAndFindsTheStatements) {
  const std::string name = GetParam();
  const std::string cap = kCorpus + "/captures/" + name + ".pgwcap";
  test::TempDir dir("pgdump_log_pcap_test");
  const std::string pcap = dir.file(name + ".pcap");
  test::CommandResult r = dump({"--format", "pcap", "-o", pcap, cap});
  ASSERT_TRUE(r.ok()) << r.describe();
  struct stat st {};
  ASSERT_EQ(::stat(pcap.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  EXPECT_GT(packet_count(pcap, 5432), 10u);
  EXPECT_EQ(bad_packets(pcap, 5432), "");
  const std::vector<std::string> seen = tshark_queries(pcap, 5432);
  const std::vector<std::string> logged = dump_queries({cap});
  // A statement prepared once and executed n times is one Parse on the wire
  // and n lines in the log: the wire's texts are the log's, in its order,
  // each text at least once.
  EXPECT_TRUE(is_subsequence(seen, logged)) << name;
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), std::set<std::string>(logged.begin(), logged.end()));
  if (name != "pgbench_prepared") {
    EXPECT_EQ(seen, logged) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(RealTraffic, PcapOfCorpus,
                         testing::Values("psql_multi", "copy_in_out", "pgbench_simple", "pgbench_extended",
                                         "pgbench_extended_frontend_only", "pgbench_prepared", "pipeline_error",
                                         "scram_login", "cancel"));

std::vector<std::byte> typed(char type, std::string_view body) {
  test::CapEnc e;
  e.u8(static_cast<uint8_t>(type)).u32(static_cast<uint32_t>(body.size() + 4)).raw(body);
  return e.bytes();
}

std::vector<std::byte> startup(std::string_view user) {
  std::string body = std::string("\0\3\0\0user\0", 9) + std::string(user) + std::string("\0database\0db\0\0", 14);
  test::CapEnc e;
  e.u32(static_cast<uint32_t>(body.size() + 4)).raw(body);
  return e.bytes();
}

TEST(PgdumpLogPcap, Ipv6UnixSocketsAndMessagesOverOneSegment) {
  if (!test::have_tshark()) GTEST_SKIP() << "no " << test::kTshark;
  // A 200 KiB statement: four segments. Session 1 over IPv6, session 2 a
  // Unix-socket session to a server whose socket says port 5439; each
  // with a Parse (extended protocol) and a Query.
  std::string big = "SELECT '";
  big += std::string(200 << 10, 'x');
  big += "' AS big";
  const std::string parse_body = std::string("\0", 1) + "SELECT $1::int AS p" + std::string("\0\0\0", 3);
  using test::cap_frame;
  constexpr int64_t t = 1764298800000000000;
  auto ready = typed('Z', "I");
  auto cap = test::cap_cat(
      {test::cap_header(), test::cap_open(1, t, "[2001:db8::5]:40001", "[2001:db8::6]:5439"),
       test::cap_open(2, t + 1, "[local]", "/run/postgresql/.s.PGSQL.5439"),
       cap_frame(1, t + 10, 0, 1, startup("alice")), cap_frame(2, t + 11, 0, 1, startup("bob")),
       cap_frame(1, t + 20, 1, 0, ready), cap_frame(2, t + 21, 1, 0, ready),
       cap_frame(1, t + 30, 0, 0, typed('P', parse_body)), cap_frame(1, t + 30, 0, 0, typed('S', "")),
       cap_frame(1, t + 40, 1, 0, typed('1', "")), cap_frame(1, t + 40, 1, 0, ready),
       cap_frame(1, t + 50, 0, 0, typed('Q', big + std::string("\0", 1))), cap_frame(1, t + 60, 1, 0, ready),
       cap_frame(2, t + 70, 0, 0, typed('Q', std::string("SELECT 2\0", 9))), cap_frame(2, t + 80, 1, 0, ready),
       test::cap_close(1, t + 90, "client closed"), test::cap_close(2, t + 91, "client closed"),
       // Session 3: TLS that the proxy terminated, its decrypted stream recorded.
       test::cap_open(3, t + 100, "192.0.2.9:40003", "192.0.2.10:5439"),
       cap_frame(3, t + 110, 0, 1, test::CapEnc().u32(8).u32(80877103).bytes()),
       cap_frame(3, t + 120, 1, 2, test::CapEnc().u8('S').bytes()),
       test::cap_meta(3, t + 130, "client_tls", "TLSv1.3 TLS_AES_256_GCM_SHA384"),
       cap_frame(3, t + 140, 0, 1, startup("carol")), cap_frame(3, t + 150, 1, 0, ready),
       cap_frame(3, t + 160, 0, 0, typed('Q', std::string("SELECT 3\0", 9))), cap_frame(3, t + 170, 1, 0, ready),
       test::cap_close(3, t + 180, "client closed")});
  test::TempDir dir("pgdump_log_pcap_test");
  const std::string in = dir.write("built.pgwcap", cap);
  const std::string pcap = dir.file("built.pcap");
  test::CommandResult r = dump({"--format", "pcap", "-o", pcap, in});
  ASSERT_TRUE(r.ok()) << r.describe();

  EXPECT_EQ(bad_packets(pcap, 5439), "");
  EXPECT_EQ(tshark_queries(pcap, 5439), (std::vector<std::string>{"SELECT $1::int AS p", big, "SELECT 2", "SELECT 3"}));
  // The TLS session reads as plaintext: no TLS, its StartupMessage right after the handshake.
  test::CommandResult tls = test::tshark(pcap, 5439, {"-Y", "tls", "-T", "fields", "-e", "frame.number"});
  ASSERT_TRUE(tls.ok()) << tls.describe();
  EXPECT_EQ(tls.out, "");
  test::CommandResult carol = test::tshark(
      pcap, 5439, {"-Y", "ip.src == 192.0.2.9 && pgsql.parameter_value == \"carol\"", "-T", "fields", "-e", "tcp.seq"});
  ASSERT_TRUE(carol.ok()) << carol.describe();
  EXPECT_EQ(carol.out, "1\n");
  // The big Query: four segments from the IPv6 client, none over 65495 bytes of payload.
  test::CommandResult segs = test::tshark(
      pcap, 5439,
      {"-Y", "ipv6.src == 2001:db8::5 && tcp.len > 0", "-T", "fields", "-e", "tcp.len", "-e", "tcp.srcport"});
  ASSERT_TRUE(segs.ok()) << segs.describe();
  size_t full = 0;
  for (const std::string& l : test::lines_of(segs.out)) {
    const unsigned long len = std::stoul(l);
    EXPECT_LE(len, 65495u);
    if (len == 65495) ++full;
    EXPECT_NE(l.find("\t40001"), std::string::npos);
  }
  EXPECT_EQ(full, 3u);
  // The Unix-socket session: 127.0.0.2, port 1024 + 2, to 127.0.0.1:5439, with its handshake and FIN.
  test::CommandResult local = test::tshark(pcap, 5439,
                                           {"-Y", "ip.src == 127.0.0.2 && tcp.srcport == 1026 && tcp.dstport == 5439",
                                            "-T", "fields", "-e", "tcp.flags.str"});
  ASSERT_TRUE(local.ok()) << local.describe();
  const std::vector<std::string> flags = test::lines_of(local.out);
  ASSERT_EQ(flags.size(), 6u);  // SYN, ACK, startup, Query, FIN, last ACK
  EXPECT_NE(flags.front().find('S'), std::string::npos);
  EXPECT_NE(flags[4].find('F'), std::string::npos);

  // --user: bob's session only.
  test::CommandResult only = dump({"--format", "pcap", "-o", pcap, "--user", "bob", in});
  ASSERT_TRUE(only.ok()) << only.describe();
  EXPECT_EQ(tshark_queries(pcap, 5439), std::vector<std::string>{"SELECT 2"});
}

TEST(PgdumpLogPcap, OutputOptionAndRefusedCombinations) {
  const std::string cap = kCorpus + "/captures/psql_multi.pgwcap";
  test::TempDir dir("pgdump_log_pcap_test");
  const std::string out = dir.file("out.sql");
  test::CommandResult to_file = dump({"-o", out, cap});
  test::CommandResult to_stdout = dump({cap});
  ASSERT_TRUE(to_file.ok() && to_stdout.ok());
  EXPECT_EQ(to_file.out, "");
  EXPECT_EQ(test::slurp(out), to_stdout.out);
  EXPECT_FALSE(to_stdout.out.empty());
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--format", "pcap", "--stats", cap},
                                              {"--format", "pcap", "--check", cap},
                                              {"--format", "pcap", "--grep", "x", cap}}) {
    test::CommandResult r = dump(bad);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find("pcap"), std::string::npos);
  }
  // Not to a terminal: script(1) runs it on a pseudo-terminal.
  if (::access("/usr/bin/script", X_OK) == 0) {
    test::CommandResult tty =
        test::run_command({"/usr/bin/script", "-qec", kTool + " --format pcap " + cap, "/dev/null"});
    EXPECT_EQ(tty.exit_code, 2) << tty.describe();
    EXPECT_NE(tty.out.find("not writing a binary pcap to a terminal"), std::string::npos) << tty.describe();
  }
  // To a pipe (stdout here is one) the pcap goes out: its magic first.
  test::CommandResult piped = dump({"--format", "pcap", cap});
  ASSERT_TRUE(piped.ok()) << piped.describe();
  EXPECT_EQ(piped.out.substr(0, 4), std::string("\x4d\x3c\xb2\xa1", 4));
}

}  // namespace
}  // namespace pgwire
