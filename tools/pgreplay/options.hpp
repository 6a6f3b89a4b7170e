// pgreplay's settings, as parsed by main.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conninfo.hpp"
#include "pgwire/pcap_reader.hpp"
#include "pgwire/version.hpp"

namespace pgreplay {

inline constexpr const char* kVersion = pgwire::kVersion;

// Exit codes (also in --help). When several apply, the first of 2, 1, 4, 3 wins.
inline constexpr int kExitOk = 0;
inline constexpr int kExitSessionsFailed = 1;  // a session could not log in or lost its connection
inline constexpr int kExitUsage = 2;           // bad options, unreadable capture, nothing to compare
inline constexpr int kExitDivergence = 3;      // --compare found differences
inline constexpr int kExitDamagedCapture = 4;  // a capture is damaged: replayed up to the damage

struct ReplayOptions {
  std::vector<std::string> captures;
  // Packet captures (pcap, pcapng): the server ports whose connections are
  // PostgreSQL (--pcap-port; -p is the port to replay to). Empty: 5432.
  std::vector<uint16_t> pcap_ports;

  // Connection. The environment gives defaults only for what the capture does
  // not say: host, port, password, password file, connect timeout. Whom each
  // session logs in as, and where, is the capture's unless the command line
  // says otherwise (see resolve_login).
  std::string host;      // -h, else PGHOST (empty here: conninfo.hpp looks it up)
  std::string port;      // -p, else PGPORT (likewise)
  std::string user;      // -U: replaces every captured user (never from PGUSER)
  std::string dbname;    // -d: replaces every captured database (never from PGDATABASE)
  NameMap map_user;      // --map-user: captured user -> user
  NameMap map_database;  // --map-database: captured database -> database
  std::string password_file;
  double connect_timeout_s = 10;  // --connect-timeout, else PGCONNECT_TIMEOUT
  // PGUSER / PGDATABASE as set when pgreplay started: not applied, only
  // compared with the logins used, to warn (EnvironmentLoginNotice).
  std::string env_user;
  std::string env_dbname;

  // Timing.
  double speed = 1.0;
  bool speed_max = false;
  double read_ahead_s = 2.0;            // how far ahead of the schedule the capture is read
  size_t session_buffer = 4u << 20;     // soft per-session budget of read-ahead bytes
  size_t max_memory = size_t{1} << 30;  // hard budget of read-ahead bytes, all sessions together
  double stall_timeout_s = 10;          // see Replayer: waiting on a server that owes nothing

  // Output.
  bool compare = false;
  std::vector<std::string> ignore;  // POSIX extended regular expressions of statements not compared
  size_t max_divergences = 20;      // listed in full
  size_t top = 10;                  // normalized statements in the latency table
  std::string report_file;          // JSON
  std::string report_html_file;     // --report-html: one self-contained page
  bool dry_run = false;
  int progress = -1;  // -1: when stderr is a terminal
};

// How pgwire::MergedReader reads the packet captures among the inputs.
inline pgwire::PcapOptions pcap_options(const ReplayOptions& o) {
  pgwire::PcapOptions p;
  if (!o.pcap_ports.empty()) p.ports = o.pcap_ports;
  return p;
}

// Looks an environment variable up: its value, or nothing when unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
// The process's own environment (getenv).
std::optional<std::string> process_env(const char* name);

// Defaults from the environment, applied before the command line is parsed
// (so that options win): PGCONNECT_TIMEOUT. PGUSER and PGDATABASE are only
// recorded (env_user, env_dbname): a shell, container image or CI job sets
// them for its own psql, and they say nothing about the captured sessions.
void apply_environment(ReplayOptions& o, const EnvLookup& env);

// The user and database a captured session logs in as: -U / -d if given,
// else the captured ones, through --map-user / --map-database. A captured
// startup without a database meant the user's name (as the server reads it).
inline std::pair<std::string, std::string> resolve_login(const ReplayOptions& o, const std::string& captured_user,
                                                         std::string captured_db) {
  if (captured_db.empty()) captured_db = captured_user;
  std::string user = o.user;
  if (user.empty()) {
    auto it = o.map_user.find(captured_user);
    user = it != o.map_user.end() ? it->second : captured_user;
  }
  std::string db = o.dbname;
  if (db.empty()) {
    auto it = o.map_database.find(captured_db);
    db = it != o.map_database.end() ? it->second : captured_db;
  }
  return {user, db};
}

// Says, once per run, that PGUSER / PGDATABASE were set and not applied,
// when a session logs in as another user or into another database than they
// name (and -U / -d did not say so explicitly), and how to apply them.
class EnvironmentLoginNotice {
 public:
  explicit EnvironmentLoginNotice(const ReplayOptions& o) : opts_(o) {}
  // The warnings one session's login brings (each given once): captured_user
  // as in the capture, user and database as resolve_login() gave them.
  std::vector<std::string> check(const std::string& captured_user, const std::string& captured_db,
                                 const std::string& user, const std::string& db);

 private:
  const ReplayOptions& opts_;
  bool user_said_ = false;
  bool db_said_ = false;
};

}  // namespace pgreplay
