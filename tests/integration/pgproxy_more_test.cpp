// pgproxy under stress that the basic tests (pgproxy_test.cpp) do not cover: a 100 MB query
// string, a slow client reading a 1 GiB result, the upstream server stopped and restarted, the
// live SQL log against pgdump-log's offline decoding of the same capture, and garbage on some
// connections while pgbench runs on others. Memory is judged by the proxy's peak RSS (VmHWM in
// /proc/PID/status), which covers the whole life of the process.
//
// The wire clients here are written from scratch on raw sockets and do not use libpgwire: what
// the proxy forwards is checked by code independent of the code under test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loopback.hpp"
#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;
using pt::line_head;
using pt::lines_of;
using pt::proxy_statement_count;
using pt::ProxyProcess;
using pt::server_statement_count;
using namespace std::chrono_literals;
using namespace std::string_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kProtocol30 = 196608;
constexpr uint32_t kSslRequestCode = 80877103;
// The bound on the proxy's memory. Not checked in a sanitizer build: ASan's shadow memory
// and its quarantine of freed blocks (256 MB by default) are not the proxy's own.
constexpr long kMemoryLimitKib = 64L * 1024;
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCheckMemory = false;
#else
constexpr bool kCheckMemory = true;
#endif

// The state letter of /proc/PID/stat ('Z' for a zombie); 0 if the process is gone.
char proc_state(pid_t pid) {
  std::string stat = pt::read_text_file("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return 0;
  return stat[close + 2];
}

// --- a test-only protocol builder ---------------------------------------------------------------

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t get_be32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string startup_packet(const std::string& user, const std::string& database) {
  std::string params;
  for (const std::string& s : {std::string("user"), user, std::string("database"), database}) {
    params += s;
    params.push_back('\0');
  }
  params.push_back('\0');
  std::string out;
  put_be32(out, static_cast<uint32_t>(8 + params.size()));
  put_be32(out, kProtocol30);
  return out + params;
}

std::string query_message(std::string_view sql) {
  std::string out = "Q";
  put_be32(out, static_cast<uint32_t>(4 + sql.size() + 1));
  out += sql;
  out.push_back('\0');
  return out;
}

// The SQLSTATE ('C' field) of an ErrorResponse body.
std::string error_sqlstate(std::string_view body) {
  size_t at = 0;
  while (at < body.size() && body[at] != '\0') {
    char code = body[at++];
    size_t end = body.find('\0', at);
    if (end == std::string_view::npos) break;
    if (code == 'C') return std::string(body.substr(at, end - at));
    at = end + 1;
  }
  return {};
}

// --- a raw socket client ----------------------------------------------------------------------

struct Message {
  char type = 0;
  uint32_t length = 0;  // as on the wire (includes itself)
  std::string body;     // at most the `keep` bytes asked for
};

class RawClient {
 public:
  // rcvbuf > 0: a small receive buffer (set before connect), for a slow reader.
  explicit RawClient(uint16_t port, int rcvbuf = 0) {
    // A blocking send must never hang the test: 30 s at most.
    fd_ = pgwire::test::connect_to_loopback(port, 0, 30, rcvbuf);
  }
  ~RawClient() { close_now(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void close_now() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send_all(std::string_view data) const {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // The next message, its body cut to `keep` bytes (the rest is read and dropped, so a huge
  // message never sits here whole); nullopt on EOF, error or timeout. Reads `read_size` bytes at
  // a time and sleeps `pause` after every read: a slow client.
  std::optional<Message> next(std::chrono::milliseconds limit = 10s, size_t keep = size_t{64} * 1024,
                              size_t read_size = size_t{64} * 1024, std::chrono::microseconds pause = 0us) {
    auto deadline = Clock::now() + limit;
    for (;;) {
      if (!current_ && in_.size() - pos_ >= 5) {
        current_ = Message{in_[pos_], get_be32(in_, pos_ + 1), {}};
        if (current_->length < 4) return std::nullopt;
        left_ = current_->length - 4;
        pos_ += 5;
      }
      if (current_) {
        size_t take = std::min(left_, in_.size() - pos_);
        size_t room = keep > current_->body.size() ? keep - current_->body.size() : 0;
        current_->body.append(in_, pos_, std::min(take, room));
        pos_ += take;
        left_ -= take;
        bytes_ += take;
        if (left_ == 0) {
          Message m = std::move(*current_);
          current_.reset();
          return m;
        }
      }
      if (!current_ && in_.size() - pos_ >= 5) continue;
      in_.erase(0, pos_);
      pos_ = 0;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || fd_ < 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      size_t old = in_.size();
      in_.resize(old + read_size);
      ssize_t n = recv(fd_, in_.data() + old, read_size, 0);
      in_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n <= 0) return std::nullopt;
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
  }

  // Sends a StartupMessage and reads up to ReadyForQuery; false (with the SQLSTATE of an
  // ErrorResponse, if any, in `sqlstate`) if the session did not open.
  bool start(const std::string& user, std::string* sqlstate = nullptr) {
    if (!send_all(startup_packet(user, "postgres"))) return false;
    while (auto m = next()) {
      if (m->type == 'E') {
        if (sqlstate) *sqlstate = error_sqlstate(m->body);
        return false;
      }
      if (m->type == 'Z') return true;
    }
    return false;
  }

  // True if the peer closes the connection within `limit` (anything it sends is read and dropped).
  bool closed_within(std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    char buf[4096];
    while (fd_ >= 0 && Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
    return false;
  }

  uint64_t body_bytes() const { return bytes_; }

 private:
  int fd_ = -1;
  std::string in_;
  size_t pos_ = 0;
  std::optional<Message> current_;
  size_t left_ = 0;
  uint64_t bytes_ = 0;
};

class PgproxyMoreTest : public pt::SharedServerTest<PgproxyMoreTest> {
 public:
  static pt::TempPostgresOptions server_options() {
    pt::TempPostgresOptions options;
    options.settings = {{"log_statement", "all"}};
    return options;
  }
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

// (a) A 100 MB query string is streamed, not held: it reaches the server whole, the SQL log keeps
// the first MiB flagged "truncated", the capture keeps it all, and the proxy's memory stays small.
TEST_F(PgproxyMoreTest, HundredMegabyteQueryIsStreamedAndTruncatedInTheLog) {
  ProxyProcess proxy(pg());
  constexpr size_t kLiteral = size_t{100} << 20;
  std::string sql = "SELECT length('";
  sql.append(kLiteral, 'x');
  sql += "')";
  {
    RawClient client(proxy.port());
    ASSERT_TRUE(client.start(pg().user()));
    ASSERT_TRUE(client.send_all(query_message(sql)));
    std::string value, sqlstate;
    while (auto m = client.next(30s)) {
      if (m->type == 'D') value = m->body;
      if (m->type == 'E') sqlstate = error_sqlstate(m->body);
      if (m->type == 'Z') break;
    }
    EXPECT_EQ(sqlstate, "");
    // DataRow: 1 column, length 9, "104857600".
    EXPECT_NE(value.find(std::to_string(kLiteral)), std::string::npos);
    client.send_all("X\0\0\0\4"s);
  }
  long hwm = proxy.peak_rss_kib();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  EXPECT_GT(hwm, 0);
  if (kCheckMemory) {
    EXPECT_LT(hwm, kMemoryLimitKib) << "pgproxy's peak RSS with a 100 MB query";
  }
  RecordProperty("pgproxy_peak_rss_kib", std::to_string(hwm));

  const std::string log = pt::read_text_file(proxy.sql_log());
  std::vector<std::string> lines = lines_of(log);
  ASSERT_EQ(lines.size(), 1u) << log.substr(0, 500);
  const std::string& line = lines[0];
  std::string head = line_head(line);
  EXPECT_NE(head.find(" query ok "), std::string::npos) << head;
  EXPECT_NE(head.find("tag=\"SELECT 1\""), std::string::npos) << head;
  EXPECT_NE(head.find(" truncated"), std::string::npos) << head;
  EXPECT_NE(line.find(" sql: SELECT length('xxxxxxxx"), std::string::npos);
  EXPECT_GE(line.size(), size_t{1} << 20) << "the first MiB of the SQL is kept";
  EXPECT_LT(line.size(), (size_t{1} << 20) + 8192) << "and no more than that";
  EXPECT_GT(fs::file_size(proxy.capture()), kLiteral) << "the capture holds the whole query";
}

// (b) A client that reads a 1 GiB result slowly: backpressure keeps the proxy's memory bounded,
// with the backend frames also going to the capture (so the writer is held back too).
TEST_F(PgproxyMoreTest, SlowReaderOfALargeResultKeepsMemoryBounded) {
  ProxyProcess proxy(pg(), {"--capture-backend"});
  // 1,070,000 CopyData messages of 1,006 bytes: 1.076 GB, a little over 1 GiB.
  constexpr int kRows = 1'070'000;
  constexpr uint64_t kBytes = uint64_t{1006} * kRows;
  static_assert(kBytes > (uint64_t{1} << 30));
  RawClient client(proxy.port(), size_t{64} * 1024);
  ASSERT_TRUE(client.start(pg().user()));
  auto started = Clock::now();
  ASSERT_TRUE(client.send_all(query_message("COPY (SELECT repeat('x', 1000) FROM generate_series(1, " +
                                            std::to_string(kRows) + ")) TO STDOUT")));
  int rows = 0;
  long hwm_during = 0;
  std::string tag, sqlstate;
  bool ready = false;
  // 64 KiB per read and a pause after each: at most ~128 MB/s, below what the server sends.
  while (auto m = client.next(30s, 256, size_t{64} * 1024, 500us)) {
    if (m->type == 'd' && ++rows % 50'000 == 0) hwm_during = std::max(hwm_during, proxy.peak_rss_kib());
    if (m->type == 'C') tag = m->body.substr(0, m->body.find('\0'));
    if (m->type == 'E') sqlstate = error_sqlstate(m->body);
    if (m->type == 'Z') {
      ready = true;
      break;
    }
  }
  auto took = Clock::now() - started;
  EXPECT_TRUE(ready);
  EXPECT_EQ(sqlstate, "");
  EXPECT_EQ(rows, kRows);
  EXPECT_EQ(tag, "COPY " + std::to_string(kRows));
  EXPECT_GE(client.body_bytes(), uint64_t{1001} * kRows);
  EXPECT_GT(took, 3s) << "the client was meant to be slow";
  // VmHWM is read from the kernel's per-CPU RSS counters, which may lag by a few pages: the
  // figure taken during the transfer can exceed a later one by a little, so the test keeps the
  // larger of the two rather than asserting an order.
  long hwm = std::max(proxy.peak_rss_kib(), hwm_during);
  client.send_all("X\0\0\0\4"s);
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  EXPECT_GT(hwm_during, 0) << "the peak was sampled while the result streamed";
  if (kCheckMemory) {
    EXPECT_LT(hwm, kMemoryLimitKib) << "pgproxy's peak RSS with a slow reader of 1 GiB";
  }
  RecordProperty("pgproxy_peak_rss_kib", std::to_string(hwm));
  RecordProperty("read_ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("tag=\"COPY " + std::to_string(kRows) + "\""), std::string::npos) << log;
  EXPECT_GT(fs::file_size(proxy.capture()), kBytes) << "the backend frames are all captured";
}

// (c) The upstream stops (fast shutdown) and starts again on the same port: open sessions get the
// server's own FATAL, sessions opened meanwhile get pgproxy's 08006, sessions after the restart
// work, and the proxy lives through all of it.
TEST(PgproxyUpstream, StoppedAndRestartedServer) {
  pt::TempPostgres pg;
  ProxyProcess proxy(pg);

  RawClient idle(proxy.port());
  ASSERT_TRUE(idle.start(pg.user()));
  RawClient busy(proxy.port());
  ASSERT_TRUE(busy.start(pg.user()));
  ASSERT_TRUE(busy.send_all(query_message("SELECT pg_sleep(30)")));
  std::this_thread::sleep_for(200ms);

  // Fast shutdown of the postmaster TempPostgres started. It is left unreaped (a zombie) for
  // TempPostgres to collect, so its pid cannot be reused under it.
  const pid_t old_postmaster = pg.pid();
  ASSERT_EQ(kill(old_postmaster, SIGINT), 0);
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline && proc_state(old_postmaster) != 'Z';) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(proc_state(old_postmaster), 'Z') << pg.log_tail();

  for (RawClient* c : {&idle, &busy}) {
    std::string sqlstate;
    while (auto m = c->next(5s)) {
      if (m->type == 'E') sqlstate = error_sqlstate(m->body);
    }
    EXPECT_EQ(sqlstate, "57P01") << "the server's own FATAL (admin shutdown) reaches the client";
    EXPECT_TRUE(c->closed_within(2s));
  }

  {  // While the server is down.
    RawClient refused(proxy.port());
    std::string sqlstate;
    EXPECT_FALSE(refused.start(pg.user(), &sqlstate));
    EXPECT_EQ(sqlstate, "08006");
    EXPECT_TRUE(refused.closed_within(2s));
  }
  EXPECT_TRUE(proxy.alive());

  // A new postmaster on the same data directory and port, owned (and stopped) by this test.
  std::optional<pt::RunAs> run_as;
  if (geteuid() == 0) run_as = pt::lookup_user("postgres");
  int log_fd = ::open(pg.log_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(log_fd, 0);
  pt::SpawnOptions so;
  so.env = pt::child_environment({{"LC_ALL", "C"}});
  so.run_as = run_as;
  so.cwd = pg.base_dir();
  so.output_fd = log_fd;
  so.parent_death_signal = SIGQUIT;
  pid_t restarted = pt::spawn_process(
      {pg.bindir() + "/postgres", "-D", pg.data_dir(), "-c", "listen_addresses=127.0.0.1", "-c",
       "port=" + std::to_string(pg.port()), "-c", "unix_socket_directories=" + pg.base_dir(), "-c", "fsync=off"},
      so);
  ::close(log_fd);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGQUIT);
      waitpid(pid, nullptr, 0);
    }
  } reaper{restarted};

  pt::CommandResult r;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
    r = proxy.client(pg, "psql", {"-X", "-At", "-c", "SELECT 'back again'"});
    if (r.ok()) break;
  }
  ASSERT_TRUE(r.ok()) << r.describe() << pg.log_tail();
  EXPECT_EQ(r.out, "back again\n");
  EXPECT_TRUE(proxy.alive());
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  std::string log = pt::read_text_file(proxy.sql_log());
  bool sleep_failed = false, back = false;
  for (const std::string& l : lines_of(log)) {
    if (l.ends_with("sql: SELECT pg_sleep(30)"))
      sleep_failed = line_head(l).find("sqlstate=57P01") != std::string::npos;
    if (l.ends_with("sql: SELECT 'back again'")) back = line_head(l).find(" query ok ") != std::string::npos;
  }
  EXPECT_TRUE(sleep_failed) << log;
  EXPECT_TRUE(back) << log;
  std::string out = proxy.output();
  EXPECT_NE(out.find("cannot connect to the server"), std::string::npos) << out;
}

// (d) Offline decoding and live logging share one code path: pgdump-log on the capture prints the
// SQL log pgproxy wrote live, byte for byte, in both line formats.
TEST_F(PgproxyMoreTest, LiveLogEqualsPgdumpLogOnTheCapture) {
  const std::string script =
      "SELECT 1 AS one;\n"
      "SELECT 1 \\; SELECT 2;\n"
      "SELECT 'zwei\nZeilen', 'grüße ✓';\n"
      "SELECT 1/0;\n"
      "SELECT 'after the error';\n"
      "CREATE TEMP TABLE t (a int, b text);\n"
      "COPY t FROM STDIN;\n"
      "1\tone\n"
      "2\ttwo\n"
      "\\.\n"
      "COPY t TO STDOUT;\n"
      "BEGIN;\nSELECT count(*) FROM t;\nCOMMIT;\n";
  for (const char* format : {"text", "json"}) {
    SCOPED_TRACE(format);
    ProxyProcess proxy(pg(), {"--capture-backend", "--log-format", format});
    pt::CommandResult r = proxy.client(pg(), "psql", {"-X", "-q", "-f", "-"}, script);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.err.find("division by zero"), std::string::npos) << r.describe();
    for (const char* mode : {"extended", "prepared"}) {
      r = proxy.client(pg(), "pgbench", {"-n", "-M", mode, "-c", "2", "-j", "2", "-t", "10"});
      ASSERT_TRUE(r.ok()) << r.describe();
    }
    ASSERT_EQ(proxy.stop(), 0) << proxy.output();

    std::string live = pt::read_text_file(proxy.sql_log());
    pt::CommandResult offline =
        pt::run_command({std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log", "--no-progress", "--format",
                         "sql", "--log-format", format, proxy.capture()});
    ASSERT_TRUE(offline.ok()) << offline.describe();
    EXPECT_GE(lines_of(live).size(), 2u * (2 * 10 * 7) + 8);
    EXPECT_EQ(offline.out.size(), live.size());
    RecordProperty(std::string(format) + "_lines", std::to_string(lines_of(live).size()));
    if (offline.out != live) {  // show the first line that differs, not two huge strings
      std::vector<std::string> a = lines_of(live), b = lines_of(offline.out);
      size_t i = 0;
      while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
      ADD_FAILURE() << "first difference at line " << i + 1 << "\nlive:    " << (i < a.size() ? a[i] : "(end)")
                    << "\noffline: " << (i < b.size() ? b[i] : "(end)");
    }
  }
}

// (e) Garbage on some connections while pgbench runs on others: every bad connection is closed,
// pgbench does not notice, and the SQL log has every statement the server ran.
TEST_F(PgproxyMoreTest, GarbageConnectionsDoNotDisturbAConcurrentPgbench) {
  ProxyProcess proxy(pg());
  size_t server_log_before = pg().read_log().size();

  std::atomic<bool> pgbench_done{false};
  pt::CommandResult bench;
  std::thread runner([&] {
    bench = proxy.client(pg(), "pgbench", {"-n", "-M", "extended", "-c", "4", "-j", "2", "-t", "100"});
    pgbench_done = true;
  });

  // Kinds of bad input, in turn, until pgbench is done (each kind at least once).
  const std::string user = pg().user();
  int attempts = 0, not_closed = 0, not_started = 0;
  std::map<int, int> per_kind;
  for (int i = 0; !pgbench_done || i < 6; ++i) {
    int kind = i % 6;
    RawClient c(proxy.port());
    bool expect_close = true;
    switch (kind) {
      case 0:  // not PostgreSQL at all
        c.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        break;
      case 1: {  // an impossible message length after a good startup
        if (!c.start(user)) {
          ++not_started;
          continue;
        }
        c.send_all(std::string("Q\0\0\0\1", 5));
        break;
      }
      case 2: {  // a startup packet claiming 2 GB
        std::string p;
        put_be32(p, 0x7fffffffu);
        put_be32(p, kProtocol30);
        c.send_all(p);
        break;
      }
      case 3: {  // bytes after SSLRequest before its answer
        std::string p;
        put_be32(p, 8);
        put_be32(p, kSslRequestCode);
        c.send_all(p + startup_packet(user, "postgres"));
        break;
      }
      case 4: {  // a good statement, then an unknown message type
        if (!c.start(user)) {
          ++not_started;
          continue;
        }
        c.send_all(query_message("SELECT 'before the garbage'"));
        while (auto m = c.next()) {
          if (m->type == 'Z') break;
        }
        c.send_all(
            std::string("\xff\0\0\0\x08"
                        "abcd",
                        9));
        break;
      }
      case 5: {  // half a message, then gone
        if (!c.start(user)) {
          ++not_started;
          continue;
        }
        std::string q = query_message("SELECT 'never complete'");
        c.send_all(q.substr(0, q.size() / 2));
        c.close_now();
        expect_close = false;
        break;
      }
    }
    ++attempts;
    ++per_kind[kind];
    if (expect_close && !c.closed_within(5s)) ++not_closed;
  }
  runner.join();

  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_NE(bench.out.find("number of transactions actually processed: 400/400"), std::string::npos) << bench.out;
  EXPECT_EQ(not_closed, 0) << "of " << attempts << " bad connections";
  EXPECT_EQ(not_started, 0) << "sessions that should have opened before their garbage";
  EXPECT_TRUE(proxy.alive());
  // Let the server log the last statements of the bad connections before counting.
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  std::string log = pt::read_text_file(proxy.sql_log());
  int server = server_statement_count(pg().read_log().substr(server_log_before));
  int logged = proxy_statement_count(log);
  EXPECT_GE(server, 400 * 7 + per_kind[4]);
  EXPECT_EQ(logged, server);
  RecordProperty("bad_connections", std::to_string(attempts));
  RecordProperty("statements", std::to_string(logged));
  std::string out = proxy.output();
  EXPECT_NE(out.find("protocol violation"), std::string::npos) << out.substr(0, 2000);
  EXPECT_NE(out.find("exiting:"), std::string::npos);
}

}  // namespace
