// pgproxy's own rotation of the SQL log and the capture against a real server and real clients:
// --rotate-size, --rotate-interval, --rotate-keep, --rotate-compress (checked with the zstd
// program), a capture left by an earlier run, and a full disk (a real tmpfs filling up, then
// given room again). pgdump-log reads each rotated set as one stream.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
namespace pt = pgwire::test;
using namespace std::chrono_literals;
using pt::ProxyProcess;

namespace {

class PgproxyRotationTest : public pt::SharedServerTest<PgproxyRotationTest> {
 public:
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

struct Closed {
  std::string path;
  std::string stamp;  // 20261202T174000Z
  int attempt = 0;    // the -N after it
  bool compressed = false;
};

// The closed files of DIR/STEM.EXT, oldest first, as the names say; and whether every name in DIR
// that starts with STEM- has the rotated form.
std::vector<Closed> closed_files(const std::string& dir, const std::string& stem, const std::string& ext,
                                 bool* all_well_named = nullptr) {
  std::vector<Closed> out;
  const std::regex re(stem + R"(-(\d{8}T\d{6}Z)(?:-(\d+))?)" + std::regex_replace(ext, std::regex(R"(\.)"), R"(\.)") +
                      R"((\.zst)?)");
  if (all_well_named != nullptr) *all_well_named = true;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(stem + "-", 0) != 0) continue;
    std::smatch m;
    if (!std::regex_match(name, m, re)) {
      if (all_well_named != nullptr) *all_well_named = false;
      continue;
    }
    out.push_back(Closed{e.path().string(), m[1], m[2].matched ? std::stoi(m[2]) : 0, m[3].matched});
  }
  std::sort(out.begin(), out.end(), [](const Closed& a, const Closed& b) {
    return a.stamp != b.stamp ? a.stamp < b.stamp : a.attempt < b.attempt;
  });
  return out;
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0;
}

uint64_t file_size(const std::string& path) {
  std::error_code ec;
  uint64_t n = fs::file_size(path, ec);
  return ec ? 0 : n;
}

// "exiting: ... lines_written=N ..." from pgproxy's last line.
long exit_figure(const std::string& output, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("exiting: .*" + name + "=(\\d+)"))) return -1;
  return std::stol(m[1]);
}

std::string metric_line(const std::string& metrics, const std::string& prefix) {
  for (const std::string& l : pt::lines_of(metrics)) {
    if (l.rfind(prefix + " ", 0) == 0) return l.substr(prefix.size() + 1);
  }
  return "(absent)";
}

// A pgbench run whose sessions each outlive several files: prepared statements Parse'd in one
// file are executed in the next ones.
void run_pgbench(const pt::TempPostgres& pg, const ProxyProcess& proxy, int transactions) {
  pt::CommandResult r =
      proxy.client(pg, "pgbench", {"-n", "-S", "-M", "prepared", "-c", "2", "-t", std::to_string(transactions)});
  ASSERT_TRUE(r.ok()) << r.describe();
}

