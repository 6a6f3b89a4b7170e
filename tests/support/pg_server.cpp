#include "pg_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_pki.hpp"

namespace pgwire::test {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kDirPrefix = "pgwire-pg-";

bool is_executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0;
}

// "15" -> {15}, "9.6" -> {9, 6}; empty if the name is not a version.
std::vector<int> parse_version(const std::string& name) {
  std::vector<int> parts;
  std::stringstream in(name);
  std::string part;
  while (std::getline(in, part, '.')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos) return {};
    parts.push_back(std::stoi(part));
  }
  return parts;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Whether host_auth checks a password (and the roles get one).
bool uses_password(HostAuth auth) { return auth == HostAuth::scram_sha_256 || auth == HostAuth::md5; }

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// Guards the kill() below against a pid that was reused by an unrelated process.
bool is_postgres_process(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  return std::getline(in, comm) && comm.starts_with("postgres");
}

pid_t read_pid_file(const fs::path& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

// Removes directories left by crashed runs: both the test process that made the directory and the
// postmaster in it are gone. A directory without owner.pid is skipped (it may be brand new).
void remove_stale_dirs() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with(kDirPrefix)) continue;
    pid_t owner = read_pid_file(entry.path() / "owner.pid");
    if (owner == 0 || process_alive(owner)) continue;
    pid_t postmaster = read_pid_file(entry.path() / "data" / "postmaster.pid");
    if (process_alive(postmaster)) {
      if (is_postgres_process(postmaster)) kill(postmaster, SIGQUIT);  // orphaned
      continue;                                                        // removed by a later run, once it is down
    }
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

std::string tail_lines(const std::string& text, size_t lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  while (pos > 0 && lines > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
    --lines;
  }
  return lines == 0 ? text.substr(pos + 1) : text;
}

}  // namespace

const char* host_auth_name(HostAuth auth) {
  switch (auth) {
    case HostAuth::trust: return "trust";
    case HostAuth::scram_sha_256: return "scram-sha-256";
    case HostAuth::md5: return "md5";
    case HostAuth::cert: return "cert";
  }
  return "?";
}

std::string find_postgres_bindir() {
  if (const char* env = std::getenv("PGWIRE_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (!is_executable(fs::path(env) / "postgres")) {
      throw std::runtime_error(std::string("PGWIRE_PG_BINDIR=") + env + " has no postgres binary");
    }
    return env;
  }
  std::vector<int> best_version;
  std::string best;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    std::vector<int> version = parse_version(entry.path().filename().string());
    fs::path bin = entry.path() / "bin";
    if (version.empty() || !is_executable(bin / "postgres")) continue;
    if (best.empty() || version > best_version) {
      best_version = version;
      best = bin.string();
    }
  }
  if (best.empty()) {
    throw std::runtime_error(
        "no PostgreSQL server found in /usr/lib/postgresql/*/bin (install the Debian package "
        "`postgresql`, see scripts/install-deps.sh) and PGWIRE_PG_BINDIR is not set");
  }
  return best;
}

uint16_t pick_free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int saved = errno;
    close(fd);
    throw std::runtime_error(std::string("bind/getsockname on 127.0.0.1:0: ") + std::strerror(saved));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

TempPostgres::TempPostgres(TempPostgresOptions options) : options_(std::move(options)) {
  if (options_.hostssl_only && !options_.tls) throw std::invalid_argument("TempPostgres: hostssl_only needs tls");
  if (options_.host_auth == HostAuth::cert && (!options_.tls || options_.tls->ca_file.empty())) {
    throw std::invalid_argument("TempPostgres: HostAuth::cert needs tls with a ca_file");
  }
  bindir_ = options_.bindir.empty() ? find_postgres_bindir() : options_.bindir;
  user_ = options_.host_auth == HostAuth::trust ? superuser() : options_.user;
  if (geteuid() == 0) {
    run_as_ = lookup_user("postgres");
    if (!run_as_) {
      throw std::runtime_error("running as root, but there is no `postgres` user to run the server as");
    }
  }
  remove_stale_dirs();

  std::string pattern = std::string("/tmp/") + kDirPrefix + "XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  base_dir_ = pattern;
  try {
    data_dir_ = base_dir_ + "/data";
    log_path_ = base_dir_ + "/server.log";
    std::ofstream(base_dir_ + "/owner.pid") << getpid() << "\n";
    if (run_as_ && chown(base_dir_.c_str(), run_as_->uid, run_as_->gid) != 0) {
      throw std::runtime_error("chown " + base_dir_ + ": " + std::strerror(errno));
    }
    CommandResult v = run_command({tool("postgres"), "--version"});
    version_ = trim(v.out);
    init_cluster();
    if (options_.tls) {
      install_tls_files();
      write_hba_conf();
    }
    start_server();
    if (options_.host_auth != HostAuth::trust) create_login_role();
  } catch (...) {
    stop();
    throw;
  }
}

