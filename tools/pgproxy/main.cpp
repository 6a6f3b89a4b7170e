// pgproxy: a transparent PostgreSQL proxy that writes every SQL statement to a
// log and records the raw frontend frames to a capture file.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pgwire/system.hpp"
#include "proxy.hpp"

namespace {

int run(int argc, char** argv) {
  pgproxy::ProxyOptions o;
  CLI::App app{
      "pgproxy: a transparent PostgreSQL proxy. Clients connect to it as to the server; every byte is\n"
      "forwarded unchanged, every SQL statement is written to the SQL log, the frontend frames to a capture.\n"
      "SIGHUP reopens the files (logrotate), SIGINT/SIGTERM finish writing and exit."};
  app.set_version_flag("--version", fmt::format("pgproxy {}", pgproxy::kVersion));
  app.set_config("--config", "", "Read options from a TOML/INI file (keys = long option names)");
  app.add_option("--listen", o.listen,
                 "HOST:PORT to accept clients on ([::1]:6432 for IPv6, *:6432 for all, /DIR:PORT for the Unix socket "
                 "DIR/.s.PGSQL.PORT)")
      ->capture_default_str();
  app.add_option("--upstream", o.upstream,
                 "HOST:PORT of the PostgreSQL server (/DIR:PORT: its Unix socket in DIR, as libpq's host=/DIR)")
      ->capture_default_str();
  app.add_option("--sql-log", o.sql_log, "SQL log file, one line per statement ('-' = stdout, '' = none)")
      ->capture_default_str();
  app.add_option("--capture", o.capture, "capture file of the raw frames (see docs/capture-format.md)");
  app.add_option("--log-format", o.log_format, "SQL log format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_flag("--capture-backend", o.capture_backend, "also record the server's frames in the capture");
  app.add_flag("--capture-secrets", o.capture_secrets, "record password and SASL frames instead of redacting them");
  app.add_option("--max-connections", o.max_connections, "client connections served at once; more get SQLSTATE 53300")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--stats-interval", o.stats_interval, "seconds between statistics lines on stderr (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bool no_io_uring = false;
  app.add_flag("--no-io-uring", no_io_uring, "send each write with send() instead of one io_uring call per poll round");
  CLI11_PARSE(app, argc, argv);
  o.io_uring = !no_io_uring;
  if (!o.sql_log.empty() && o.sql_log == o.capture) {
    fmt::print(stderr, "pgproxy: --sql-log and --capture cannot both be {}\n", o.sql_log == "-" ? "stdout" : o.sql_log);
    return 2;
  }
  return pgproxy::run_proxy(o);
}

}  // namespace

int main(int argc, char** argv) { return pgwire::run_main("pgproxy", 1, run, argc, argv); }
