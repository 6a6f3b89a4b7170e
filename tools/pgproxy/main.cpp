// pgproxy: a transparent PostgreSQL proxy that writes every SQL statement to a
// log and records the raw frontend frames to a capture file.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include "check_config.hpp"
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
  app.allow_config_extras(false);  // a key that is no option is an error, not ignored
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "check the options (and --config file) without serving, print what is wrong; exit 0 if fine, 2 if not")
      ->configurable(false);
  app.add_option("--listen", o.listen,
                 "HOST:PORT to accept clients on ([::1]:6432 for IPv6, *:6432 for all, /DIR:PORT for the Unix socket "
                 "DIR/.s.PGSQL.PORT)")
      ->capture_default_str();
  app.add_flag("--reuse-port", o.reuse_port,
               "let several pgproxy processes listen on the same TCP --listen address (SO_REUSEPORT; the kernel "
               "spreads new clients among them), each with its own --sql-log, --capture and --metrics-listen");
  app.add_option("--upstream", o.upstream,
                 "HOST:PORT of the PostgreSQL server (/DIR:PORT: its Unix socket in DIR, as libpq's host=/DIR)")
      ->capture_default_str();
  app.add_option("--sql-log", o.sql_log, "SQL log file, one line per statement ('-' = stdout, '' = none)")
      ->capture_default_str();
  app.add_option("--capture", o.capture, "capture file of the raw frames (see docs/capture-format.md)");
  app.add_option("--log-format", o.log_format,
                 "SQL log format: text, json, or csvlog (PostgreSQL's csvlog, for pgBadger -f csv and pgreplay -c)")
      ->check(CLI::IsMember({"text", "json", "csvlog"}))
      ->capture_default_str();
  app.add_flag("--capture-backend", o.capture_backend, "also record the server's frames in the capture");
  app.add_flag("--capture-secrets", o.capture_secrets, "record password and SASL frames instead of redacting them");
  app.add_option("--max-connections", o.max_connections, "client connections served at once; more get SQLSTATE 53300")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--stats-interval", o.stats_interval, "seconds between statistics lines on stderr (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--log-user", o.log_users,
                 "log only sessions whose user matches this POSIX extended regex (repeatable: any of them)");
  app.add_option("--log-database", o.log_databases, "log only sessions whose database matches (repeatable)");
  app.add_option("--log-application", o.log_applications,
                 "log only sessions whose startup application_name matches (repeatable)");
  app.add_flag("--capture-filter-same", o.capture_filter_same,
               "the capture too keeps only the sessions --log-user/--log-database/--log-application select "
               "(judged on the startup packet)");
  app.add_option("--log-min-duration-ms", o.log_min_duration_ms,
                 "leave out of the SQL log statements faster than this (errors and unknown outcomes always logged)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-params", o.log_params, "parameters in the SQL log: full, redacted (positions and types), none")
      ->check(CLI::IsMember({"full", "redacted", "none"}))
      ->capture_default_str();
  app.add_option("--log-max-query-bytes", o.log_max_query_bytes, "SQL text longer than this is cut in the log (marked)")
      ->check(CLI::Range(uint32_t{64}, uint32_t{1} << 30))
      ->capture_default_str();
  // Rotation (no logrotate needed).
  const char* kRotation = "Rotation of the SQL log and the capture (each on its own)";
  app.add_option("--rotate-size", o.rotate_size,
                 "start a new file once this much went into the current one (e.g. 100M, 1G; K, M, G are 1024s)")
      ->transform(CLI::AsSizeValue(false))
      ->group(kRotation);
  app.add_option("--rotate-interval", o.rotate_interval_s,
                 "start new files at every multiple of this, UTC-aligned (1h: on the hour; also 30m, 1d, or seconds)")
      ->transform(CLI::AsNumberWithUnit(std::map<std::string, int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
                                        CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION"))
      ->check(CLI::Range(int64_t{1}, int64_t{366} * 86400))
      ->group(kRotation);
  app.add_option("--rotate-keep", o.rotate_keep,
                 "closed files kept per file (the oldest removed); 0 = all. Closed files are named "
                 "STEM-YYYYMMDDTHHMMSSZ.EXT after the UTC time they were begun")
      ->capture_default_str()
      ->group(kRotation);
  app.add_flag("--rotate-compress", o.rotate_compress,
               "compress closed files with zstd (NAME.zst, on a thread of its own); pgdump-log and pgreplay read them")
      ->group(kRotation);

  app.add_option("--metrics-listen", o.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9187); off when not given");
  app.add_option("--startup-timeout", o.startup_timeout,
                 "seconds a client has for its TLS handshake and startup packet, and the server for its TLS handshake")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  // TLS toward clients.
  const char* kTls = "TLS toward clients (without --tls-cert: SSLRequest is answered N)";
  app.add_option("--tls-cert", o.client_tls.cert_file, "certificate (chain) pgproxy presents to clients, PEM")
      ->group(kTls);
  app.add_option("--tls-key", o.client_tls.key_file, "its private key, PEM; mode 0600 (0640 if owned by root)")
      ->group(kTls);
  app.add_option("--tls-ca", o.client_tls.ca_file, "CA of the client certificates (with --tls-client-verify)")
      ->group(kTls);
  std::string client_verify = "none";
  app.add_option("--tls-client-verify", client_verify,
                 "client certificates: none, verify-ca (required, signed by --tls-ca), verify-full (and CN = user)")
      ->check(CLI::IsMember({"none", "verify-ca", "verify-full"}))
      ->capture_default_str()
      ->group(kTls);
  app.add_option("--tls-min-version", o.client_tls.min_version, "oldest TLS version accepted")
      ->check(CLI::IsMember({"TLSv1.2", "TLSv1.3"}))
      ->capture_default_str()
      ->group(kTls);
  app.add_option("--tls-ciphers", o.client_tls.ciphers, "TLS 1.2 cipher list (OpenSSL syntax)")->group(kTls);
  app.add_option("--tls-keylog", o.tls_keylog,
                 "append both legs' TLS secrets to FILE (NSS key log format, for Wireshark); for debugging only")
      ->group(kTls);

  // TLS toward the server.
  const char* kUpstreamTls = "TLS toward the server (libpq's sslmode and files)";
  std::string sslmode = "disable";
  app.add_option("--upstream-sslmode", sslmode, "disable, prefer, require, verify-ca or verify-full")
      ->check(CLI::IsMember({"disable", "prefer", "require", "verify-ca", "verify-full"}))
      ->capture_default_str()
      ->group(kUpstreamTls);
  app.add_option("--upstream-sslrootcert", o.server_tls.root_cert,
                 "CA file the server's certificate is checked against, or 'system'")
      ->group(kUpstreamTls);
  app.add_option("--upstream-sslcert", o.server_tls.cert_file,
                 "client certificate pgproxy presents to the server (pg_hba `cert`)")
      ->group(kUpstreamTls);
  app.add_option("--upstream-sslkey", o.server_tls.key_file, "its private key")->group(kUpstreamTls);

  bool no_io_uring = false;
  app.add_flag("--no-io-uring", no_io_uring, "send each write with send() instead of one io_uring call per poll round");
  std::string poller = "epoll";
  app.add_option(
         "--poller", poller,
         "how the loop waits: epoll (the kernel keeps the interest list) or poll() over every socket each round")
      ->check(CLI::IsMember({"epoll", "poll"}));
  if (int code = pgproxy::parse_options(app, argc, argv); code >= 0) return code;
  o.io_uring = !no_io_uring;
  o.epoll = poller == "epoll";
  o.client_tls.verify = client_verify == "verify-full" ? pgproxy::ClientVerify::kVerifyFull
                        : client_verify == "verify-ca" ? pgproxy::ClientVerify::kVerifyCa
                                                       : pgproxy::ClientVerify::kNone;
  using pgproxy::UpstreamSslMode;
  o.server_tls.mode = sslmode == "prefer"        ? UpstreamSslMode::kPrefer
                      : sslmode == "require"     ? UpstreamSslMode::kRequire
                      : sslmode == "verify-ca"   ? UpstreamSslMode::kVerifyCa
                      : sslmode == "verify-full" ? UpstreamSslMode::kVerifyFull
                                                 : UpstreamSslMode::kDisable;
  if (check_config) return pgproxy::report_config_check(pgproxy::check_config(o));
  if (!o.sql_log.empty() && o.sql_log == o.capture) {
    fmt::print(stderr, "pgproxy: --sql-log and --capture cannot both be {}\n", o.sql_log == "-" ? "stdout" : o.sql_log);
    return 2;
  }
  return pgproxy::run_proxy(o);
}

}  // namespace

int main(int argc, char** argv) { return pgwire::run_main("pgproxy", 1, run, argc, argv); }
