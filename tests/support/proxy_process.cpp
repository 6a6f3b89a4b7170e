#include "proxy_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "loopback.hpp"

namespace pgwire::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string tool_path(const std::string& name) {
  return std::string(PGWIRE_BINARY_DIR) + "/tools/" + name + "/" + name;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long proc_status_kib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string line_head(const std::string& line) { return line.substr(0, line.find(" sql: ")); }

std::string line_sql(const std::string& line) {
  size_t at = line.find(" sql: ");
  return at == std::string::npos ? std::string() : line.substr(at + 6);
}

int server_statement_count(const std::string& log) {
  int n = 0;
  for (const std::string& l : lines_of(log)) {
    if (l.find("LOG:  statement: ") != std::string::npos || l.find("LOG:  execute ") != std::string::npos) ++n;
  }
  return n;
}

int proxy_statement_count(const std::string& log) {
  int n = 0;
  for (const std::string& l : lines_of(log)) {
    std::string head = line_head(l);
    if (head.find(" query ") != std::string::npos) ++n;
    if (head.find(" execute ") != std::string::npos && head.find(" execute not_executed") == std::string::npos) ++n;
  }
  return n;
}

namespace {
std::atomic<int> proxy_counter{0};
}

ProxyProcess::ProxyProcess(const TempPostgres& pg, std::vector<std::string> extra)
    : ProxyProcess(ProxyOptions{pg.host() + ":" + std::to_string(pg.port()), std::move(extra), {}, {}, {}}) {}

ProxyProcess::ProxyProcess(ProxyOptions options) {
  dir_ =
      fs::temp_directory_path() / ("pgproxy-test-" + std::to_string(getpid()) + "-" + std::to_string(++proxy_counter));
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  output_ = (dir_ / "pgproxy.out").string();
  sql_log_ = options.sql_log.empty() ? (dir_ / "sql.log").string() : options.sql_log;
  capture_ = options.capture.empty() ? (dir_ / "capture.pgwc").string() : options.capture;
  std::string binary = tool_path("pgproxy");
  if (!fs::exists(binary)) throw std::runtime_error("pgproxy is not built: " + binary);
  bool own_port = options.listen.empty();
  std::vector<std::string> argv = {binary,       "--listen",       own_port ? "127.0.0.1:0" : options.listen,
                                   "--upstream", options.upstream, "--capture",
                                   capture_,     "--sql-log",      sql_log_ == "none" ? "" : sql_log_};
  // No statistics lines unless a test asks for them.
  if (std::find(options.extra.begin(), options.extra.end(), "--stats-interval") == options.extra.end()) {
    argv.insert(argv.end(), {"--stats-interval", "0"});
  }
  argv.insert(argv.end(), options.extra.begin(), options.extra.end());
  int fd = ::open(output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + output_);
  SpawnOptions so;
  so.env = child_environment({});
  so.output_fd = fd;
  so.parent_death_signal = SIGKILL;
  pid_ = spawn_process(argv, so);
  ::close(fd);
  const std::string listening = own_port ? "listening on 127.0.0.1:" : "listening on ";
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    std::string out = read_text_file(output_);
    size_t at = out.find(listening);
    // Ready once its start-up lines are all out: "writes: ..." is the last one
    // (tests read the "upstream ..." line, printed between).
    size_t last = out.find("pgproxy: writes: ");
    if (at != std::string::npos && last != std::string::npos && out.find('\n', last) != std::string::npos) {
      if (own_port) port_ = static_cast<uint16_t>(std::stoi(out.substr(at + listening.size())));
      return;
    }
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("pgproxy exited at start: " + out);
    }
  }
  throw std::runtime_error("pgproxy did not start listening: " + read_text_file(output_));
}

ProxyProcess::~ProxyProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

int ProxyProcess::stop(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, SIGTERM);
  int status = 0;
  for (auto deadline = Clock::now() + limit;;) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) break;
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  pid_ = -1;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

void ProxyProcess::signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

bool ProxyProcess::alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

long ProxyProcess::peak_rss_kib() const { return pid_ > 0 ? proc_status_kib(pid_, "VmHWM") : -1; }

std::map<std::string, std::string> ProxyProcess::client_env(const TempPostgres& pg,
                                                            const std::map<std::string, std::string>& more) const {
  std::map<std::string, std::string> env = pg.client_env();
  env["PGHOST"] = "127.0.0.1";
  env["PGPORT"] = std::to_string(port_);
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

CommandResult ProxyProcess::run(const TempPostgres& pg, const std::vector<std::string>& argv,
                                const std::string& stdin_data, const std::map<std::string, std::string>& env,
                                std::chrono::milliseconds timeout) const {
  CommandOptions opts;
  opts.env = client_env(pg, env);
  opts.stdin_data = stdin_data;
  opts.timeout = timeout;
  return run_command(argv, opts);
}

CommandResult ProxyProcess::client(const TempPostgres& pg, const std::string& program,
                                   const std::vector<std::string>& args, const std::string& stdin_data,
                                   const std::map<std::string, std::string>& env) const {
  std::vector<std::string> argv = {pg.bindir() + "/" + program, "-h", "127.0.0.1", "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(pg, argv, stdin_data, env, 60s);
}

CommandResult ProxyProcess::psql(const TempPostgres& pg, const std::vector<std::string>& args,
                                 const std::map<std::string, std::string>& env) const {
  std::vector<std::string> with_x = {"-X"};
  with_x.insert(with_x.end(), args.begin(), args.end());
  return client(pg, "psql", with_x, {}, env);
}

}  // namespace pgwire::test

namespace pgwire::test {

std::string ProxyProcess::scrape_metrics() const {
  std::smatch m;
  std::string out = output();
  if (!std::regex_search(out, m, std::regex(R"(metrics: http://127\.0\.0\.1:(\d+)/metrics)"))) return {};
  int fd = connect_to_loopback(static_cast<uint16_t>(std::stoi(m[1])), 10, 10);
  if (fd < 0) return {};
  const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {};
  }
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return got;
}

}  // namespace pgwire::test
