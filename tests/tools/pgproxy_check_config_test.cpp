// pgproxy --check-config and --config: the built pgproxy judging configuration
// files and options without serving (no server needed: nothing is connected
// to). A good configuration passes with a summary; every problem is named by
// its option and exits 2; every option of --help is a key of --config; the
// example configuration shipped in packaging/ passes.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "help_options.hpp"
#include "proxy_process.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"
#include "test_pki.hpp"

namespace pgproxy {
namespace {

namespace fs = std::filesystem;
namespace pt = pgwire::test;
using namespace std::chrono_literals;

const std::string kExampleConfig = std::string(PGWIRE_SOURCE_DIR) + "/packaging/pgproxy.conf.example";

// A private directory, removed with everything in it.
class TempDir : public pt::TempDir {
 public:
  TempDir() : pt::TempDir("pgproxy-check-config") {}
};

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pt::CommandResult pgproxy(std::vector<std::string> args) {
  args.insert(args.begin(), pt::tool_path("pgproxy"));
  return pt::run_command(args, {}, 30s);
}

pt::CommandResult check(std::vector<std::string> args) {
  args.insert(args.begin(), "--check-config");
  return pgproxy(std::move(args));
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// The lines pgproxy printed on stderr.
std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

const pt::TestPki& pki() { return pt::TestPki::shared(); }

// A TOML value for every option of --help that is valid, with the test PKI's files. Options not
// listed get one from the type --help gives them; a TEXT option without a default must be listed.
std::map<std::string, std::string> config_values(const TempDir& dir) {
  return {
      {"listen", quoted("127.0.0.1:6543")},
      {"upstream", quoted("127.0.0.1:5433")},
      {"sql-log", quoted(dir.file("sql.log"))},
      {"capture", quoted(dir.file("traffic.pgwcap"))},
      {"log-format", quoted("json")},
      {"capture-backend", "true"},
      {"capture-secrets", "true"},
      {"max-connections", "77"},
      {"stats-interval", "5"},
      {"log-user", R"(["^alice$", "^bob$"])"},
      {"log-database", R"(["^app"])"},
      {"log-application", R"(["^psql"])"},
      {"log-min-duration-ms", "200"},
      {"log-params", quoted("redacted")},
      {"log-max-query-bytes", "4096"},
      {"metrics-listen", quoted("127.0.0.1:9999")},
      {"startup-timeout", "30"},
      {"no-io-uring", "true"},
      {"poller", quoted("poll")},
      {"tls-cert", quoted(pki().proxy().cert)},
      {"tls-key", quoted(pki().proxy().key)},
      {"tls-ca", quoted(pki().ca_cert())},
      {"tls-client-verify", quoted("verify-ca")},
      {"tls-min-version", quoted("TLSv1.3")},
      {"tls-ciphers", quoted("HIGH:!aNULL")},
      {"tls-keylog", quoted(dir.file("keys.log"))},
      {"upstream-sslmode", quoted("verify-full")},
      {"upstream-sslrootcert", quoted(pki().ca_cert())},
      {"upstream-sslcert", quoted(pki().client().cert)},
      {"upstream-sslkey", quoted(pki().client().key)},
      {"rotate-size", quoted("100M")},
      {"rotate-interval", quoted("1h")},
      {"rotate-keep", "14"},
      {"rotate-compress", "true"},
      {"capture-filter-same", "true"},
  };
}

// From what --help says of an option: a flag is true, a choice its first member, a number or a
// text its default, an unbounded number 1. Empty when there is nothing to go by.
std::string value_from_help(const std::string& type) {
  if (type.empty()) return "true";
  std::smatch m;
  if (std::regex_search(type, m, std::regex(R"(\{([^,}]+))"))) return quoted(m[1]);
  const size_t eq = type.rfind('=');
  const std::string def = eq == std::string::npos ? "" : type.substr(eq + 1);
  if (type.starts_with("UINT") || type.starts_with("INT") || type.starts_with("FLOAT")) return def.empty() ? "1" : def;
  return def.empty() ? "" : quoted(def);
}

TEST(PgproxyCheckConfig, DefaultsPass) {
  pt::CommandResult r = check({"--sql-log", ""});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out,
            "pgproxy: configuration OK\n"
            "listen 127.0.0.1:6432; upstream 127.0.0.1:5432; SQL log off; capture off; TLS to clients off; upstream "
            "sslmode disable; metrics off\n");
  EXPECT_EQ(r.err, "");
}

// Every option of --help as a key of one file: all accepted, and used (the summary shows them).
// Nothing is created: not the SQL log, the capture or the key log.
TEST(PgproxyCheckConfig, EveryOptionOfHelpIsAConfigKey) {
  pt::CommandResult help = pgproxy({"--help"});
  ASSERT_TRUE(help.ok()) << help.describe();
  const std::set<std::string> not_keys = {"--help", "--version", "--config", "--check-config"};
  TempDir dir;
  const auto values = config_values(dir);
  std::string config;
  std::vector<std::string> keys, no_value;
  for (const pt::HelpOption& o : pt::help_long_options(help.out)) {
    if (not_keys.count(o.name)) continue;
    const std::string key = o.name.substr(2);
    auto it = values.find(key);
    const std::string value = it != values.end() ? it->second : value_from_help(o.type);
    if (value.empty()) {
      no_value.push_back(o.name);
      continue;
    }
    keys.push_back(key);
    config += key + " = " + value + "\n";
  }
  EXPECT_TRUE(no_value.empty()) << "give these options a valid value in config_values(): "
                                << testing::PrintToString(no_value);
  ASSERT_GE(keys.size(), values.size()) << "--help lists fewer options than config_values() has:\n" << help.out;
  const std::string file = write_file(dir.file("all.conf"), config);

  pt::CommandResult r = check({"--config", file});
  ASSERT_EQ(r.exit_code, 0) << r.describe() << "\n" << config;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> out = lines(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  EXPECT_EQ(out[0], "pgproxy: configuration OK");
  for (const std::string& part : {std::string("listen 127.0.0.1:6543;"), std::string("upstream 127.0.0.1:5433;"),
                                  "SQL log " + dir.file("sql.log") + " (json, selected statements);",
                                  "capture " + dir.file("traffic.pgwcap") + " (with backend frames);",
                                  "TLS to clients " + pki().proxy().cert + ";",
                                  std::string("upstream sslmode verify-full;"), std::string("metrics 127.0.0.1:9999;"),
                                  std::string("rotation every 104857600 bytes every 3600 s, keep 14, zstd")}) {
    EXPECT_NE(out[1].find(part), std::string::npos) << "'" << part << "' not in the summary: " << out[1];
  }
  EXPECT_EQ(dir.names(), std::vector<std::string>{"all.conf"}) << "--check-config created files";
}

TEST(PgproxyCheckConfig, CommandLineWinsOverTheFile) {
  TempDir dir;
  const std::string file = write_file(dir.file("c.conf"), "listen = \"127.0.0.1:6543\"\nsql-log = \"\"\n");
  pt::CommandResult r = check({"--config", file, "--listen", "127.0.0.1:7654"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("\nlisten 127.0.0.1:7654;"), std::string::npos) << r.out;
}

TEST(PgproxyCheckConfig, MisspelledKeyIsNamed) {
  TempDir dir;
  const std::string file = write_file(dir.file("typo.conf"), "listen = \"127.0.0.1:6543\"\nlog-usr = \"^alice$\"\n");
  pt::CommandResult r = check({"--config", file});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "pgproxy: --config " + file + ": unknown option 'log-usr' (the keys are the long options of --help)\n");
  // Without --check-config, pgproxy does not start on it either.
  r = pgproxy({"--config", file});
  EXPECT_FALSE(r.timed_out) << "pgproxy started: " << r.describe();
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.err.find("unknown option 'log-usr'"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.describe();
}

TEST(PgproxyCheckConfig, CheckConfigIsNoKeyOfTheFile) {
  TempDir dir;
  const std::string file = write_file(dir.file("c.conf"), "check-config = true\n");
  pt::CommandResult r = check({"--config", file});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("check-config: This option is not allowed in a configuration file"), std::string::npos)
      << r.describe();
}

TEST(PgproxyCheckConfig, BadValueInTheFileIsNamed) {
  TempDir dir;
  const std::string file = write_file(dir.file("c.conf"), "log-format = \"xml\"\n");
  pt::CommandResult r = check({"--config", file});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("--log-format: xml not in {text,json,csvlog}"), std::string::npos) << r.describe();
}

TEST(PgproxyCheckConfig, MissingConfigFileFails) {
  pt::CommandResult r = check({"--config", "/nonexistent/pgproxy.conf"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("/nonexistent/pgproxy.conf"), std::string::npos) << r.describe();
}

TEST(PgproxyCheckConfig, BadRegexIsNamed) {
  TempDir dir;
  const std::string file = write_file(dir.file("c.conf"), "sql-log = \"\"\nlog-user = [\"^ok$\", \"[unclosed\"]\n");
  pt::CommandResult r = check({"--config", file});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "");
  const std::vector<std::string> err = lines(r.err);
  ASSERT_EQ(err.size(), 2u) << r.err;
  EXPECT_TRUE(err[0].starts_with("pgproxy: --log-user '[unclosed': ")) << err[0];
  EXPECT_EQ(err[1], "pgproxy: configuration has 1 problem");
}

TEST(PgproxyCheckConfig, MissingCertificateIsNamed) {
  TempDir dir;
  const std::string missing = dir.file("missing.crt");
  pt::CommandResult r = check({"--sql-log", "", "--tls-cert", missing, "--tls-key", pki().proxy().key});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.err,
            "pgproxy: --tls-cert " + missing + ": No such file or directory\npgproxy: configuration has 1 problem\n");
}

TEST(PgproxyCheckConfig, KeyOfAnotherCertificateIsNamed) {
  pt::CommandResult r = check({"--sql-log", "", "--tls-cert", pki().proxy().cert, "--tls-key", pki().server().key});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("pgproxy: --tls-key " + pki().server().key + " does not belong to the certificate in " +
                       pki().proxy().cert),
            std::string::npos)
      << r.describe();
}

