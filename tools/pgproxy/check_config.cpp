#include "check_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "log_filter.hpp"
#include "pgwire/net.hpp"
#include "pgwire/system.hpp"
#include "tls.hpp"

namespace pgproxy {

namespace {

class Checker {
 public:
  explicit Checker(const ProxyOptions& opts) : opts_(opts) {}

  ConfigCheck run() {
    check_addresses();
    check_output_files();
    check_log_selection();
    check_client_tls();
    check_server_tls();
    if (result_.ok()) result_.summary = summary();
    return std::move(result_);
  }

 private:
  void problem(std::string option, std::string text) {
    result_.problems.push_back({std::move(option), std::move(text)});
  }
  // An error of the TLS loaders or of LogFilter, which name the option they are about when they know it.
  void problem_from(const std::string& fallback_option, const std::string& error) {
    if (error.starts_with("--")) {
      problem(error.substr(0, error.find_first_of(" :")), error);
    } else {
      problem(fallback_option, fmt::format("{}: {}", fallback_option, error));
    }
  }

  // Parsed and resolved as pgproxy does when it starts (getaddrinfo; nothing bound).
  std::vector<pgwire::SocketAddress> resolve(const char* option, const std::string& text, const char* default_port,
                                             bool passive, std::optional<pgwire::HostPort>* parsed = nullptr) {
    std::string error;
    auto hp = pgwire::parse_host_port(text, default_port, error);
    if (!hp) {
      problem(option, fmt::format("{} {}", option, error));
      return {};
    }
    if (parsed != nullptr) *parsed = hp;
    auto addrs = pgwire::resolve(*hp, passive, error);
    if (addrs.empty()) problem(option, fmt::format("{} {}", option, error));
    return addrs;
  }

  void check_addresses() {
    listen_ = resolve("--listen", opts_.listen, "6432", true, &listen_hp_);
    // A Unix socket is created in its directory when pgproxy starts.
    if (listen_hp_ && listen_hp_->is_unix()) {
      if (std::string p = directory_problem(listen_hp_->host); !p.empty()) {
        problem("--listen", fmt::format("--listen {}: {}", opts_.listen, p));
      }
    }
    upstream_ = resolve("--upstream", opts_.upstream, "5432", false, &upstream_hp_);
    if (!opts_.metrics_listen.empty()) {
      std::string error;
      auto hp = pgwire::parse_host_port(opts_.metrics_listen, "9187", error);
      if (hp && hp->is_unix()) {
        problem("--metrics-listen",
                fmt::format("--metrics-listen {}: a TCP address is needed (HOST:PORT)", opts_.metrics_listen));
      } else {
        metrics_ = resolve("--metrics-listen", opts_.metrics_listen, "9187", true);
      }
    }
  }

  // Whether pgproxy could create files in `dir`.
  static std::string directory_problem(const std::string& dir) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return fmt::format("directory {}: {}", dir, pgwire::errno_text(errno));
    if (!S_ISDIR(st.st_mode)) return fmt::format("{} is not a directory", dir);
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
      return fmt::format("directory {} is not writable: {}", dir, pgwire::errno_text(errno));
    }
    return {};
  }