TempPostgres::~TempPostgres() { stop(); }

std::string TempPostgres::tool(const char* name) const {
  fs::path in_bindir = fs::path(bindir_) / name;
  if (is_executable(in_bindir)) return in_bindir.string();
  return name;  // found in PATH by run_command
}

std::string TempPostgres::password() const {
  return uses_password(options_.host_auth) ? options_.password : std::string();
}

void TempPostgres::init_cluster() {
  // With tls, write_hba_conf() replaces the pg_hba.conf that initdb writes.
  const char* auth_host = options_.tls ? "trust" : host_auth_name(options_.host_auth);
  std::vector<std::string> argv = {tool("initdb"),
                                   "-D",
                                   data_dir_,
                                   "-U",
                                   superuser(),
                                   "--encoding=UTF8",
                                   "--locale=C",
                                   "--no-sync",
                                   "--auth-local=trust",
                                   std::string("--auth-host=") + auth_host};
  std::string pwfile = base_dir_ + "/pwfile";
  if (uses_password(options_.host_auth)) {
    int fd = open(pwfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("create " + pwfile + ": " + std::strerror(errno));
    std::string line = options_.password + "\n";
    bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    bool owned = !run_as_ || fchown(fd, run_as_->uid, run_as_->gid) == 0;
    close(fd);
    if (!written || !owned) throw std::runtime_error("cannot write " + pwfile);
    argv.push_back("--pwfile=" + pwfile);
  }
  CommandOptions opts;
  opts.env = {{"LC_ALL", "C"}};
  opts.run_as = run_as_;
  opts.cwd = base_dir_;
  opts.timeout = std::chrono::seconds(120);
  CommandResult r = run_command(argv, opts);
  std::error_code ignored;
  fs::remove(pwfile, ignored);
  if (!r.ok()) throw std::runtime_error("initdb failed: " + r.describe());
}

void TempPostgres::start_server() {
  // The port is free when we look but could be taken before postgres binds it: retry a few times.
  std::string failure;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (try_start_on(pick_free_port(), failure)) return;
    if (failure.find("could not bind") == std::string::npos && failure.find("already in use") == std::string::npos) {
      break;
    }
  }
  throw std::runtime_error("postgres did not start:\n" + failure);
}

