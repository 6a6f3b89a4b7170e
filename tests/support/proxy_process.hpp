// pgproxy as a child process of a test: started on port 0 (the port is read back from its
// "listening on" line, so tests never race for ports), its stderr and stdout kept in a file, and
// its SQL log and capture in a private directory that is removed afterwards.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pg_server.hpp"
#include "subprocess.hpp"

namespace pgwire::test {

// The path of a tool built in this tree ("pgproxy", "pgdump-log", "pgreplay").
std::string tool_path(const std::string& name);

// The contents of a file; empty if it cannot be read.
std::string read_text_file(const std::string& path);

// A /proc/PID/status field in KiB ("VmRSS", "VmHWM"); -1 if absent.
long proc_status_kib(pid_t pid, const std::string& key);

struct ProxyOptions {
  std::string upstream;            // "host:port"
  std::vector<std::string> extra;  // more pgproxy arguments
  std::string sql_log;             // empty: DIR/sql.log; "none": no SQL log
  std::string capture;             // empty: DIR/capture.pgwc
  std::string listen;              // empty: 127.0.0.1:0, and port() is the one it got
};

// Reading pgproxy's text SQL log and PostgreSQL's log_statement=all log.
std::vector<std::string> lines_of(const std::string& text);
// The part of a text SQL log line before the SQL: "ts session=.. client=.. user=.. db=.. kind outcome ...".
std::string line_head(const std::string& line);
// The SQL of a text SQL log line (after " sql: "); empty if there is none.
std::string line_sql(const std::string& line);
// Statements the server logged with log_statement=all: "statement: " per Query, "execute <name>: "
// per executed Execute.
int server_statement_count(const std::string& log);
// Text SQL log lines for statements the server ran: every query line and the execute lines not
// marked not_executed.
int proxy_statement_count(const std::string& log);

class ProxyProcess {
 public:
  explicit ProxyProcess(ProxyOptions options);
  // In front of `pg`, with the default files.
  explicit ProxyProcess(const TempPostgres& pg, std::vector<std::string> extra = {});
  ~ProxyProcess();
  ProxyProcess(const ProxyProcess&) = delete;
  ProxyProcess& operator=(const ProxyProcess&) = delete;

  // SIGTERM and wait (SIGKILL after `limit`): the exit code, 128 + signal if killed.
  int stop(std::chrono::milliseconds limit = std::chrono::seconds(20));
  void signal(int sig) const;
  bool alive() const;
  long peak_rss_kib() const;  // VmHWM; -1 once stopped

  uint16_t port() const { return port_; }  // 0 when ProxyOptions::listen was given
  pid_t pid() const { return pid_; }
  const std::string& sql_log() const { return sql_log_; }
  const std::string& capture() const { return capture_; }
  std::string dir() const { return dir_.string(); }
  std::string output() const { return read_text_file(output_); }
  // With --metrics-listen 127.0.0.1:0: the endpoint's whole HTTP response (a plain GET on a raw
  // socket); empty if pgproxy has not said where it listens.
  std::string scrape_metrics() const;

  // The environment of a client of the proxy: the server's client environment with PGHOST and
  // PGPORT pointing at the proxy, plus `more`.
  std::map<std::string, std::string> client_env(const TempPostgres& pg,
                                                const std::map<std::string, std::string>& more = {}) const;
  // argv (a full command line) run with client_env().
  CommandResult run(const TempPostgres& pg, const std::vector<std::string>& argv, const std::string& stdin_data = {},
                    const std::map<std::string, std::string>& env = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(120)) const;
  // A client program of the server's bindir (psql, pgbench) pointed at the proxy.
  CommandResult client(const TempPostgres& pg, const std::string& program, const std::vector<std::string>& args,
                       const std::string& stdin_data = {}, const std::map<std::string, std::string>& env = {}) const;
  // psql -X through the proxy.
  CommandResult psql(const TempPostgres& pg, const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env = {}) const;

 private:
  std::filesystem::path dir_;
  std::string output_;
  std::string sql_log_;
  std::string capture_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  uint16_t port_ = 0;
};

}  // namespace pgwire::test
