// pgproxy against a real PostgreSQL and real clients (psql, pgbench), plus a
// few raw-socket clients for what libpq will not do on purpose (garbage, a
// direct CancelRequest). Each test starts its own pgproxy on a free port and
// stops it with SIGTERM before reading the SQL log, so every line is on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loopback.hpp"
#include "pg_server.hpp"
#include "pgwire/capture.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;
using pt::line_head;
using pt::line_sql;
using pt::lines_of;
using pt::proxy_statement_count;
using pt::ProxyProcess;
using pt::server_statement_count;
using namespace std::chrono_literals;

namespace {

// A minimal protocol client on a raw socket, for what libpq will not send.
class RawClient {
 public:
  explicit RawClient(uint16_t port) { fd_ = pgwire::test::connect_to_loopback(port); }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  void send_bytes(pgwire::Bytes b) const {
    while (!b.empty()) {
      ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      b = b.subspan(static_cast<size_t>(n));
    }
  }
  void send_text(std::string_view s) const { send_bytes(pgwire::as_bytes(s)); }
  // Everything until EOF (true) or the timeout (false).
  bool read_to_eof(std::string& out, std::chrono::milliseconds limit = 5s) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // The next backend frame (whole), or nullopt on EOF / timeout.
  std::optional<pgwire::OwnedFrame> next_frame(std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      pgwire::Bytes in{pending_.data(), pending_.size()};
      pgwire::FrameResult r = framer_.next(in);
      size_t used = pending_.size() - in.size();
      if (r.has_frame()) {
        pgwire::OwnedFrame f(r.frame());
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(used));
        return f;
      }
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(used));
      if (r.failed()) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      std::byte buf[8192];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      pending_.insert(pending_.end(), buf, buf + n);
    }
  }

 private:
  int fd_ = -1;
  pgwire::Framer framer_{pgwire::Direction::kBackend};
  std::vector<std::byte> pending_;
};

struct CaptureSummary {
  std::map<uint64_t, int> opens, closes;
  std::map<char, int> frontend_types;  // typed frontend frames by type byte
  int startup_frames = 0;
  int backend_frames = 0;                           // not counting answers to encryption requests
  int encryption_answers = 0;                       // the one-byte answers ('N') to SSLRequest / GSSENCRequest
  std::map<std::string, int> capture_backend_meta;  // "capture_backend" meta values
  int backend_key_data = 0;
  int redacted = 0;
  int password_frames = 0;  // frontend 'p' frames (redacted or not)
  std::vector<std::string> queries;
  std::string error;
};

CaptureSummary read_capture(const std::string& path) {
  CaptureSummary s;
  auto opened = pgwire::CaptureReader::open(path);
  if (!opened.ok()) {
    s.error = opened.error().describe();
    return s;
  }
  pgwire::CaptureReader& reader = *opened.value();
  pgwire::CaptureRecord rec;
  for (;;) {
    auto more = reader.next(rec);
    if (!more.ok()) {
      s.error = more.error().describe();
      return s;
    }
    if (!more.value()) return s;
    switch (rec.type) {
      case pgwire::CaptureRecordType::kSessionOpen: ++s.opens[rec.session_id]; break;
      case pgwire::CaptureRecordType::kSessionClose: ++s.closes[rec.session_id]; break;
      case pgwire::CaptureRecordType::kSessionMeta:
        if (rec.key == "backend_key_data") ++s.backend_key_data;
        if (rec.key == "capture_backend") ++s.capture_backend_meta[std::string(pgwire::as_string_view(rec.value))];
        break;
      case pgwire::CaptureRecordType::kFrame:
        if (rec.direction == pgwire::Direction::kBackend && rec.frame_kind == pgwire::FrameKind::kAnswer) {
          ++s.encryption_answers;
        } else if (rec.direction == pgwire::Direction::kBackend) {
          ++s.backend_frames;
        } else if (rec.frame_kind == pgwire::FrameKind::kStartup) {
          ++s.startup_frames;
        } else if (rec.frame_kind == pgwire::FrameKind::kTyped && rec.first() && !rec.data.empty()) {
          char type = static_cast<char>(rec.data[0]);
          ++s.frontend_types[type];
          if (type == 'p') ++s.password_frames;
          if (rec.redacted()) ++s.redacted;
          if (type == 'Q' && rec.last() && rec.data.size() > 6) {
            s.queries.emplace_back(pgwire::as_string_view(rec.data.subspan(5, rec.data.size() - 6)));
          }
        }
        break;
    }
  }
}

