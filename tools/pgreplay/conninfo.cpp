#include "conninfo.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace pgreplay {

namespace {

// Debian's libpq is built with this socket directory (DEFAULT_PGSOCKET_DIR).
constexpr const char* kDefaultSocketDir = "/var/run/postgresql";

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::string home_directory() {
  if (auto h = env("HOME")) return *h;
  if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir) return pw->pw_dir;
  return {};
}

// libpq's pwdfMatchesString: matches one field; returns what follows it.
std::optional<std::string_view> match_field(std::string_view line, std::string_view token) {
  if (line.size() >= 2 && line[0] == '*' && line[1] == ':') return line.substr(2);
  size_t i = 0, t = 0;
  bool escaped = false;
  while (i < line.size()) {
    if (line[i] == '\\' && !escaped) {
      ++i;
      escaped = true;
      if (i >= line.size()) return std::nullopt;
    }
    if (line[i] == ':' && t == token.size() && !escaped) return line.substr(i + 1);
    escaped = false;
    if (t == token.size() || line[i] != token[t]) return std::nullopt;
    ++i;
    ++t;
  }
  return std::nullopt;
}

}  // namespace

std::string Target::describe() const {
  if (unix_socket) return fmt::format("{}/.s.PGSQL.{}", host, port);
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<Target> resolve_target(const std::string& host_opt, const std::string& port_opt, std::string* error) {
  Target t;
  t.host = !host_opt.empty() ? host_opt : env("PGHOST").value_or("");
  t.port = !port_opt.empty() ? port_opt : env("PGPORT").value_or("5432");
  if (t.host.empty()) {
    struct stat st {};
    t.host = ::stat(kDefaultSocketDir, &st) == 0 && S_ISDIR(st.st_mode) ? kDefaultSocketDir : "localhost";
  }
  if (t.host.find(',') != std::string::npos) {
    *error = "several hosts (" + t.host + ") are not supported; give one";
    return std::nullopt;
  }
  char* end = nullptr;
  long port = std::strtol(t.port.c_str(), &end, 10);
  if (t.port.empty() || *end != '\0' || port < 1 || port > 65535) {
    *error = "invalid port \"" + t.port + "\"";
    return std::nullopt;
  }
  t.unix_socket = t.host[0] == '/';
  // The tools' one resolver: a directory is its socket DIR/.s.PGSQL.PORT, as in libpq.
  std::string why;
  std::vector<pgwire::SocketAddress> addresses = pgwire::resolve(pgwire::HostPort{t.host, t.port}, false, why);
  if (addresses.empty()) {
    *error = why;
    return std::nullopt;
  }
  t.address = addresses.front();
  return t;
}

std::optional<std::string> pgpass_match_line(std::string_view line, std::string_view host, std::string_view port,
                                             std::string_view database, std::string_view user) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty() || line[0] == '#') return std::nullopt;
  std::optional<std::string_view> rest = line;
  for (std::string_view field : {host, port, database, user}) {
    rest = match_field(*rest, field);
    if (!rest) return std::nullopt;
  }
  // The password runs to the end of the line or an unescaped ':'.
  std::string password;
  for (size_t i = 0; i < rest->size() && (*rest)[i] != ':'; ++i) {
    if ((*rest)[i] == '\\' && i + 1 < rest->size()) ++i;
    password += (*rest)[i];
  }
  return password;
}

Credentials::Credentials(const Target& target, std::string password_file)
    : host_(target.host), port_(target.port), file_(std::move(password_file)) {
  // libpq: 'localhost' matches a connection through the default socket directory.
  if (target.unix_socket && target.host == kDefaultSocketDir) host_ = "localhost";
  env_password_ = env("PGPASSWORD");
  if (file_.empty()) {
    if (auto f = env("PGPASSFILE")) {
      file_ = *f;
    } else if (std::string home = home_directory(); !home.empty()) {
      file_ = home + "/.pgpass";
    }
  }
}

std::optional<std::string> Credentials::password(const std::string& database, const std::string& user) {
  if (env_password_) return env_password_;
  auto key = std::make_pair(database, user);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  auto pw = from_file(database, user);
  cache_.emplace(key, pw);
  return pw;
}

std::optional<std::string> Credentials::from_file(const std::string& database, const std::string& user) {
  if (file_.empty() || database.empty() || user.empty()) return std::nullopt;
  if (!file_checked_) {
    file_checked_ = true;
    struct stat st {};
    if (::stat(file_.c_str(), &st) != 0) return std::nullopt;  // no file: silently none, as libpq
    if (!S_ISREG(st.st_mode)) {
      warnings_.push_back(fmt::format("password file \"{}\" is not a plain file; ignored", file_));
      return std::nullopt;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
      warnings_.push_back(fmt::format(
          "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; ignored", file_));
      return std::nullopt;
    }
    std::ifstream in(file_);
    if (!in) {
      warnings_.push_back(fmt::format("cannot read password file \"{}\"; ignored", file_));
      return std::nullopt;
    }
    for (std::string line; std::getline(in, line);) lines_.push_back(line);
    file_usable_ = true;
  }
  if (!file_usable_) return std::nullopt;
  for (const std::string& line : lines_) {
    if (auto pw = pgpass_match_line(line, host_, port_, database, user)) return pw;
  }
  return std::nullopt;
}

std::vector<std::string> Credentials::take_warnings() {
  std::vector<std::string> out;
  out.swap(warnings_);
  return out;
}

bool parse_mapping(const std::string& text, NameMap& into) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) return false;
  into[text.substr(0, eq)] = text.substr(eq + 1);
  return true;
}

}  // namespace pgreplay