TEST_F(PgproxyRotationTest, SizeRotationLosesNoLineAndTheSetReadsAsOneStream) {
  ProxyProcess proxy(pg(), {"--rotate-size", "32K", "--capture-backend"});
  run_pgbench(pg(), proxy, 400);
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  bool well_named = false;
  std::vector<Closed> logs = closed_files(proxy.dir(), "sql", ".log", &well_named);
  EXPECT_TRUE(well_named);
  std::vector<Closed> caps = closed_files(proxy.dir(), "capture", ".pgwc", &well_named);
  EXPECT_TRUE(well_named);
  ASSERT_GE(logs.size(), 2u) << proxy.output();
  ASSERT_GE(caps.size(), 2u) << proxy.output();
  // Every line is in exactly one file: the closed ones in order, then the active one.
  std::string all;
  for (const Closed& c : logs) {
    EXPECT_GE(file_size(c.path), 32u * 1024) << c.path;  // rotated once past the size, not before
    EXPECT_EQ(file_mode(c.path), 0600u) << c.path;
    all += pt::read_text_file(c.path);
  }
  for (const Closed& c : caps) EXPECT_EQ(file_mode(c.path), 0600u) << c.path;
  all += pt::read_text_file(proxy.sql_log());
  std::vector<std::string> lines = pt::lines_of(all);
  EXPECT_EQ(static_cast<long>(lines.size()), exit_figure(proxy.output(), "lines_written")) << proxy.output();
  EXPECT_GE(pt::proxy_statement_count(all), 800) << all.substr(0, 2000);  // 2 clients x 400 executes
  for (const std::string& l : lines) ASSERT_FALSE(pt::line_head(l).empty()) << l;

  // pgdump-log on the directory: the capture's files (not the SQL logs beside them) as one
  // stream, sessions followed from file to file: the same lines as the live log.
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", proxy.dir()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  EXPECT_EQ(dump.out, all);
}

TEST_F(PgproxyRotationTest, KeepRemovesTheOldestAndCompressedFilesStayReadable) {
  ProxyProcess proxy(pg(), {"--rotate-size", "16K", "--rotate-keep", "2", "--rotate-compress", "--capture-backend",
                            "--metrics-listen", "127.0.0.1:0"});
  run_pgbench(pg(), proxy, 500);
  std::this_thread::sleep_for(500ms);  // the last batches written (and maybe a last rotation)
  // Compression runs on a thread of its own; stop once it is done.
  std::vector<Closed> logs, caps;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(50ms)) {
    logs = closed_files(proxy.dir(), "sql", ".log");
    caps = closed_files(proxy.dir(), "capture", ".pgwc");
    auto plain = [](const Closed& c) { return !c.compressed; };
    if (std::none_of(logs.begin(), logs.end(), plain) && std::none_of(caps.begin(), caps.end(), plain) &&
        logs.size() <= 2 && caps.size() <= 2) {
      break;
    }
  }
  std::string metrics = proxy.scrape_metrics();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  logs = closed_files(proxy.dir(), "sql", ".log");
  caps = closed_files(proxy.dir(), "capture", ".pgwc");

  EXPECT_EQ(logs.size(), 2u);
  EXPECT_EQ(caps.size(), 2u);
  for (const auto* set : {&logs, &caps}) {
    for (const Closed& c : *set) {
      EXPECT_TRUE(c.compressed) << c.path;
      EXPECT_EQ(file_mode(c.path), 0600u) << c.path;
      pt::CommandResult t = pt::run_command({"zstd", "-q", "-t", c.path});
      EXPECT_TRUE(t.ok()) << t.describe();
    }
  }
  EXPECT_NE(proxy.output().find("(--rotate-keep 2)"), std::string::npos) << proxy.output();
  EXPECT_NE(metric_line(metrics, "pgproxy_closed_files_removed_total"), "0") << metrics;
  EXPECT_NE(metric_line(metrics, "pgproxy_closed_files_compressed_total"), "0") << metrics;
  EXPECT_NE(metric_line(metrics, "pgproxy_file_rotations_total{file=\"sql_log\",reason=\"rotate\"}"), "0") << metrics;

  // The newest compressed log, through zstd -d, is whole lines of the live log's form.
  pt::CommandResult d = pt::run_command({"zstd", "-q", "-d", "-c", logs.back().path});
  ASSERT_TRUE(d.ok()) << d.describe();
  std::vector<std::string> lines = pt::lines_of(d.out);
  EXPECT_GT(lines.size(), 50u);
  for (const std::string& l : lines) ASSERT_NE(pt::line_sql(l), "") << l;

  // pgdump-log reads the kept files, .zst included; the sessions whose start was removed are
  // reported as partial, not guessed.
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", proxy.dir()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  // The newest closed log's last statement is there (by its time and parameter), from a session
  // whose start was removed: its user and its statement text, Parse'd in a removed file, are
  // reported unknown, never guessed.
  const std::string& last = lines.back();
  const std::string stamp = last.substr(0, last.find(' '));
  const std::string param = last.substr(last.find(" params=("), last.find(" sql: ") - last.find(" params=("));
  size_t at = dump.out.find(stamp);
  ASSERT_NE(at, std::string::npos) << last;
  std::string line = dump.out.substr(at, dump.out.find('\n', at) - at);
  EXPECT_NE(line.find(param), std::string::npos) << line;
  EXPECT_NE(dump.out.find(" sql_unknown sql: "), std::string::npos);
  EXPECT_NE(dump.err.find("partial"), std::string::npos) << dump.err;
}

