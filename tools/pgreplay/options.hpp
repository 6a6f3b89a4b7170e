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

namespace pgreplay {

inline constexpr const char* kVersion = "0.1.0";

// Exit codes (also in --help). When several apply, the first of 2, 1, 4, 3 wins.
inline constexpr int kExitOk = 0;
inline constexpr int kExitSessionsFailed = 1;  // a session could not log in or lost its connection
inline constexpr int kExitUsage = 2;           // bad options, unreadable capture, nothing to compare
inline constexpr int kExitDivergence = 3;      // --compare found differences
inline constexpr int kExitDamagedCapture = 4;  // a capture is damaged: replayed up to the damage

struct ReplayOptions {
  std::vector<std::string> captures;

  // Connection (empty: from the environment, then the capture).
  std::string host;
  std::string port;
  std::string user;      // -U, else PGUSER: overrides every captured user
  std::string dbname;    // -d, else PGDATABASE: overrides every captured database
  NameMap map_user;      // captured user -> user
  NameMap map_database;  // captured database -> database
  std::string password_file;
  double connect_timeout_s = 10;

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
  bool dry_run = false;
  int progress = -1;  // -1: when stderr is a terminal
};

// Looks an environment variable up: its value, or nothing when unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
// The process's own environment (getenv).
std::optional<std::string> process_env(const char* name);

// Defaults from the environment, applied before the command line is parsed
// (so that options win): PGCONNECT_TIMEOUT, PGUSER, PGDATABASE.
void apply_environment(ReplayOptions& o, const EnvLookup& env);

// The user and database a captured session logs in as: -U/-d (or PGUSER/
// PGDATABASE) override; otherwise the captured ones through --map-user /
// --map-database. A captured startup without a database meant the user's name.
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

}  // namespace pgreplay