  // Whether pgproxy could open `path` for writing, creating it when missing: checked, not done.
  static std::string writable_problem(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return "is a directory";
      if (access(path.c_str(), W_OK) != 0) return fmt::format("not writable: {}", pgwire::errno_text(errno));
      return {};
    }
    if (errno != ENOENT) return pgwire::errno_text(errno);
    std::string dir = std::filesystem::path(path).parent_path().string();
    return directory_problem(dir.empty() ? "." : dir);
  }

  // A file pgproxy reads (certificates, keys, CAs): there and readable. False after a problem.
  bool readable(const char* option, const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || access(path.c_str(), R_OK) != 0) {
      problem(option, fmt::format("{} {}: {}", option, path, pgwire::errno_text(errno)));
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      problem(option, fmt::format("{} {}: not a regular file", option, path));
      return false;
    }
    return true;
  }

  void check_output_file(const char* option, const std::string& path) {
    if (path.empty() || path == "-") return;
    if (std::string p = writable_problem(path); !p.empty()) problem(option, fmt::format("{} {}: {}", option, path, p));
  }

  void check_output_files() {
    if (opts_.log_format != "text" && opts_.log_format != "json" && opts_.log_format != "csvlog") {
      problem("--log-format", "--log-format must be text, json or csvlog");
    }
    if (!opts_.sql_log.empty() && opts_.sql_log == opts_.capture) {
      problem("--sql-log", fmt::format("--sql-log and --capture cannot both be {}",
                                       opts_.sql_log == "-" ? "stdout" : opts_.sql_log));
    }
    check_output_file("--sql-log", opts_.sql_log);
    check_output_file("--capture", opts_.capture);
    if (!opts_.tls_keylog.empty()) check_output_file("--tls-keylog", opts_.tls_keylog);
  }

  void check_log_selection() {
    LogFilter filter;
    std::string error;
    if (!filter.add_patterns(LogFilter::Field::kUser, opts_.log_users, error)) problem("--log-user", error);
    if (!filter.add_patterns(LogFilter::Field::kDatabase, opts_.log_databases, error)) {
      problem("--log-database", error);
    }
    if (!filter.add_patterns(LogFilter::Field::kApplication, opts_.log_applications, error)) {
      problem("--log-application", error);
    }
    if (opts_.capture_filter_same && opts_.log_users.empty() && opts_.log_databases.empty() &&
        opts_.log_applications.empty()) {
      problem("--capture-filter-same", "--capture-filter-same needs --log-user, --log-database or --log-application");
    }
  }

  // The rules of pgproxy's setup, then the files loaded as it loads them.
  void check_client_tls() {
    const ClientTlsOptions& co = opts_.client_tls;
    if (co.enabled() != !co.key_file.empty()) {
      problem(co.enabled() ? "--tls-key" : "--tls-cert", "--tls-cert and --tls-key go together");
      return;
    }
    if (!co.enabled()) {
      if (!co.ca_file.empty() || co.verify != ClientVerify::kNone) {
        problem(co.ca_file.empty() ? "--tls-client-verify" : "--tls-ca",
                "--tls-ca and --tls-client-verify need --tls-cert and --tls-key");
      }
      return;
    }
    bool files = readable("--tls-cert", co.cert_file);
    files = readable("--tls-key", co.key_file) && key_mode_ok("--tls-key", co.key_file) && files;
    if (!co.ca_file.empty()) files = readable("--tls-ca", co.ca_file) && files;
    if (!files) return;
    std::string error;
    if (!TlsContext::for_clients(co, error)) problem_from("--tls-cert", error);
  }

  bool key_mode_ok(const char* option, const std::string& key) {
    std::string p = key_file_problem(key);
    if (!p.empty()) problem(option, fmt::format("{}: {}", option, p));
    return p.empty();
  }

  void check_server_tls() {
    ServerTlsOptions so = opts_.server_tls;
    if (so.mode == UpstreamSslMode::kDisable || !upstream_hp_) return;
    if (upstream_hp_->is_unix()) {
      // As libpq: a Unix socket is never encrypted, so prefer means plaintext there.
      if (so.mode != UpstreamSslMode::kPrefer) {
        problem("--upstream-sslmode",
                fmt::format("--upstream-sslmode {}: there is no TLS over a Unix socket; give --upstream a TCP address",
                            upstream_sslmode_name(so.mode)));
      }
      return;
    }
    bool files = true;
    if (!so.root_cert.empty() && so.root_cert != "system") files = readable("--upstream-sslrootcert", so.root_cert);
    if (!so.cert_file.empty()) files = readable("--upstream-sslcert", so.cert_file) && files;
    if (!so.key_file.empty()) {
      files = readable("--upstream-sslkey", so.key_file) && key_mode_ok("--upstream-sslkey", so.key_file) && files;
    }
    if (!files) return;
    so.host = upstream_hp_->host;
    std::string error;
    if (!TlsContext::for_server(so, error)) problem_from("--upstream-sslmode", error);
  }

  static std::string addresses(const std::vector<pgwire::SocketAddress>& addrs) {
    std::string out;
    for (const auto& a : addrs) out += (out.empty() ? "" : ", ") + pgwire::format_address(a);
    return out;
  }
  static std::string output(const std::string& path) { return path.empty() ? "off" : path == "-" ? "stdout" : path; }

  std::string summary() const {
    const bool selected = !opts_.log_users.empty() || !opts_.log_databases.empty() || !opts_.log_applications.empty() ||
                          opts_.log_min_duration_ms > 0;
    std::string s = fmt::format("listen {}; upstream {}; SQL log {}", addresses(listen_),
                                pgwire::format_address(upstream_.front()), output(opts_.sql_log));
    if (!opts_.sql_log.empty()) {
      s += fmt::format(" ({}{})", opts_.log_format, selected ? ", selected statements" : "");
    }
    s += fmt::format("; capture {}{}", output(opts_.capture),
                     !opts_.capture.empty() && opts_.capture_backend ? " (with backend frames)" : "");
    s += fmt::format("; TLS to clients {}", opts_.client_tls.enabled() ? opts_.client_tls.cert_file : "off");
    s += fmt::format("; upstream sslmode {}", upstream_sslmode_name(opts_.server_tls.mode));
    s += fmt::format("; metrics {}", metrics_.empty() ? "off" : addresses(metrics_));
    if (opts_.rotate_size != 0 || opts_.rotate_interval_s != 0) {
      s += "; rotation";
      if (opts_.rotate_size != 0) s += fmt::format(" every {} bytes", opts_.rotate_size);
      if (opts_.rotate_interval_s != 0) s += fmt::format(" every {} s", opts_.rotate_interval_s);
      s += opts_.rotate_keep != 0 ? fmt::format(", keep {}", opts_.rotate_keep) : ", keep all";
      if (opts_.rotate_compress) s += ", zstd";
    }
    return s;
  }

  const ProxyOptions& opts_;
  ConfigCheck result_;
  std::optional<pgwire::HostPort> listen_hp_, upstream_hp_;
  std::vector<pgwire::SocketAddress> listen_, upstream_, metrics_;
};

}  // namespace

