// The test harness itself: TempPostgres and run_command against a real, throwaway server.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "pg_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;

namespace {

bool alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

bool wait_dead(pid_t pid, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (alive(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

}  // namespace

TEST(RunCommand, CapturesOutputStdinAndExitCode) {
  pt::CommandOptions opts;
  opts.stdin_data = "through stdin\n";
  pt::CommandResult r = pt::run_command({"cat"}, opts);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "through stdin\n");

  r = pt::run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.ok());
}

TEST(RunCommand, KillsTheProcessGroupOnTimeout) {
  auto start = std::chrono::steady_clock::now();
  // The shell's child would keep the pipes open: the whole group must go.
  pt::CommandResult r = pt::run_command({"sh", "-c", "sleep 30 & sleep 30"}, {}, std::chrono::milliseconds(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RunCommand, DropsInheritedLibpqVariablesAndAppliesOverrides) {
  setenv("PGHOST", "leaked.invalid", 1);
  pt::CommandResult r = pt::run_command({"env"}, {{"PGPORT", "1234"}});
  unsetenv("PGHOST");
  EXPECT_EQ(r.out.find("PGHOST="), std::string::npos);
  EXPECT_NE(r.out.find("PGPORT=1234\n"), std::string::npos);
}

TEST(RunCommand, ArgumentsAreNotInterpretedByAShell) {
  pt::CommandResult r = pt::run_command({"printf", "%s|", "a b", "$(id)", "'q'"});
  EXPECT_EQ(r.out, "a b|$(id)|'q'|");
}

TEST(RunCommand, UnknownProgramThrows) {
  EXPECT_THROW(pt::run_command({"pgwire-no-such-program"}), std::runtime_error);
}

TEST(TempPostgres, RunsQueriesAndLogsStatements) {
  pt::TempPostgresOptions options;
  options.settings = {{"log_statement", "all"}};
  pt::TempPostgres pg(options);
  EXPECT_EQ(pg.host(), "127.0.0.1");
  EXPECT_GT(pg.port(), 0);
  EXPECT_NE(pg.version().find("PostgreSQL"), std::string::npos) << pg.version();

  pt::CommandResult r = pg.run_psql({"-At", "-c", "SELECT 42"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("42"), std::string::npos) << r.out;
  EXPECT_NE(pg.read_log().find("statement: SELECT 42"), std::string::npos) << pg.log_tail();

  // The server listens on TCP 127.0.0.1 only, with its socket in its own directory.
  r = pg.run_psql({"-At", "-c", "SHOW listen_addresses"});
  EXPECT_EQ(r.out, "127.0.0.1\n") << r.describe();
  EXPECT_TRUE(fs::exists(pg.socket_dir() + "/.s.PGSQL." + std::to_string(pg.port())));
}

TEST(TempPostgres, ScramPasswordIsChecked) {
  pt::TempPostgresOptions options;
  options.host_auth = pt::HostAuth::scram_sha_256;
  options.password = "s3cret with spaces & 'quotes'";
  pt::TempPostgres pg(options);

  pt::CommandResult r = pg.run_psql({"-At", "-c", "SELECT current_user"}, {}, {{"PGPASSWORD", options.password}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "pgwire\n");

  r = pg.run_psql({"-At", "-c",
                   "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                   "WHERE rolname = 'pgwire'"},
                  {}, {{"PGUSER", "postgres"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "t\n");

  r = pg.run_psql({"-At", "-c", "SELECT 1"}, {}, {{"PGPASSWORD", "wrong"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.describe();

  // Over the Unix socket the harness itself needs no password.
  r = pg.run_admin_psql({"-At", "-c", "SELECT 7"});
  EXPECT_EQ(r.out, "7\n") << r.describe();
}

TEST(TempPostgres, Md5PasswordIsChecked) {
  pt::TempPostgresOptions options;
  options.host_auth = pt::HostAuth::md5;
  pt::TempPostgres pg(options);
  pt::CommandResult r = pg.run_psql({"-At", "-c", "SELECT 5"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "5\n");
  r = pg.run_psql({"-At", "-c", "SELECT 5"}, {}, {{"PGPASSWORD", "wrong"}});
  EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.describe();
}

TEST(TempPostgres, StopsServerAndRemovesDirectory) {
  pid_t pid = 0;
  std::string dir;
  {
    pt::TempPostgres pg;
    pid = pg.pid();
    dir = pg.base_dir();
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(fs::exists(dir + "/data/PG_VERSION"));
  }
  EXPECT_FALSE(alive(pid));
  EXPECT_FALSE(fs::exists(dir));
}

TEST(TempPostgres, ServerDiesWithItsTestProcess) {
  // A child process starts a server and is then SIGKILLed, as a crashed test would be. The
  // parent-death signal must take the postmaster down; the next TempPostgres removes the
  // directory left behind.
  std::array<int, 2> fds{};
  ASSERT_EQ(pipe(fds.data()), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    try {
      pt::TempPostgres pg;
      std::string msg = std::to_string(pg.pid()) + " " + pg.base_dir() + "\n";
      ssize_t ignored = write(fds[1], msg.data(), msg.size());
      (void)ignored;
      pause();
    } catch (...) {
    }
    _exit(1);
  }
  close(fds[1]);
  std::string msg;
  std::array<char, 256> buf{};
  ssize_t n;
  while ((n = read(fds[0], buf.data(), buf.size())) > 0) {
    msg.append(buf.data(), static_cast<size_t>(n));
    if (msg.find('\n') != std::string::npos) break;
  }
  close(fds[0]);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_NE(msg.find(' '), std::string::npos) << "the child did not start a server";
  pid_t postmaster = std::stoi(msg.substr(0, msg.find(' ')));
  std::string dir = msg.substr(msg.find(' ') + 1);
  dir.pop_back();

  EXPECT_TRUE(wait_dead(postmaster, std::chrono::seconds(20)));
  // The directory is left behind now, but a TempPostgres of a test running in parallel may
  // already have removed it: only its absence afterwards is checked.
  {
    pt::TempPostgres next;  // cleans up stale directories
  }
  EXPECT_FALSE(fs::exists(dir));
}

TEST(TempPostgres, ExtraSettingsWin) {
  pt::TempPostgresOptions options;
  options.settings = {{"application_name", "pgwire-harness"}, {"shared_buffers", "20MB"}};
  pt::TempPostgres pg(options);
  pt::CommandResult r = pg.run_psql({"-At", "-c", "SHOW shared_buffers"});
  EXPECT_EQ(r.out, "20MB\n") << r.describe();
}

TEST(FindPostgres, HonoursEnvironment) {
  const char* before = std::getenv("PGWIRE_PG_BINDIR");
  std::string saved = before != nullptr ? before : "";
  std::string found = pt::find_postgres_bindir();
  EXPECT_TRUE(fs::exists(found + "/postgres"));
  setenv("PGWIRE_PG_BINDIR", "/nonexistent/pgwire", 1);
  EXPECT_THROW(pt::find_postgres_bindir(), std::runtime_error);
  setenv("PGWIRE_PG_BINDIR", found.c_str(), 1);
  EXPECT_EQ(pt::find_postgres_bindir(), found);
  if (saved.empty()) {
    unsetenv("PGWIRE_PG_BINDIR");
  } else {
    setenv("PGWIRE_PG_BINDIR", saved.c_str(), 1);
  }
}