TEST(PgproxyCheckConfig, KeyReadableByOthersIsNamed) {
  TempDir dir;
  const std::string key = dir.file("open.key");
  pt::install_file(pki().client().key, key, 0644, std::nullopt);
  pt::CommandResult r = check({"--sql-log", "", "--upstream-sslmode", "require", "--upstream-sslcert",
                               pki().client().cert, "--upstream-sslkey", key});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("pgproxy: --upstream-sslkey: private key file " + key + " has group or world access"),
            std::string::npos)
      << r.describe();
}

TEST(PgproxyCheckConfig, VerifyFullWithoutRootCertIsNamed) {
  pt::CommandResult r = check({"--sql-log", "", "--upstream-sslmode", "verify-full"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("pgproxy: --upstream-sslmode verify-full needs --upstream-sslrootcert"), std::string::npos)
      << r.describe();
}

// Every problem is reported, not only the first, each naming its option.
TEST(PgproxyCheckConfig, EveryProblemIsListed) {
  TempDir dir;
  pt::CommandResult r = check({"--listen", "127.0.0.1:notaport", "--upstream", "no-such-host.invalid:5432",
                               "--metrics-listen", "/tmp:9187", "--sql-log", "/nonexistent-dir/sql.log", "--capture",
                               dir.path(), "--log-database", "(", "--tls-cert", pki().proxy().cert});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "");
  const std::vector<std::string> err = lines(r.err);
  ASSERT_EQ(err.size(), 8u) << r.err;
  EXPECT_TRUE(err[0].starts_with("pgproxy: --listen ")) << err[0];
  EXPECT_TRUE(err[1].starts_with("pgproxy: --upstream ")) << err[1];
  EXPECT_EQ(err[2], "pgproxy: --metrics-listen /tmp:9187: a TCP address is needed (HOST:PORT)");
  EXPECT_EQ(err[3],
            "pgproxy: --sql-log /nonexistent-dir/sql.log: directory /nonexistent-dir: No such file or directory");
  EXPECT_EQ(err[4], "pgproxy: --capture " + dir.path() + ": is a directory");
  EXPECT_TRUE(err[5].starts_with("pgproxy: --log-database '(': ")) << err[5];
  EXPECT_EQ(err[6], "pgproxy: --tls-cert and --tls-key go together");
  EXPECT_EQ(err[7], "pgproxy: configuration has 7 problems");
}