TEST_F(PgproxyRotationTest, IntervalRotationMakesNoEmptyFiles) {
  ProxyProcess proxy(pg(), {"--rotate-interval", "1s"});
  // About three seconds of statements, one every 200 ms, in one session.
  std::string script;
  for (int i = 0; i < 15; ++i) script += "SELECT 'tick " + std::to_string(i) + "', pg_sleep(0.2);\n";
  pt::CommandResult r = proxy.client(pg(), "psql", {"-X", "-At", "-f", "-"}, script);
  ASSERT_TRUE(r.ok()) << r.describe();
  std::this_thread::sleep_for(1500ms);  // the last interval ends, its file is closed
  size_t after_traffic = closed_files(proxy.dir(), "sql", ".log").size();
  std::this_thread::sleep_for(2500ms);  // idle intervals: nothing to rotate
  size_t after_idle = closed_files(proxy.dir(), "sql", ".log").size();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  EXPECT_GE(after_traffic, 2u);
  EXPECT_EQ(after_idle, after_traffic);
  std::vector<Closed> logs = closed_files(proxy.dir(), "sql", ".log");
  std::string all;
  for (const Closed& c : logs) {
    std::string text = pt::read_text_file(c.path);
    EXPECT_FALSE(text.empty()) << c.path;
    all += text;
  }
  all += pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(pt::lines_of(all).size(), 15u);
  EXPECT_NE(all.find("'tick 14'"), std::string::npos);
  // One interval, one stamp: the files' stamps differ.
  for (size_t i = 1; i < logs.size(); ++i) EXPECT_NE(logs[i].stamp, logs[i - 1].stamp);
}

TEST_F(PgproxyRotationTest, ACaptureLeftByAnEarlierRunIsKeptNotOverwritten) {
  std::string dir;
  {
    ProxyProcess first(pg());
    ASSERT_TRUE(first.psql(pg(), {"-At", "-c", "SELECT 'first run'"}).ok());
    ASSERT_EQ(first.stop(), 0);
    dir = first.dir() + "-kept";
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(first.capture(), dir + "/capture.pgwc");
  }
  pt::ProxyOptions o;
  o.upstream = "127.0.0.1:" + std::to_string(pg().port());
  o.capture = dir + "/capture.pgwc";
  o.sql_log = dir + "/sql.log";
  {
    ProxyProcess second(o);
    ASSERT_TRUE(second.psql(pg(), {"-At", "-c", "SELECT 'second run'"}).ok());
    ASSERT_EQ(second.stop(), 0);
    EXPECT_NE(second.output().find("an earlier capture was at " + o.capture + ": renamed to "), std::string::npos)
        << second.output();
  }
  std::vector<Closed> caps = closed_files(dir, "capture", ".pgwc");
  ASSERT_EQ(caps.size(), 1u);
  pt::CommandResult old_run = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", caps[0].path});
  pt::CommandResult new_run = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", o.capture});
  EXPECT_NE(old_run.out.find("'first run'"), std::string::npos) << old_run.describe();
  EXPECT_EQ(old_run.out.find("'second run'"), std::string::npos) << old_run.describe();
  EXPECT_NE(new_run.out.find("'second run'"), std::string::npos) << new_run.describe();
  fs::remove_all(dir);
}