class PgproxyTest : public pt::SharedServerTest<PgproxyTest> {
 public:
  static pt::TempPostgresOptions server_options() {
    pt::TempPostgresOptions options;
    options.settings = {{"log_statement", "all"}};
    return options;
  }
};

TEST_F(PgproxyTest, PsqlStatementsAreLoggedOneLineEach) {
  ProxyProcess proxy(pg());
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 40 + 2"});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "42\n");

  r = proxy.psql(pg(), {"-At", "-c", "SELECT 1; SELECT 2"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "1\n2\n");

  // An error, then a good query on the same connection (psql runs a script).
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 1/0", "-c", "SELECT 'after the error'"});
  EXPECT_NE(r.err.find("division by zero"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out, "after the error\n");

  // A newline and non-ASCII text inside the SQL stay on one log line.
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 'zwei\nZeilen', 'grüße ✓'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "zwei\nZeilen|grüße ✓\n");

  // psql exits right after sending Terminate: let the proxy see the last one
  // before it is stopped (it would otherwise be logged as ended by the shutdown).
  for (int i = 0; i < 250 && read_capture(proxy.capture()).frontend_types['X'] < 4; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  std::vector<std::string> lines = lines_of(pt::read_text_file(proxy.sql_log()));
  std::map<std::string, std::string> by_sql;  // sql -> head
  for (const std::string& l : lines) by_sql[line_sql(l)] = line_head(l);

  ASSERT_TRUE(by_sql.count("SELECT 40 + 2")) << pt::read_text_file(proxy.sql_log());
  EXPECT_NE(by_sql["SELECT 40 + 2"].find(" query ok"), std::string::npos);
  EXPECT_NE(by_sql["SELECT 40 + 2"].find("tag=\"SELECT 1\""), std::string::npos) << by_sql["SELECT 40 + 2"];
  EXPECT_NE(by_sql["SELECT 40 + 2"].find("client=127.0.0.1:"), std::string::npos);
  EXPECT_NE(by_sql["SELECT 40 + 2"].find("user=" + pg().user()), std::string::npos);
  EXPECT_NE(by_sql["SELECT 40 + 2"].find("db=postgres"), std::string::npos);
  ASSERT_TRUE(by_sql.count("SELECT 1; SELECT 2")) << "a multi-statement string is one line";
  ASSERT_TRUE(by_sql.count("SELECT 1/0"));
  EXPECT_NE(by_sql["SELECT 1/0"].find(" query error"), std::string::npos);
  EXPECT_NE(by_sql["SELECT 1/0"].find("sqlstate=22012"), std::string::npos);
  ASSERT_TRUE(by_sql.count("SELECT 'after the error'"));
  EXPECT_NE(by_sql["SELECT 'after the error'"].find(" query ok"), std::string::npos);
  ASSERT_TRUE(by_sql.count("SELECT 'zwei\\nZeilen', 'grüße ✓'")) << pt::read_text_file(proxy.sql_log());

  // The capture holds the same statements as raw frames, is private, and has
  // every session's BackendKeyData.
  struct stat st {};
  ASSERT_EQ(stat(proxy.capture().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(proxy.sql_log().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CaptureSummary cap = read_capture(proxy.capture());
  EXPECT_EQ(cap.error, "");
  EXPECT_EQ(cap.opens.size(), 4u);
  EXPECT_EQ(cap.closes.size(), 4u);
  EXPECT_EQ(cap.backend_key_data, 4);
  EXPECT_EQ(cap.backend_frames, 0) << "backend frames only with --capture-backend";
  // psql's sslmode=prefer: each session's SSLRequest and the proxy's 'N' are
  // kept, so a reader can follow the startup that comes after.
  EXPECT_EQ(cap.encryption_answers, 4);
  EXPECT_EQ(cap.capture_backend_meta["0"], 4);
  EXPECT_EQ(cap.capture_backend_meta.count("1"), 0u);
  EXPECT_GE(cap.startup_frames, 4);
  EXPECT_EQ(cap.frontend_types['X'], 4);
  EXPECT_NE(std::find(cap.queries.begin(), cap.queries.end(), "SELECT 'zwei\nZeilen', 'grüße ✓'"), cap.queries.end());

  // ... and pgdump-log reads this frontend-only capture through its SSLRequest answers: every
  // statement is there (with an unknown outcome: the server's frames were not recorded).
  pt::CommandResult dumped = pt::run_command({pt::tool_path("pgdump-log"), proxy.capture()});
  ASSERT_EQ(dumped.exit_code, 0) << dumped.describe();
  EXPECT_EQ(dumped.err, "");
  EXPECT_NE(dumped.out.find("sql: SELECT 40 + 2"), std::string::npos) << dumped.out;
  EXPECT_NE(dumped.out.find("sql: SELECT 1/0"), std::string::npos) << dumped.out;
  EXPECT_NE(dumped.out.find("sql: SELECT 'zwei\\nZeilen', 'grüße ✓'"), std::string::npos) << dumped.out;
}

// The periodic statistics line on stderr counts what went through.
TEST_F(PgproxyTest, StatsLineCountsTraffic) {
  ProxyProcess proxy(pg(), {"--stats-interval", "1"});
  const std::string script = proxy.dir() + "/select.sql";
  std::ofstream(script) << "SELECT 1;\n";
  pt::CommandResult r = proxy.client(pg(), "pgbench", {"-n", "-f", script, "-c", "2", "-j", "2", "-T", "3"});
  ASSERT_TRUE(r.ok()) << r.describe();
  std::this_thread::sleep_for(1500ms);  // one more line, after the run
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  // Some line during the run saw statements, bytes both ways and poll() wake-ups.
  bool busy_line = false;
  for (const std::string& line : lines_of(out)) {
    if (line.find("pgproxy: stats: connections=") == std::string::npos) continue;
    auto value = [&line](const std::string& key) {
      size_t at = line.find(" " + key + "=");
      return at == std::string::npos ? -1.0 : std::stod(line.substr(at + key.size() + 2));
    };
    EXPECT_EQ(value("errors"), 0) << line;
    EXPECT_EQ(value("lost_lines"), 0) << line;
    if (value("statements/s") > 100 && value("client_bytes/s") > 0 && value("server_bytes/s") > 0 &&
        value("wakeups/s") > 0 && value("ready_per_wakeup") >= 1) {
      busy_line = true;
    }
  }
  EXPECT_TRUE(busy_line) << out;
  // The final line says what was written in all: every statement, as many lines as the log has.
  size_t at = out.find("pgproxy: exiting: sessions=");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string last = out.substr(at, out.find('\n', at) - at);
  const size_t logged = lines_of(pt::read_text_file(proxy.sql_log())).size();
  EXPECT_GT(logged, 1000u);
  EXPECT_NE(last.find(" statements=" + std::to_string(logged) + " lines_written=" + std::to_string(logged) + " "),
            std::string::npos)
      << last;
  EXPECT_NE(last.find(" lost_lines=0 "), std::string::npos) << last;
}

TEST_F(PgproxyTest, JsonLogAndBackendCapture) {
  ProxyProcess proxy(pg(), {"--log-format", "json", "--capture-backend"});
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT NULL::int, 'x\"y'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("\"kind\":\"query\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"query\":\"SELECT NULL::int, 'x\\\"y'\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"executed\":true"), std::string::npos) << log;
  // FNV-1a 64 of "SELECT NULL::int, ?", computed outside this code (docs/fingerprints.md).
  EXPECT_NE(log.find("\"fingerprint\":\"789a94c4dab9263c\""), std::string::npos) << log;
  CaptureSummary cap = read_capture(proxy.capture());
  EXPECT_EQ(cap.error, "");
  EXPECT_GT(cap.backend_frames, 5);
  EXPECT_EQ(cap.backend_key_data, 1);
}

// The count rule: one `query` line per Query and one executed `execute` line
// per Execute, exactly as many as PostgreSQL's own log_statement=all lines.
TEST_F(PgproxyTest, PgbenchCountsMatchTheServerLog) {
  pt::CommandOptions init;
  init.env = pg().client_env();
  pt::CommandResult r = pt::run_command({pg().bindir() + "/pgbench", "-i", "-q", "-s", "1"}, init);
  ASSERT_TRUE(r.ok()) << r.describe();

  // Each mode through every way of running the loop: waiting with epoll (the default) or
  // poll(), writing with one io_uring call per round (the default, where the kernel has
  // io_uring) or one send() per socket.
  for (const char* mode : {"simple", "extended", "prepared"}) {
    for (int way = 0; way < 4; ++way) {
      const bool epoll = (way & 1) == 0;
      const bool uring = (way & 2) == 0;
      SCOPED_TRACE(std::string(mode) + (epoll ? " epoll" : " poll()") + (uring ? " io_uring" : " send()"));
      std::vector<std::string> args;
      if (!epoll) args.insert(args.end(), {"--poller", "poll"});
      if (!uring) args.emplace_back("--no-io-uring");
      ProxyProcess proxy(pg(), args);
      size_t server_log_before = pg().read_log().size();
      pt::CommandOptions opts;
      opts.env = pg().client_env();
      opts.env["PGPORT"] = std::to_string(proxy.port());
      r = pt::run_command({pg().bindir() + "/pgbench", "-n", "-M", mode, "-c", "2", "-t", "20"}, opts);
      ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
      EXPECT_NE(r.out.find("number of transactions actually processed: 40/40"), std::string::npos) << r.out;
      ASSERT_EQ(proxy.stop(), 0) << proxy.output();

      int server = server_statement_count(pg().read_log().substr(server_log_before));
      std::string log = pt::read_text_file(proxy.sql_log());
      int logged = proxy_statement_count(log);
      EXPECT_GE(server, 40 * 7);  // 7 statements per TPC-B-like transaction
      EXPECT_EQ(logged, server) << log.substr(0, 2000);
      if (std::string(mode) != "simple") {
        EXPECT_NE(log.find(" execute ok"), std::string::npos);
        EXPECT_NE(log.find("params=($1="), std::string::npos) << log.substr(0, 2000);
      }
      // Built with -DPGWIRE_IO_URING=OFF, pgproxy always sends with send().
      const bool batched = uring && PGWIRE_BUILT_WITH_IO_URING;
      EXPECT_NE(proxy.output().find(batched ? "writes: io_uring" : "writes: send()"), std::string::npos)
          << proxy.output();
      EXPECT_NE(proxy.output().find(epoll ? "waits: epoll" : "waits: poll()"), std::string::npos) << proxy.output();
    }
  }
}

TEST_F(PgproxyTest, SslIsRefusedSoPreferWorksAndRequireFails) {
  ProxyProcess proxy(pg());
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 'plaintext'"}, {{"PGSSLMODE", "prefer"}});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "plaintext\n");
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 'never'"}, {{"PGSSLMODE", "require"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("server does not support SSL, but SSL was required"), std::string::npos) << r.describe();

  // A client that does not wait for the answer to SSLRequest is cut off.
  RawClient eager(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::SslRequest{}.encode(b);
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", "postgres"}};
  sm.encode(b);
  eager.send_bytes(b.view());
  std::string got;
  EXPECT_TRUE(eager.read_to_eof(got));
  EXPECT_EQ(got.substr(0, 1), "E") << "an ErrorResponse, not 'N'";
  EXPECT_NE(got.find("08P01"), std::string::npos);

  // Direct TLS (a ClientHello as the first bytes) is refused.
  RawClient tls(proxy.port());
  tls.send_text(std::string("\x16\x03\x01\x00\x05hello", 10));
  got.clear();
  EXPECT_TRUE(tls.read_to_eof(got));
  EXPECT_EQ(got, "");

  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_NE(proxy.output().find("direct TLS connection refused"), std::string::npos) << proxy.output();
  EXPECT_EQ(pt::read_text_file(proxy.sql_log()).find("never"), std::string::npos);
}

// Both ends on Unix sockets, as with a proxy next to its server: --upstream DIR:PORT is the
// server's socket DIR/.s.PGSQL.PORT (libpq's host=/DIR), --listen DIR:PORT makes one for clients.
// A stale socket file from a dead process is replaced, a live one is refused, and ours is removed
// at exit.
TEST_F(PgproxyTest, UnixSocketsOnBothSides) {
  char tmpl[] = "/tmp/pgproxy-unix-XXXXXX";  // short: a socket path has at most 107 bytes
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string socket_file = dir + "/.s.PGSQL.6543";
  {  // A socket file that nobody listens on any more.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof un.sun_path, "%s", socket_file.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
    close(fd);
  }
  pt::ProxyOptions options;
  options.listen = dir + ":6543";
  options.upstream = pg().socket_dir() + ":" + std::to_string(pg().port());
  options.extra = {"--capture-backend"};
  auto proxy = std::make_unique<ProxyProcess>(options);
  EXPECT_NE(proxy->output().find("listening on " + socket_file), std::string::npos) << proxy->output();
  EXPECT_NE(proxy->output().find("upstream " + pg().socket_dir() + "/.s.PGSQL." + std::to_string(pg().port())),
            std::string::npos)
      << proxy->output();
  struct stat st {};
  ASSERT_EQ(stat(socket_file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  pt::CommandResult r =
      proxy->run(pg(), {pg().bindir() + "/psql", "-X", "-h", dir, "-p", "6543", "-At", "-c", "SELECT 'over unix'"});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy->output();
  EXPECT_EQ(r.out, "over unix\n");

  // A second proxy on the same socket must not steal it.
  pt::CommandResult second = pt::run_command({pt::tool_path("pgproxy"), "--listen", options.listen, "--upstream",
                                              options.upstream, "--sql-log", "", "--stats-interval", "0"});
  EXPECT_EQ(second.exit_code, 1) << second.describe();
  EXPECT_NE(second.err.find("another server is listening on it"), std::string::npos) << second.describe();
  r = proxy->run(pg(), {pg().bindir() + "/psql", "-X", "-h", dir, "-p", "6543", "-At", "-c", "SELECT 2"});
  EXPECT_EQ(r.out, "2\n") << r.describe();

  for (int i = 0; i < 250 && read_capture(proxy->capture()).frontend_types['X'] < 2; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(proxy->stop(), 0) << proxy->output();
  EXPECT_NE(stat(socket_file.c_str(), &st), 0) << "the socket file is removed at exit";
  std::string log = pt::read_text_file(proxy->sql_log());
  std::vector<std::string> lines = lines_of(log);
  ASSERT_EQ(lines.size(), 2u) << log;
  EXPECT_EQ(line_sql(lines[0]), "SELECT 'over unix'");
  EXPECT_NE(line_head(lines[0]).find("client=[local] "), std::string::npos) << lines[0];
  EXPECT_NE(line_head(lines[0]).find(" query ok"), std::string::npos) << lines[0];
  EXPECT_NE(line_head(lines[0]).find("tag=\"SELECT 1\""), std::string::npos) << lines[0];
  EXPECT_EQ(line_sql(lines[1]), "SELECT 2");
  CaptureSummary cap = read_capture(proxy->capture());
  EXPECT_EQ(cap.error, "");
  // Two psql sessions, and the second proxy's probe (a connect that sent nothing).
  EXPECT_EQ(cap.opens.size(), 3u);
  EXPECT_EQ(cap.closes.size(), 3u);
  EXPECT_EQ(cap.backend_key_data, 2);
  EXPECT_GT(cap.backend_frames, 0);
  proxy.reset();
  std::filesystem::remove_all(dir);
}

TEST_F(PgproxyTest, GarbageClosesOnlyThatConnection) {
  ProxyProcess proxy(pg());
  pt::CommandResult slow;
  std::thread other([&] {
    slow = proxy.psql(pg(), {"-At", "-c", "SELECT pg_sleep(0.5)", "-c", "SELECT 'still here'"});
  });
  std::this_thread::sleep_for(150ms);

  RawClient garbage(proxy.port());
  garbage.send_text("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  EXPECT_TRUE(garbage.read_to_eof(got));
  EXPECT_EQ(got.substr(0, 1), "E");
  EXPECT_NE(got.find("FATAL"), std::string::npos);
  EXPECT_NE(got.find("08P01"), std::string::npos) << got;

  // Garbage after a good startup: an impossible message length.
  RawClient later(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", pg().user()}, {"database", "postgres"}};
  sm.encode(b);
  later.send_bytes(b.view());
  while (auto f = later.next_frame()) {
    if (f->type == 'Z') break;
  }
  later.send_text(std::string("Q\x00\x00\x00\x01", 5));  // length 1 < 4
  got.clear();
  EXPECT_TRUE(later.read_to_eof(got));
  EXPECT_NE(got.find("08P01"), std::string::npos) << got;

  other.join();
  EXPECT_TRUE(slow.ok()) << slow.describe();
  EXPECT_EQ(slow.out, "\nstill here\n");
  ASSERT_EQ(proxy.stop(), 0);
  std::string out = proxy.output();
  EXPECT_NE(out.find("protocol violation"), std::string::npos) << out;
  EXPECT_NE(out.find("client 127.0.0.1:"), std::string::npos) << out;
}

TEST_F(PgproxyTest, CancelRequestIsForwarded) {
  ProxyProcess proxy(pg());
  RawClient session(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", pg().user()}, {"database", "postgres"}};
  sm.encode(b);
  session.send_bytes(b.view());
  std::optional<pgwire::OwnedFrame> key;
  while (auto f = session.next_frame()) {
    if (f->type == 'K') key = f;
    if (f->type == 'Z') break;
  }
  ASSERT_TRUE(key.has_value());
  auto kd = pgwire::be::BackendKeyData::decode({key->body.data(), key->body.size()}, 0);
  ASSERT_TRUE(kd.ok());

  b.clear();
  pgwire::fe::Query{"SELECT pg_sleep(20)"}.encode(b);
  session.send_bytes(b.view());
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();

  RawClient cancel(proxy.port());
  b.clear();
  pgwire::fe::CancelRequest cr;
  cr.process_id = kd->process_id;
  cr.secret_key = kd->secret_key;
  cr.encode(b);
  cancel.send_bytes(b.view());
  std::string got;
  EXPECT_TRUE(cancel.read_to_eof(got));  // the server closes the cancel connection
  EXPECT_EQ(got, "");

  std::string sqlstate;
  while (auto f = session.next_frame()) {
    if (f->type == 'E') {
      auto err = pgwire::be::ErrorResponse::decode({f->body.data(), f->body.size()}, 0);
      if (err.ok()) sqlstate = std::string(err->sqlstate());
    }
    if (f->type == 'Z') break;
  }
  EXPECT_EQ(sqlstate, "57014");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  ASSERT_EQ(proxy.stop(), 0);
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("sqlstate=57014"), std::string::npos) << log;
  CaptureSummary cap = read_capture(proxy.capture());
  EXPECT_EQ(cap.opens.size(), 2u);  // the session and the cancel connection
}

TEST_F(PgproxyTest, OverMaxConnectionsGetsTooManyConnections) {
  ProxyProcess proxy(pg(), {"--max-connections", "1"});
  RawClient holder(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", pg().user()}, {"database", "postgres"}};
  sm.encode(b);
  holder.send_bytes(b.view());
  while (auto f = holder.next_frame()) {
    if (f->type == 'Z') break;
  }
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("too many connections"), std::string::npos) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
}

TEST_F(PgproxyTest, SighupRotatesAndSigtermLogsPendingRequests) {
  ProxyProcess proxy(pg());
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 'before rotation'"});
  ASSERT_TRUE(r.ok()) << r.describe();

  // A session in the middle of a statement when the proxy stops.
  RawClient busy(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", pg().user()}, {"database", "postgres"}};
  sm.encode(b);
  busy.send_bytes(b.view());
  while (auto f = busy.next_frame()) {
    if (f->type == 'Z') break;
  }

  std::this_thread::sleep_for(100ms);  // the writer takes the first lines
  fs::rename(proxy.sql_log(), proxy.sql_log() + ".1");
  fs::rename(proxy.capture(), proxy.capture() + ".1");
  proxy.signal(SIGHUP);
  for (int i = 0; i < 100 && !fs::exists(proxy.capture()); ++i) std::this_thread::sleep_for(20ms);

  b.clear();
  pgwire::fe::Query{"SELECT pg_sleep(20)"}.encode(b);
  busy.send_bytes(b.view());
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 'after rotation'"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  std::string old_log = pt::read_text_file(proxy.sql_log() + ".1");
  std::string new_log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(old_log.find("before rotation"), std::string::npos) << old_log;
  EXPECT_EQ(old_log.find("after rotation"), std::string::npos);
  EXPECT_NE(new_log.find("after rotation"), std::string::npos) << new_log;
  bool pending_logged = false;
  for (const std::string& l : lines_of(new_log)) {
    if (line_sql(l) == "SELECT pg_sleep(20)") pending_logged = line_head(l).find(" query unknown") != std::string::npos;
  }
  EXPECT_TRUE(pending_logged) << new_log;

  CaptureSummary old_cap = read_capture(proxy.capture() + ".1");
  CaptureSummary new_cap = read_capture(proxy.capture());
  EXPECT_EQ(old_cap.error, "");
  EXPECT_EQ(new_cap.error, "");
  EXPECT_NE(std::find(new_cap.queries.begin(), new_cap.queries.end(), "SELECT pg_sleep(20)"), new_cap.queries.end());
  EXPECT_GE(new_cap.backend_key_data, 1) << "open sessions are re-announced in the new file";
  struct stat st {};
  ASSERT_EQ(stat(proxy.capture().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Authentication passes through untouched: a SCRAM login through the proxy,
// and the capture keeps only the headers of the SASL frames unless asked.
TEST(PgproxyAuth, ScramLoginPassesThroughAndIsRedacted) {
  pt::TempPostgresOptions options;
  options.host_auth = pt::HostAuth::scram_sha_256;
  pt::TempPostgres pg(options);
  for (bool secrets : {false, true}) {
    SCOPED_TRACE(secrets ? "--capture-secrets" : "redacted");
    ProxyProcess proxy(pg, secrets ? std::vector<std::string>{"--capture-secrets"} : std::vector<std::string>{});
    pt::CommandResult r = proxy.psql(pg, {"-At", "-c", "SELECT current_user"});
    ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
    EXPECT_EQ(r.out, pg.user() + "\n");
    r = proxy.psql(pg, {"-At", "-c", "SELECT 'wrong password'"}, {{"PGPASSWORD", "not-the-password"}});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.describe();
    ASSERT_EQ(proxy.stop(), 0);

    std::string log = pt::read_text_file(proxy.sql_log());
    EXPECT_NE(log.find("sql: SELECT current_user"), std::string::npos) << log;
    EXPECT_EQ(log.find("wrong password"), std::string::npos) << log;
    CaptureSummary cap = read_capture(proxy.capture());
    EXPECT_EQ(cap.error, "");
    EXPECT_GE(cap.password_frames, 3);  // SASLInitialResponse, SASLResponse; and the failed login's first
    EXPECT_EQ(cap.redacted, secrets ? 0 : cap.password_frames);
    std::string raw = pt::read_text_file(proxy.capture());
    // The SCRAM client-first-message ("n,,n=...") is in the capture only with --capture-secrets.
    if (secrets) {
      EXPECT_NE(raw.find("n,,n="), std::string::npos);
    } else {
      EXPECT_EQ(raw.find("n,,n="), std::string::npos);
    }
  }
}

}  // namespace