TEST(PgproxyCheckConfig, SameFileForLogAndCaptureIsNamed) {
  TempDir dir;
  pt::CommandResult r = check({"--sql-log", dir.file("x"), "--capture", dir.file("x")});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.err, "pgproxy: --sql-log and --capture cannot both be " + dir.file("x") +
                       "\npgproxy: configuration has 1 problem\n");
}

// No port is bound: addresses in use by someone else pass (pgproxy finds that out when it starts).
TEST(PgproxyCheckConfig, BindsNoPort) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  pt::CommandResult r = check({"--sql-log", "", "--listen", taken, "--metrics-listen", taken});
  close(fd);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// The example of packaging/ (installed as /etc/pgproxy/main.conf) passes as it is, its SQL log
// put where this test may write.
TEST(PgproxyCheckConfig, ExampleConfigPasses) {
  TempDir dir;
  pt::CommandResult r = check({"--config", kExampleConfig, "--sql-log", dir.file("statements.log")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("\nlisten 127.0.0.1:6432; upstream 127.0.0.1:5432; SQL log " + dir.file("statements.log") +
                       " (text);"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(dir.names(), std::vector<std::string>{});
}

// The options the example only shows, commented out, are options too, with values pgproxy
// takes: uncommented, the only problems are the example's certificate paths, missing here.
TEST(PgproxyCheckConfig, ExampleConfigCommentedOptionsAreValid) {
  pt::CommandResult help = pgproxy({"--help"});
  ASSERT_TRUE(help.ok()) << help.describe();
  std::set<std::string> options;
  for (const pt::HelpOption& o : pt::help_long_options(help.out)) options.insert(o.name.substr(2));

  const std::regex commented(R"(^# ([a-z][a-z0-9-]*) = (.*)$)");
  std::string uncommented;
  std::vector<std::string> keys;
  std::istringstream in(read_file(kExampleConfig));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, commented)) {
      keys.push_back(m[1]);
      EXPECT_TRUE(options.count(m[1])) << "the example shows '" << m[1] << "', which is no option of --help";
      line = line.substr(2);
    }
    uncommented += line + "\n";
  }
  EXPECT_GE(keys.size(), 15u) << "the example shows fewer options than expected";
  TempDir dir;
  const std::string file = write_file(dir.file("uncommented.conf"), uncommented);
  pt::CommandResult r =
      check({"--config", file, "--sql-log", dir.file("statements.log"), "--capture", dir.file("traffic.pgwcap")});
  const std::regex missing_file(R"(^pgproxy: --(tls|upstream-ssl)[a-z-]+ /\S+: No such file or directory$)");
  const std::vector<std::string> err = lines(r.err);
  ASSERT_FALSE(err.empty()) << r.describe();
  for (size_t i = 0; i + 1 < err.size(); ++i) {
    EXPECT_TRUE(std::regex_match(err[i], missing_file)) << "unexpected problem: " << err[i];
  }
  EXPECT_TRUE(err.back().starts_with("pgproxy: configuration has ")) << r.describe();
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace pgproxy