// Only a regular file is rotated. An SQL log or a capture that is a FIFO (or
// /dev/null, which a test must not put at risk: run as root, renaming it and
// creating a regular file in its place broke the machine) is written where it
// is, whatever --rotate-* say, with a warning at start.
TEST_F(PgproxyRotationTest, WhatIsNotARegularFileIsNeverRotated) {
  pt::TempDir dir("pgproxy-rotation-fifo");
  const std::string log = dir.file("sql.log"), cap = dir.file("capture.pgwc");
  ASSERT_EQ(::mkfifo(log.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(cap.c_str(), 0600), 0);
  auto drain = [](const std::string& path, std::string* out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // waits for pgproxy to open it
    if (fd < 0) return;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out->append(buf, static_cast<size_t>(n));
    ::close(fd);
  };
  std::string log_text, cap_bytes, output;
  std::thread log_reader(drain, log, &log_text), cap_reader(drain, cap, &cap_bytes);
  {
    pt::ProxyOptions o;
    o.upstream = "127.0.0.1:" + std::to_string(pg().port());
    o.sql_log = log;
    o.capture = cap;
    o.extra = {"--rotate-size", "4K", "--rotate-interval", "1s", "--rotate-keep", "1", "--capture-backend"};
    ProxyProcess proxy(o);
    run_pgbench(pg(), proxy, 200);
    std::this_thread::sleep_for(1500ms);  // an interval boundary passes
    EXPECT_TRUE(proxy.psql(pg(), {"-At", "-c", "SELECT 'after the interval'"}).ok());
    EXPECT_EQ(proxy.stop(), 0) << proxy.output();
    output = proxy.output();
  }
  // A reader still waiting in open() (pgproxy never opened its FIFO) gets its end of file.
  for (const std::string& f : {log, cap}) {
    const int fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
  }
  log_reader.join();
  cap_reader.join();

  EXPECT_NE(output.find("warning: the SQL log " + log + " is not a regular file: written where it is, never rotated"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("warning: the capture " + cap + " is not a regular file: written where it is, never rotated"),
            std::string::npos)
      << output;
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"capture.pgwc", "sql.log"}));
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::stat(cap.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // Everything went through the one FIFO each: 400 SELECTs of pgbench, then psql's.
  EXPECT_GE(pt::proxy_statement_count(log_text), 401) << log_text.size();
  EXPECT_NE(log_text.find("'after the interval'"), std::string::npos);
  const std::string copy = pt::spit(dir.file("read-back.pgwc"), cap_bytes);
  pt::CommandResult r = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", copy});
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, log_text);
}

// SIGHUP with the files where they were (systemctl reload, for new TLS certificates): both
// files go on, nothing is overwritten.
TEST_F(PgproxyRotationTest, SighupWithoutMovingTheFilesKeepsThem) {
  ProxyProcess proxy(pg());
  ASSERT_TRUE(proxy.psql(pg(), {"-At", "-c", "SELECT 'before reload'"}).ok());
  std::this_thread::sleep_for(200ms);  // the writer has the first lines
  proxy.signal(SIGHUP);
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < deadline && proxy.output().find("SIGHUP: reopening") == std::string::npos;
       std::this_thread::sleep_for(20ms)) {
  }
  ASSERT_TRUE(proxy.psql(pg(), {"-At", "-c", "SELECT 'after reload'"}).ok());
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", proxy.capture()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  EXPECT_NE(dump.out.find("'before reload'"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("'after reload'"), std::string::npos) << dump.out;
  std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("'before reload'"), std::string::npos) << log;
  EXPECT_NE(log.find("'after reload'"), std::string::npos) << log;
}

