#include "options.hpp"

#include <cstdlib>

namespace pgreplay {

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
  if (o.user.empty()) o.user = env("PGUSER").value_or("");
  if (o.dbname.empty()) o.dbname = env("PGDATABASE").value_or("");
}

}  // namespace pgreplay
