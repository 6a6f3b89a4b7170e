// pgproxy's event loop: one thread, poll() over non-blocking sockets, a
// writer thread for the disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pgwire/version.hpp"
#include "tls.hpp"

namespace pgproxy {

inline constexpr const char* kVersion = pgwire::kVersion;

struct ProxyOptions {
  std::string listen = "127.0.0.1:6432";
  bool reuse_port = false;  // SO_REUSEPORT on the TCP listeners: several pgproxy processes on one address
  std::string upstream = "127.0.0.1:5432";
  std::string sql_log = "-";  // "" = none, "-" = stdout
  std::string capture;        // "" = none, "-" = stdout
  std::string log_format = "text";
  bool capture_backend = false;
  bool capture_secrets = false;
  uint64_t max_connections = 1000;
  double stats_interval = 60;   // seconds, 0 = off
  bool io_uring = true;         // batch each poll round's writes through io_uring when the kernel allows
  bool epoll = true;            // wait with epoll (false: poll() over every descriptor each round)
  double startup_timeout = 60;  // seconds for a client's startup (TLS handshake included)
  ClientTlsOptions client_tls;  // --tls-*: TLS toward clients
  ServerTlsOptions server_tls;  // --upstream-ssl*: TLS toward the server (host filled in from --upstream)
  std::string tls_keylog;       // NSS key log file of both legs' secrets; "" = none
  std::string metrics_listen;   // HOST:PORT of the Prometheus endpoint; "" = none
  // Which statements the SQL log gets (the capture keeps everything).
  std::vector<std::string> log_users, log_databases, log_applications;  // POSIX EREs
  double log_min_duration_ms = 0;                                       // 0 = every statement
  std::string log_params = "full";                                      // full, redacted, none
  uint32_t log_max_query_bytes = 1 << 20;                               // longer SQL is cut (and marked)
  bool capture_filter_same = false;  // the capture keeps only the sessions the --log-* patterns select
  // Rotation of both files (each on its own): by size, at UTC-aligned
  // intervals; closed files renamed after their start, maybe compressed.
  uint64_t rotate_size = 0;       // bytes, 0 = off
  int64_t rotate_interval_s = 0;  // 0 = off
  uint32_t rotate_keep = 0;       // closed files kept per file, 0 = all
  bool rotate_compress = false;   // zstd
};

// Serves until SIGINT / SIGTERM; returns the process exit code.
int run_proxy(const ProxyOptions& opts);

}  // namespace pgproxy