// A real tmpfs of 256 KiB: the SQL log and the capture fill it; statements go on being proxied,
// lost lines and records are counted and said; once the tmpfs has room again, both files
// resume (the capture in a new file), and no torn line is left in the log.
TEST_F(PgproxyRotationTest, AFullDiskLosesOnlyWhatItMustAndWritingResumes) {
  std::string mnt = fs::temp_directory_path() / ("pgproxy-full-" + std::to_string(getpid()));
  fs::create_directories(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k,mode=0700") != 0) {
    fs::remove(mnt);
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): " << strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() {
      umount2(path.c_str(), MNT_DETACH);
      fs::remove_all(path);
    }
  } unmount{mnt};

  pt::ProxyOptions o;
  o.upstream = "127.0.0.1:" + std::to_string(pg().port());
  o.capture = mnt + "/capture.pgwc";
  o.sql_log = mnt + "/sql.log";
  o.extra = {"--metrics-listen", "127.0.0.1:0"};
  ProxyProcess proxy(o);
  const std::string filler(3000, 'x');
  std::string script;
  for (int i = 0; i < 200; ++i) script += "SELECT 'fill " + std::to_string(i) + " " + filler + "' AS f;\n";
  pt::CommandResult r = proxy.client(pg(), "psql", {"-X", "-At", "-f", "-"}, script);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(pt::lines_of(r.out).size(), 200u);  // every statement answered, disk full or not
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline &&
       proxy.output().find("records are being LOST") == std::string::npos;
       std::this_thread::sleep_for(50ms)) {
  }
  std::string full = proxy.scrape_metrics();
  EXPECT_NE(proxy.output().find("writing the SQL log " + o.sql_log + " failed: No space left on device"),
            std::string::npos)
      << proxy.output();
  EXPECT_NE(proxy.output().find("records are being LOST"), std::string::npos) << proxy.output();
  EXPECT_NE(metric_line(full, "pgproxy_sql_log_lines_lost_total"), "0") << full;
  EXPECT_NE(metric_line(full, "pgproxy_capture_records_lost_total"), "0") << full;
  EXPECT_EQ(metric_line(full, "pgproxy_capture_up"), "0") << full;

  // Room again: 8 MiB.
  ASSERT_EQ(mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=8m,mode=0700"), 0) << strerror(errno);
  std::this_thread::sleep_for(1500ms);  // the capture's next attempt at a new file
  for (int i = 0; i < 3; ++i) {
    r = proxy.psql(pg(), {"-At", "-c", "SELECT 'after " + std::to_string(i) + "'"});
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  std::string again;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(50ms)) {
    again = proxy.scrape_metrics();
    if (metric_line(again, "pgproxy_capture_up") == "1") break;
  }
  EXPECT_EQ(metric_line(again, "pgproxy_capture_up"), "1") << again;
  EXPECT_NE(metric_line(again, "pgproxy_file_rotations_total{file=\"capture\",reason=\"failure\"}"), "0") << again;
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  EXPECT_NE(proxy.output().find("SQL log " + o.sql_log + " writable again; "), std::string::npos) << proxy.output();
  EXPECT_NE(proxy.output().find("capture " + o.capture + " writable again; "), std::string::npos) << proxy.output();

  std::string log = pt::read_text_file(o.sql_log);
  std::vector<std::string> lines = pt::lines_of(log);
  for (const std::string& l : lines) ASSERT_FALSE(pt::line_sql(l).empty()) << "a torn line: " << l.substr(0, 200);
  EXPECT_NE(log.find("sql: SELECT 'after 2'"), std::string::npos);
  // Written and lost add up to every statement.
  long written = exit_figure(proxy.output(), "lines_written");
  long lost = exit_figure(proxy.output(), "lost_lines");
  EXPECT_EQ(written, static_cast<long>(lines.size()));
  EXPECT_EQ(written + lost, 200 + 3) << proxy.output();

  // The failed capture was set aside under its rotated name; the new one has what came after.
  std::vector<Closed> caps = closed_files(mnt, "capture", ".pgwc");
  EXPECT_GE(caps.size(), 1u);
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", o.capture});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  EXPECT_NE(dump.out.find("SELECT 'after 2'"), std::string::npos) << dump.out;
}

}  // namespace