ConfigCheck check_config(const ProxyOptions& opts) { return Checker(opts).run(); }

int report_config_check(const ConfigCheck& check) {
  if (check.ok()) {
    fmt::print("pgproxy: configuration OK\n{}\n", check.summary);
    return 0;
  }
  for (const ConfigProblem& p : check.problems) fmt::print(stderr, "pgproxy: {}\n", p.text);
  fmt::print(stderr, "pgproxy: configuration has {} problem{}\n", check.problems.size(),
             check.problems.size() == 1 ? "" : "s");
  return 2;
}

int parse_options(CLI::App& app, int argc, char** argv) {
  const bool checking =
      std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string_view(a) == "--check-config"; });
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ConfigError& e) {
    // CLI11 2.1's words for a key that is no option (app.allow_config_extras(false)).
    constexpr std::string_view kUnknownKey = "INI was not able to parse ";
    const std::string what = e.what();
    if (!what.starts_with(kUnknownKey)) {
      int code = app.exit(e);
      return checking ? 2 : code;
    }
    const CLI::Option* config = app.get_config_ptr();
    fmt::print(stderr, "pgproxy: --config {}: unknown option '{}' (the keys are the long options of --help)\n",
               config != nullptr && config->count() > 0 ? config->as<std::string>() : "",
               what.substr(kUnknownKey.size()));
    return checking ? 2 : e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return checking && code != 0 ? 2 : code;
  }
}

}  // namespace pgproxy
