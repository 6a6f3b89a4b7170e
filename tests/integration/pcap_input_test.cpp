// pgdump-log on packet captures made by a real tcpdump on loopback, of real
// clients (psql, pgbench) talking to a throwaway server: through pgproxy,
// with tcpdump watching the client -> proxy leg, so the same traffic is in
// both pgproxy's capture and the pcap, and pgdump-log must say the same of
// both. Skipped when tcpdump cannot capture (not root, no CAP_NET_RAW).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
using pt::ProxyProcess;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tcpdump -i lo -U -w FILE port P, from start until stop(); its stderr in FILE.log.
class Tcpdump {
 public:
  Tcpdump(const std::string& file, uint16_t port, const std::string& interface = "lo") : file_(file) {
    log_ = file + ".log";
    const int fd = ::open(log_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return;
    pt::SpawnOptions o;
    o.env = pt::child_environment({});
    o.output_fd = fd;
    o.parent_death_signal = SIGKILL;
    // -Z root: Debian's tcpdump otherwise drops to the tcpdump user, who cannot write in our 0700 directory.
    const std::string exe = pt::find_executable("tcpdump", "/usr/sbin:/usr/bin:/sbin:/bin");
    if (exe.empty()) {
      ::close(fd);
      why_ = "tcpdump is not installed";
      return;
    }
    // Not --immediate-mode: that mode gives every packet a ring slot of the
    // snapshot length, so even a 64 MiB ring holds about 500 packets, and
    // under ASan with two tests at once the kernel dropped a packet of a
    // pgbench session while tcpdump was behind (the pcap then lacked 235
    // acknowledged bytes). Without it packets are packed into the ring's
    // blocks: tcpdump stopped (SIGSTOP) through a burst of 600 packets
    // dropped none with -B 16384, 189 in immediate mode with -B 65536. A
    // block reaches the file when full or after tcpdump's 1 s timeout: stop()
    // waits for the sessions' last packets, not for a fixed time.
    pid_ = pt::spawn_process({exe, "-i", interface, "-n", "-U", "-B", "16384", "-s", "0", "-Z", "root", "-w", file,
                              "tcp", "port", std::to_string(port)},
                             o);
    ::close(fd);
    // Ready once it says it listens; gone early means it cannot capture here.
    for (int i = 0; i < 100; ++i) {
      if (read_file(log_).find("listening on") != std::string::npos) {
        ready_ = true;
        // The kernel attaches the filter just before the message: a moment more for safety.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why_ = "tcpdump cannot capture here: " + read_file(log_);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    why_ = "tcpdump did not start listening: " + read_file(log_);
    stop();
  }
  ~Tcpdump() { stop(); }
  bool ready() const { return ready_; }
  // Packets of the file so far that match a tcpdump filter (a record being
  // written at the end is not counted).
  size_t count_packets(const std::string& filter) const {
    const std::string exe = pt::find_executable("tcpdump", "/usr/sbin:/usr/bin:/sbin:/bin");
    pt::CommandResult r = pt::run_command({exe, "-n", "-Z", "root", "-r", file_, filter});
    return pt::lines_of(r.out).size();
  }
  const std::string& why() const { return why_; }
  // Stops it (SIGINT: it writes what it has and exits) and waits. `connections`:
  // how many the test opened, when it knows; the wait below then also needs
  // that many SYNs in the file (a connection whose packets are all still in
  // tcpdump's ring adds no SYN, so FINs >= 2 x SYNs alone can hold too early).
  void stop(size_t connections = 0) {
    if (pid_ <= 0) return;
    // What tcpdump has not yet read from its ring at SIGINT is lost (under
    // load, after a fixed pause of 300 ms, that was a session's last
    // packets). So wait until the file holds every connection closed both
    // ways (a FIN from each side for each SYN), or 10 s.
    if (ready_) {
      for (int i = 0; i < 100; ++i) {
        // tcp[] is IPv4 only: over IPv6 (no extension headers on loopback) the flags are byte 53.
        const size_t syns =
            count_packets("(ip and tcp[13] & 0x12 == 0x02) or (ip6[6] == 6 and ip6[53] & 0x12 == 0x02)");
        const size_t fins = count_packets("(ip and tcp[13] & 0x01 != 0) or (ip6[6] == 6 and ip6[53] & 0x01 != 0)");
        if (syns > 0 && syns >= connections && fins >= 2 * syns) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    ::kill(pid_, SIGINT);
    int status = 0;
    for (int i = 0; i < 200 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  std::string log() const { return read_file(log_); }
  // After stop(): the packets the kernel dropped because tcpdump was behind
  // (its "N packets dropped by kernel" line). The pcap then lacks them, and
  // the comparisons below are not a test of the reader.
  unsigned long dropped() const {
    std::smatch m;
    const std::string text = log();
    static const std::regex line(R"((\d+) packets? dropped by kernel)");
    return std::regex_search(text, m, line) ? std::stoul(m[1].str()) : 0;
  }

 private:
  std::string file_, log_, why_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

class PcapInputTest : public pt::SharedServerTest<PcapInputTest> {
 public:
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

pt::CommandResult pgdump_log(const std::vector<std::string>& args, const std::string& stdin_data = {}) {
  pt::CommandOptions o;
  o.stdin_data = stdin_data;
  o.timeout = std::chrono::seconds(120);
  std::vector<std::string> argv = {pt::tool_path("pgdump-log"), "--no-progress"};
  argv.insert(argv.end(), args.begin(), args.end());
  return pt::run_command(argv, o);
}

// The SQL log's lines without what depends on timing: the time at the start
// and the duration.
std::vector<std::string> stable_lines(const std::string& out) {
  static const std::regex ts(R"(^\S+ )");
  static const std::regex duration(R"( duration_ms=[0-9.]+)");
  std::vector<std::string> lines;
  for (const std::string& l : pt::lines_of(out)) {
    lines.push_back(std::regex_replace(std::regex_replace(l, ts, ""), duration, ""));
  }
  return lines;
}

TEST_F(PcapInputTest, PsqlPgbenchAndCopyThroughProxySayTheSameInThePcap) {
  // --capture-backend: the server's side too, as the pcap has it (outcomes, rows).
  ProxyProcess proxy(pg(), {"--capture-backend"});
  const std::string pcap = proxy.dir() + "/lo.pcap";
  Tcpdump dump(pcap, proxy.port());
  if (!dump.ready()) GTEST_SKIP() << dump.why();

  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 'pcap-simple', 42", "-c",
                                          "SELECT relname FROM pg_class WHERE relname = $$pgbench_accounts$$"});
  ASSERT_TRUE(r.ok()) << r.describe();
  r = proxy.client(
      pg(), "psql",
      {"-X", "-q", "-c", "CREATE TEMP TABLE copied(a int, b text)", "-c", "COPY copied FROM STDIN", "-c",
       "COPY (SELECT g, md5(g::text) FROM generate_series(1, 2000) g) TO STDOUT", "-c", "SELECT count(*) FROM copied"},
      "1\tone\n2\ttwo\n3\tthree\n");
  ASSERT_TRUE(r.ok()) << r.describe();
  r = proxy.client(pg(), "pgbench", {"-n", "-M", "extended", "-c", "1", "-t", "20"});
  ASSERT_TRUE(r.ok()) << r.describe();
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 1/0"});
  EXPECT_FALSE(r.ok());
  // psql, psql, pgbench's own check and its client, psql.
  dump.stop(5);
  if (dump.dropped() > 0) GTEST_SKIP() << "the kernel dropped packets tcpdump was too slow for: " << dump.log();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  ASSERT_TRUE(std::filesystem::exists(pcap)) << dump.log();

  pt::CommandResult from_pcap = pgdump_log({pcap});
  ASSERT_EQ(from_pcap.exit_code, 0) << from_pcap.describe();
  pt::CommandResult from_capture = pgdump_log({proxy.capture()});
  ASSERT_EQ(from_capture.exit_code, 0) << from_capture.describe();
  EXPECT_NE(from_pcap.out.find("pcap-simple"), std::string::npos) << from_pcap.out;
  EXPECT_NE(from_pcap.out.find("UPDATE pgbench_accounts SET abalance"), std::string::npos);
  EXPECT_NE(from_pcap.out.find("COPY copied FROM STDIN"), std::string::npos);
  EXPECT_NE(from_pcap.out.find("22012"), std::string::npos) << "division by zero's SQLSTATE: " << from_pcap.out;
  // Statement for statement, the same lines, parameters and outcomes included.
  const std::vector<std::string> a = stable_lines(from_pcap.out), b = stable_lines(from_capture.out);
  EXPECT_GT(a.size(), 100u);
  EXPECT_EQ(a, b);

  // The other formats read it too.
  pt::CommandResult json = pgdump_log({"--format", "json", pcap});
  EXPECT_EQ(json.exit_code, 0) << json.describe();
  EXPECT_NE(json.out.find("SELECT 'pcap-simple', 42"), std::string::npos) << json.out;
  pt::CommandResult stats = pgdump_log({"--stats", pcap});
  EXPECT_EQ(stats.exit_code, 0) << stats.describe();
  pt::CommandResult stats_capture = pgdump_log({"--stats", proxy.capture()});
  EXPECT_NE(stats.out.find("pgbench_accounts"), std::string::npos) << stats.out;
  pt::CommandResult trace = pgdump_log({"--format", "trace", pcap});
  EXPECT_EQ(trace.exit_code, 0) << trace.describe();
  EXPECT_NE(trace.out.find("Query"), std::string::npos);

  // pgreplay replays the pcap against the server: every session logs in and runs.
  pt::CommandOptions replay_opts;
  replay_opts.env = pg().client_env();
  replay_opts.timeout = std::chrono::seconds(120);
  pt::CommandResult replay = pt::run_command({pt::tool_path("pgreplay"), "--no-progress", "--speed", "max", "-h",
                                              pg().host(), "-p", std::to_string(pg().port()), pcap},
                                             replay_opts);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();

  // From stdin, as in tcpdump -w - | pgdump-log -.
  pt::CommandResult from_stdin = pgdump_log({"-"}, read_file(pcap));
  EXPECT_EQ(from_stdin.exit_code, 0) << from_stdin.describe();
  EXPECT_EQ(stable_lines(from_stdin.out), a);
}

// A port nobody listens on now, on ::1 (for a pgproxy that must listen there).
uint16_t free_ipv6_port() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin6_port);
  }
  ::close(fd);
  return port;
}

TEST_F(PcapInputTest, Ipv6AndACancelThroughProxySayTheSameInThePcap) {
  const uint16_t port = free_ipv6_port();
  if (port == 0) GTEST_SKIP() << "no IPv6 loopback here";
  ProxyProcess proxy(pt::ProxyOptions{
      pg().host() + ":" + std::to_string(pg().port()), {"--capture-backend"}, {}, {}, "[::1]:" + std::to_string(port)});
  const std::string pcap = proxy.dir() + "/v6.pcap";
  Tcpdump dump(pcap, port);
  if (!dump.ready()) GTEST_SKIP() << dump.why();
  std::map<std::string, std::string> env = pg().client_env();
  env["PGHOST"] = "::1";
  env["PGPORT"] = std::to_string(port);
  pt::CommandOptions o;
  o.env = env;
  pt::CommandResult r = pt::run_command({pg().bindir() + "/psql", "-X", "-At", "-c", "SELECT 'over-ipv6'"}, o);
  ASSERT_TRUE(r.ok()) << r.describe();
  // psql sends a CancelRequest on a connection of its own when it gets SIGINT.
  const std::string psql_out = proxy.dir() + "/psql.out";
  const int fd = ::open(psql_out.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  pt::SpawnOptions so;
  so.env = pt::child_environment(env);
  so.output_fd = fd;
  so.parent_death_signal = SIGKILL;
  const pid_t psql = pt::spawn_process({pg().bindir() + "/psql", "-X", "-At", "-c", "SELECT pg_sleep(30)"}, so);
  ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(psql, SIGINT);
  int status = 0;
  ::waitpid(psql, &status, 0);
  EXPECT_NE(read_file(psql_out).find("canceling statement due to user request"), std::string::npos)
      << read_file(psql_out);
  dump.stop();
  if (dump.dropped() > 0) GTEST_SKIP() << "the kernel dropped packets tcpdump was too slow for: " << dump.log();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  pt::CommandResult from_pcap = pgdump_log({pcap});
  ASSERT_EQ(from_pcap.exit_code, 0) << from_pcap.describe();
  pt::CommandResult from_capture = pgdump_log({proxy.capture()});
  ASSERT_EQ(from_capture.exit_code, 0) << from_capture.describe();
  EXPECT_NE(from_pcap.out.find("client=[::1]:"), std::string::npos) << from_pcap.out;
  EXPECT_NE(from_pcap.out.find("SELECT 'over-ipv6'"), std::string::npos) << from_pcap.out;
  EXPECT_NE(from_pcap.out.find("57014"), std::string::npos) << "the cancelled statement: " << from_pcap.out;
  EXPECT_EQ(stable_lines(from_pcap.out), stable_lines(from_capture.out));
  // The cancel request is a session of its own in both.
  pt::CommandResult trace = pgdump_log({"--format", "trace", "--hide-volatile", pcap});
  pt::CommandResult trace_capture = pgdump_log({"--format", "trace", "--hide-volatile", proxy.capture()});
  EXPECT_NE(trace.out.find("CancelRequest"), std::string::npos) << trace.out;
  EXPECT_NE(trace_capture.out.find("CancelRequest"), std::string::npos) << trace_capture.out;
}

TEST_F(PcapInputTest, DirectToTheServerOnAnotherPortAndCutShort) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("pcap_direct." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  const std::string pcap = (dir / "direct.pcap").string();
  std::string tcpdump_log;
  {
    Tcpdump dump(pcap, pg().port(), "any");  // Linux cooked capture (SLL2), as tcpdump -i any writes it
    if (!dump.ready()) {
      std::filesystem::remove_all(dir);
      GTEST_SKIP() << dump.why();
    }
    pt::CommandResult r = pg().run_psql({"-At", "-c", "SELECT 'direct-' || 7"});
    ASSERT_TRUE(r.ok()) << r.describe();
    dump.stop();
    if (dump.dropped() > 0) {
      std::filesystem::remove_all(dir);
      GTEST_SKIP() << "the kernel dropped packets tcpdump was too slow for: " << dump.log();
    }
    tcpdump_log = dump.log();
  }
  // The server's port is not 5432: found by its startup packet, and by --port.
  pt::CommandResult out = pgdump_log({pcap});
  EXPECT_EQ(out.exit_code, 0) << out.describe();
  EXPECT_NE(out.out.find("SELECT 'direct-' || 7"), std::string::npos) << out.describe() << tcpdump_log;
  pt::CommandResult with_port = pgdump_log({"--port", std::to_string(pg().port()), pcap});
  EXPECT_EQ(with_port.out, out.out);

  // The same file cut in the middle of its last packets: what is whole is
  // printed, the damage is reported with the file and offset, exit status 1.
  std::string bytes = read_file(pcap);
  ASSERT_GT(bytes.size(), 200u);
  const std::string cut = (dir / "cut.pcap").string();
  {
    std::ofstream o(cut, std::ios::binary);
    o.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 30));
  }
  pt::CommandResult damaged = pgdump_log({cut});
  EXPECT_EQ(damaged.exit_code, 1) << damaged.describe();
  EXPECT_NE(damaged.out.find("SELECT 'direct-' || 7"), std::string::npos) << damaged.describe();
  EXPECT_NE(damaged.err.find(cut + ": damaged: "), std::string::npos) << damaged.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
