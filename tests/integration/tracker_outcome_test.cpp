// What pgproxy's SQL log says about a statement whose answer is larger than the framer keeps whole,
// or does not decode at all (the connection tracker's outcomes, end to end):
//   - the real server echoing 2 MB of bad input in its ErrorResponse, to psql (simple protocol)
//     and pgbench -M extended / -M prepared (extended protocol): logged as the error, with its
//     SQLSTATE and a bounded message, never as ok;
//   - a hostile server (a thread of this test, speaking just enough of the protocol) answering a
//     Query with an ErrorResponse whose last field lacks its terminator: logged unknown, never ok.
// The hostile server is written from the protocol documentation on raw sockets, without libpgwire.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <stdexcept>
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
using pt::line_head;
using pt::line_sql;
using pt::lines_of;
using pt::ProxyProcess;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kBadCast = "SELECT repeat('x', 2000000)::int";
// PostgreSQL's message for it: the 2,000,000 x's between quotes.
const std::string kBadCastMessagePrefix = "invalid input syntax for type integer: \"";
const size_t kBadCastMessageBytes = kBadCastMessagePrefix.size() + 2000000 + 1;

// The last n bytes of s, for failure messages.
std::string tail_of(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

// The SQL of every line of a SQL log, one per line, for failure messages (the lines themselves
// may be long).
std::string logged_sql(const std::string& log) {
  std::string out;
  for (const std::string& l : lines_of(log)) out += line_sql(l) + "\n";
  return out;
}

// The SQL log lines whose SQL is `sql`.
std::vector<std::string> lines_for(const std::string& log, const std::string& sql) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(log))
    if (line_sql(l) == sql) out.push_back(l);
  return out;
}

// The checks every logged bad cast must pass: an error with its SQLSTATE and the message, cut
// after a few KiB with the cut marked; `kind` is "query" or "execute".
void expect_logged_bad_cast(const std::string& line, const std::string& kind) {
  std::string head = line_head(line);
  EXPECT_NE(head.find(" " + kind + " error duration_ms="), std::string::npos) << head.substr(0, 400);
  EXPECT_NE(head.find(" sqlstate=22P02 "), std::string::npos) << head.substr(0, 400);
  // The message as the server sent it ('"' escaped in the log), its first bytes only.
  EXPECT_NE(head.find(" error=\"invalid input syntax for type integer: \\\"xxxxxxxxxx"), std::string::npos)
      << head.substr(0, 400);
  EXPECT_NE(head.find("...(cut, " + std::to_string(kBadCastMessageBytes) + " bytes in all)\""), std::string::npos)
      << tail_of(head, 200);
  EXPECT_LT(line.size(), 8192u);  // bounded: not the 2 MB the server sent
}

class TrackerOutcomeTest : public pt::SharedServerTest<TrackerOutcomeTest> {};

TEST_F(TrackerOutcomeTest, HugeErrorInTheSimpleProtocolIsLoggedAsTheError) {
  ProxyProcess proxy(pg());
  pt::CommandResult r = proxy.psql(pg(), {"-c", kBadCast});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("invalid input syntax for type integer"), std::string::npos) << r.err.substr(0, 300);
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  std::vector<std::string> lines = lines_for(pt::read_text_file(proxy.sql_log()), kBadCast);
  ASSERT_EQ(lines.size(), 1u) << logged_sql(pt::read_text_file(proxy.sql_log()));
  expect_logged_bad_cast(lines[0], "query");
}

TEST_F(TrackerOutcomeTest, HugeErrorInTheExtendedProtocolIsLoggedAsTheError) {
  // pgbench -M extended sends the statement as Parse, Bind, Describe, Execute, Sync (the unnamed
  // statement); -M prepared parses it once as a named statement. Either way the server plans it
  // at Bind, folds the cast and fails there: the error belongs to the Execute of the batch. (psql
  // 15 has no \bind: that came with psql 16.)
  ProxyProcess proxy(pg());
  const std::string script = proxy.dir() + "/bad_cast.sql";
  std::ofstream(script) << kBadCast << "\n";
  for (const char* mode : {"extended", "prepared"}) {
    pt::CommandResult r = proxy.client(pg(), "pgbench", {"-n", "-M", mode, "-t", "1", "-f", script});
    EXPECT_NE(r.err.find("invalid input syntax for type integer"), std::string::npos)
        << mode << ": " << r.describe().substr(0, 300);
  }
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  const std::string log = pt::read_text_file(proxy.sql_log());
  // pgbench sends the script's line with its newline, which the log escapes.
  std::vector<std::string> lines = lines_for(log, std::string(kBadCast) + "\\n");
  ASSERT_EQ(lines.size(), 2u) << logged_sql(log);
  expect_logged_bad_cast(lines[0], "execute");
  expect_logged_bad_cast(lines[1], "execute");
  // The prepared one names its statement ("P_0" from pgbench 15, "P0_0" from later ones).
  const std::string prepared = line_head(lines[1]);
  EXPECT_NE(prepared.find("\" statement=P"), std::string::npos) << tail_of(prepared, 200);
}