bool TempPostgres::try_start_on(uint16_t port, std::string& failure) {
  port_ = port;
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) throw std::runtime_error("open " + log_path_ + ": " + std::strerror(errno));
  if (run_as_ && fchown(log_fd, run_as_->uid, run_as_->gid) != 0) {
    close(log_fd);
    throw std::runtime_error("chown " + log_path_ + ": " + std::strerror(errno));
  }
  const char* encryption = options_.host_auth == HostAuth::md5 ? "md5" : "scram-sha-256";
  std::vector<std::pair<std::string, std::string>> settings = {
      {"listen_addresses", host_},
      {"port", std::to_string(port)},
      {"unix_socket_directories", base_dir_},
      {"fsync", "off"},
      {"full_page_writes", "off"},
      {"logging_collector", "off"},
      {"shared_buffers", "32MB"},
      {"password_encryption", encryption},
  };
  if (tls_) {
    settings.emplace_back("ssl", "on");
    settings.emplace_back("ssl_cert_file", tls_->cert_file);
    settings.emplace_back("ssl_key_file", tls_->key_file);
    if (!tls_->ca_file.empty()) settings.emplace_back("ssl_ca_file", tls_->ca_file);
  }
  settings.insert(settings.end(), options_.settings.begin(), options_.settings.end());
  std::vector<std::string> argv = {tool("postgres"), "-D", data_dir_};
  for (const auto& [name, value] : settings) {
    argv.push_back("-c");
    argv.push_back(name + "=" + value);
  }
  SpawnOptions spawn;
  spawn.env = child_environment({{"LC_ALL", "C"}});
  spawn.run_as = run_as_;
  spawn.cwd = base_dir_;
  spawn.output_fd = log_fd;
  spawn.parent_death_signal = SIGQUIT;  // see the header: immediate shutdown if we die
  try {
    pid_ = spawn_process(argv, spawn);
  } catch (...) {
    close(log_fd);
    throw;
  }
  close(log_fd);

  const auto deadline = Clock::now() + options_.start_timeout;
  std::vector<std::string> ping = {tool("pg_isready"),   "-q", "-h",       host_, "-p",
                                   std::to_string(port), "-d", "postgres", "-t",  "2"};
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      failure = "postmaster exited (status " + std::to_string(status) + "); log tail:\n" + log_tail();
      return false;
    }
    if (run_command(ping, {}, std::chrono::seconds(10)).exit_code == 0) return true;
    if (Clock::now() >= deadline) {
      std::string tail = log_tail();
      throw std::runtime_error("postgres did not accept connections on 127.0.0.1:" + std::to_string(port) + " within " +
                               std::to_string(options_.start_timeout.count()) + " ms; log tail:\n" + tail);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The server's user must own the key (mode 0600): PostgreSQL refuses to start otherwise.
void TempPostgres::install_tls_files() {
  std::string dir = base_dir_ + "/tls";
  if (mkdir(dir.c_str(), 0700) != 0) throw std::runtime_error("mkdir " + dir + ": " + std::strerror(errno));
  if (run_as_ && chown(dir.c_str(), run_as_->uid, run_as_->gid) != 0) {
    throw std::runtime_error("chown " + dir + ": " + std::strerror(errno));
  }
  CertKeyPair pair = TestPki::install_pair({options_.tls->cert_file, options_.tls->key_file}, dir, "server", run_as_);
  tls_ = TempPostgresTls{pair.cert, pair.key, {}};
  if (!options_.tls->ca_file.empty()) {
    tls_->ca_file = dir + "/ca.crt";
    install_file(options_.tls->ca_file, tls_->ca_file, 0644, run_as_);
  }
}

// Replaces initdb's pg_hba.conf (which the server's user owns; truncating keeps the owner).
// "all" databases do not include replication connections: they get lines of their own.
void TempPostgres::write_hba_conf() const {
  const bool hostssl = options_.hostssl_only || options_.host_auth == HostAuth::cert;
  std::string method = host_auth_name(options_.host_auth);
  if (options_.host_auth == HostAuth::cert) method += " clientcert=verify-full";
  std::ostringstream hba;
  hba << "# Written by TempPostgres (tests/support/pg_server.cpp).\n"
      << "local all all trust\n"
      << "local replication all trust\n";
  for (const char* database : {"all", "replication"}) {
    for (const char* address : {"127.0.0.1/32", "::1/128"}) {
      if (options_.hostssl_only) hba << "hostnossl " << database << " all " << address << " reject\n";
      hba << (hostssl ? "hostssl " : "host ") << database << " all " << address << " " << method << "\n";
    }
  }
  std::string path = data_dir_ + "/pg_hba.conf";
  std::ofstream out(path, std::ios::trunc);
  out << hba.str();
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

void TempPostgres::create_login_role() {
  if (options_.user == superuser()) return;  // initdb --pwfile already set its password
  // psql variables quote the name and password (:"x" and :'x'): no SQL built from strings here.
  const char* password_clause = uses_password(options_.host_auth) ? " PASSWORD :'login_password'" : "";
  CommandResult r = run_admin_psql(
      {"-q", "-v", "ON_ERROR_STOP=1", "-v", "login_role=" + options_.user, "-v", "login_password=" + options_.password},
      std::string("CREATE ROLE :\"login_role\" LOGIN CREATEDB") + password_clause +
          ";\n"
          "GRANT ALL ON SCHEMA public TO :\"login_role\";\n");
  if (!r.ok()) throw std::runtime_error("creating role " + options_.user + ": " + r.describe());
}

std::string TempPostgres::read_log() const { return read_file(log_path_); }

std::string TempPostgres::log_tail(size_t lines) const { return tail_lines(read_log(), lines); }

std::map<std::string, std::string> TempPostgres::client_env() const {
  std::map<std::string, std::string> env = {
      {"PGHOST", host_},          {"PGPORT", std::to_string(port_)}, {"PGUSER", user_},
      {"PGDATABASE", "postgres"}, {"PGCONNECT_TIMEOUT", "10"},
  };
  if (!password().empty()) env["PGPASSWORD"] = password();
  return env;
}

CommandResult TempPostgres::run_psql(const std::vector<std::string>& args, const std::string& stdin_data,
                                     const std::map<std::string, std::string>& env) const {
  std::vector<std::string> argv = {tool("psql"), "-X", "-h", host_, "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions opts;
  opts.env = client_env();
  for (const auto& [name, value] : env) opts.env[name] = value;
  opts.stdin_data = stdin_data;
  opts.timeout = std::chrono::seconds(60);
  return run_command(argv, opts);
}

CommandResult TempPostgres::run_admin_psql(const std::vector<std::string>& args, const std::string& stdin_data) const {
  std::vector<std::string> argv = {tool("psql"),          "-X", "-h",        base_dir_, "-p",
                                   std::to_string(port_), "-U", superuser(), "-d",      "postgres"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions opts;
  opts.env = {{"PGCONNECT_TIMEOUT", "10"}};
  opts.stdin_data = stdin_data;
  opts.timeout = std::chrono::seconds(60);
  return run_command(argv, opts);
}

void TempPostgres::stop() {
  if (pid_ > 0) {
    kill(pid_, SIGQUIT);  // immediate shutdown: the postmaster stops its backends and exits
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
  }
  if (!base_dir_.empty()) {
    std::error_code ignored;
    fs::remove_all(base_dir_, ignored);
    base_dir_.clear();
  }
}

}  // namespace pgwire::test
