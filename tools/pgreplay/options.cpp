#include "options.hpp"

#include <cstdlib>

#include <fmt/format.h>

#include "pgwire/text.hpp"

namespace pgreplay {

namespace {

// Names from the capture or the environment, printable on one line.
std::string shown(std::string_view name) {
  std::string out;
  pgwire::append_escaped(out, name);
  return out;
}

}  // namespace

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

void apply_environment(ReplayOptions& o, const EnvLookup& env) {
  // libpq ignores a PGCONNECT_TIMEOUT it cannot parse; so do we.
  if (std::optional<std::string> t = env("PGCONNECT_TIMEOUT")) {
    char* end = nullptr;
    const double s = std::strtod(t->c_str(), &end);
    if (*end == '\0' && s > 0) o.connect_timeout_s = s;
  }
  o.env_user = env("PGUSER").value_or("");
  o.env_dbname = env("PGDATABASE").value_or("");
}

std::vector<std::string> EnvironmentLoginNotice::check(const std::string& captured_user, const std::string& captured_db,
                                                       const std::string& user, const std::string& db) {
  std::vector<std::string> out;
  if (!user_said_ && opts_.user.empty() && !opts_.env_user.empty() && opts_.env_user != user) {
    user_said_ = true;
    out.push_back(fmt::format(
        "PGUSER is set ({0}) but was not applied: sessions log in as their captured user{1} (the first: {2}); "
        "-U {0} logs every session in as {0}, --map-user {3}={0} only {3}'s",
        shown(opts_.env_user), opts_.map_user.empty() ? "" : " or its --map-user replacement", shown(user),
        shown(captured_user)));
  }
  const std::string& captured = captured_db.empty() ? captured_user : captured_db;
  if (!db_said_ && opts_.dbname.empty() && !opts_.env_dbname.empty() && opts_.env_dbname != db) {
    db_said_ = true;
    out.push_back(fmt::format(
        "PGDATABASE is set ({0}) but was not applied: sessions connect to their captured database{1} (the first: "
        "{2}); -d {0} connects every session to {0}, --map-database {3}={0} only {3}'s",
        shown(opts_.env_dbname), opts_.map_database.empty() ? "" : " or its --map-database replacement", shown(db),
        shown(captured)));
  }
  return out;
}

}  // namespace pgreplay
