// Where pgreplay connects and with which credentials, in libpq's manner:
// command line first, then PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD, then
// the password file (--password-file, else PGPASSFILE, else ~/.pgpass) with
// libpq's rules.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgwire/net.hpp"

namespace pgreplay {

// Resolved once at start; every session connects to the same address.
struct Target {
  std::string host;  // as given ("127.0.0.1", "db.example", "/var/run/postgresql")
  std::string port;  // as a string, as libpq and .pgpass compare it
  bool unix_socket = false;
  pgwire::SocketAddress address;  // the first the host resolved to
  std::string describe() const;   // "127.0.0.1:5432" or "/var/run/postgresql/.s.PGSQL.5432"
};

// Host and port from the options, else PGHOST/PGPORT, else libpq's defaults
// (the Unix socket directory /var/run/postgresql if it exists, else
// localhost; port 5432). Returns an error text on failure.
std::optional<Target> resolve_target(const std::string& host_opt, const std::string& port_opt, std::string* error);

// One line of a password file against (host, port, database, user), by
// libpq's rules: fields separated by ':', '*' matches anything, '\' escapes
// ':' and '\'. Returns the (unescaped) password of a matching line.
std::optional<std::string> pgpass_match_line(std::string_view line, std::string_view host, std::string_view port,
                                             std::string_view database, std::string_view user);

class Credentials {
 public:
  // password_file: --password-file (empty: PGPASSFILE, else ~/.pgpass).
  Credentials(const Target& target, std::string password_file);

  // The password for a session: PGPASSWORD if set, else the first matching
  // line of the password file, else none. Cached per (database, user).
  std::optional<std::string> password(const std::string& database, const std::string& user);
  // Warnings met (an insecure or unreadable password file), each once.
  std::vector<std::string> take_warnings();
  const std::string& password_file() const { return file_; }

 private:
  std::optional<std::string> from_file(const std::string& database, const std::string& user);

  std::string host_;  // as compared against .pgpass: "localhost" for the default socket directory
  std::string port_;
  std::string file_;
  std::optional<std::string> env_password_;
  bool file_checked_ = false;
  bool file_usable_ = false;
  std::vector<std::string> lines_;  // the file, read once
  std::map<std::pair<std::string, std::string>, std::optional<std::string>> cache_;
  std::vector<std::string> warnings_;
};

// "OLD=NEW" pairs of --map-user / --map-database.
using NameMap = std::map<std::string, std::string>;
bool parse_mapping(const std::string& text, NameMap& into);

}  // namespace pgreplay