// --- a hostile server ---------------------------------------------------------------------------

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
uint32_t get_be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
// Byte1 type, Int32 length counting itself, body.
std::string message(char type, const std::string& body) {
  std::string out(1, type);
  put_be32(out, static_cast<uint32_t>(body.size() + 4));
  return out + body;
}
std::string cstr(std::string_view s) { return std::string(s) + '\0'; }

// Listens on 127.0.0.1 (port 0) and serves each connection on one thread: reads the startup
// packet (refusing SSL and GSS encryption with 'N'), answers AuthenticationOk, a few
// ParameterStatus, BackendKeyData and ReadyForQuery; then answers every Query with `answer`
// followed by ReadyForQuery, until the client sends Terminate or closes. Every wait is bounded,
// and the destructor stops the thread.
class HostileServer {
 public:
  explicit HostileServer(std::string answer) : answer_(std::move(answer)) {
    listen_fd_ = pgwire::test::listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~HostileServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  HostileServer(const HostileServer&) = delete;
  HostileServer& operator=(const HostileServer&) = delete;

  uint16_t port() const { return port_; }
  int queries() const { return queries_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      session(fd);
      ::close(fd);
    }
  }

  // Exactly n bytes, false on EOF, error, stop or after 20 s.
  bool read_exact(int fd, char* out, size_t n) {
    auto deadline = Clock::now() + 20s;
    while (n > 0) {
      if (stop_ || Clock::now() > deadline) return false;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t got = recv(fd, out, n, 0);
      if (got <= 0) return false;
      out += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  void session(int fd) {
    // Startup phase: Int32 length, Int32 code, rest. SSLRequest / GSSENCRequest get 'N'.
    for (;;) {
      char head[8];
      if (!read_exact(fd, head, 8)) return;
      uint32_t length = get_be32(head);
      uint32_t code = get_be32(head + 4);
      if (length < 8 || length > 10000) return;
      std::string rest(length - 8, '\0');
      if (!read_exact(fd, rest.data(), rest.size())) return;
      if (code == 80877103 || code == 80877104) {
        if (!send_all(fd, "N")) return;
        continue;
      }
      if (code != 196608) return;
      break;
    }
    std::string hello = message('R', std::string("\0\0\0\0", 4));
    hello += message('S', cstr("server_version") + cstr("15.18"));
    hello += message('S', cstr("client_encoding") + cstr("UTF8"));
    hello += message('S', cstr("server_encoding") + cstr("UTF8"));
    hello += message('S', cstr("standard_conforming_strings") + cstr("on"));
    std::string key;
    put_be32(key, 4242);
    put_be32(key, 0x01020304);
    hello += message('K', key);
    hello += message('Z', "I");
    if (!send_all(fd, hello)) return;
    for (;;) {
      char head[5];
      if (!read_exact(fd, head, 5)) return;
      uint32_t length = get_be32(head + 1);
      if (length < 4 || length > (1u << 20)) return;
      std::string body(length - 4, '\0');
      if (!read_exact(fd, body.data(), body.size())) return;
      if (head[0] == 'X') return;
      if (head[0] != 'Q') continue;
      ++queries_;
      // The answer and ReadyForQuery in one send: the proxy reads them together.
      if (!send_all(fd, answer_ + message('Z', "I"))) return;
    }
  }

  std::string answer_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

TEST(TrackerOutcomeHostile, ErrorResponseWithAnUnterminatedLastFieldIsLoggedUnknownNotOk) {
  // S, V, C fields, then M whose value has no terminating NUL, and no zero byte ending the fields.
  const std::string body = "S" + cstr("ERROR") + "V" + cstr("ERROR") + "C" + cstr("42000") + "Mhostile: no terminator";
  HostileServer server(message('E', body));
  ProxyProcess proxy(pt::ProxyOptions{"127.0.0.1:" + std::to_string(server.port()), {}, {}, {}, {}});
  const std::vector<std::string> argv = {pt::find_postgres_bindir() + "/psql", "-X", "-c", "SELECT 1"};
  pt::CommandResult r = pt::run_command(argv,
                                        {{"PGHOST", "127.0.0.1"},
                                         {"PGPORT", std::to_string(proxy.port())},
                                         {"PGUSER", "hostile"},
                                         {"PGDATABASE", "hostile"},
                                         {"PGSSLMODE", "disable"},
                                         {"PGGSSENCMODE", "disable"},
                                         {"PGCONNECT_TIMEOUT", "10"}},
                                        60s);
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(server.queries(), 1) << r.describe() << proxy.output();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  const std::string log = pt::read_text_file(proxy.sql_log());
  std::vector<std::string> lines = lines_for(log, "SELECT 1");
  ASSERT_EQ(lines.size(), 1u) << log;
  const std::string head = line_head(lines[0]);
  EXPECT_NE(head.find(" query unknown error=\"undecodable ErrorResponse: field 'M' has no terminating zero byte\""),
            std::string::npos)
      << head;
  EXPECT_EQ(head.find(" ok"), std::string::npos) << head;
  EXPECT_EQ(head.find("duration_ms"), std::string::npos) << head;  // an unknown outcome has no duration
}

}  // namespace
