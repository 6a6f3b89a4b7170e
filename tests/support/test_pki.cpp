#include "test_pki.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgwire::test {
namespace fs = std::filesystem;
namespace {

constexpr const char* kDirPrefix = "pgwire-pki-";

// One configuration for every openssl command: `req` needs a distinguished_name section even
// with -subj, the extension sections say what each kind of certificate may do, and `ca` (used
// only for the expired certificate, whose dates `req -x509` cannot set) needs its database.
// Nothing comes from the system's openssl.cnf.
constexpr const char* kOpensslConfig = R"([req]
distinguished_name = req_dn
[req_dn]

[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[wrong_host_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example

[client_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth

[untrusted_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1

[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any_policy
unique_subject = no
[any_policy]
commonName = supplied
)";

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// Removes the directories of processes that died before their destructor ran. A directory
// without owner.pid is skipped: it may be brand new.
void remove_stale_dirs() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    if (!entry.path().filename().string().starts_with(kDirPrefix)) continue;
    std::ifstream in(entry.path() / "owner.pid");
    long owner = 0;
    if (!(in >> owner) || owner <= 0 || process_alive(static_cast<pid_t>(owner))) continue;
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

}  // namespace

void install_file(const std::string& source, const std::string& dest, mode_t mode, const std::optional<RunAs>& owner) {
  std::ifstream in(source, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + source);
  std::ostringstream content;
  content << in.rdbuf();
  std::string bytes = content.str();

  std::error_code ignored;
  fs::remove(dest, ignored);  // a new file: its mode and owner are set before it holds anything
  int fd = open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("create " + dest + ": " + std::strerror(errno));
  std::string failure;
  if (owner && fchown(fd, owner->uid, owner->gid) != 0) failure = "chown";
  if (failure.empty() && fchmod(fd, mode) != 0) failure = "chmod";  // not subject to the umask
  if (failure.empty() && write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    failure = "write";
  }
  int saved = errno;
  close(fd);
  if (!failure.empty()) throw std::runtime_error(failure + " " + dest + ": " + std::strerror(saved));
}

TestPki::TestPki(std::string client_user) : client_user_(std::move(client_user)), owner_pid_(getpid()) {
  remove_stale_dirs();
  std::string pattern = std::string("/tmp/") + kDirPrefix + "XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  dir_ = pattern;
  try {
    write_text(path("owner.pid"), std::to_string(owner_pid_) + "\n");
    generate();
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    throw;
  }
}

TestPki::~TestPki() {
  if (getpid() != owner_pid_) return;  // a forked child that exits: the directory is its parent's
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

const TestPki& TestPki::shared() {
  static const TestPki pki;
  return pki;
}

void TestPki::generate() {
  write_text(path("openssl.cnf"), kOpensslConfig);
  fs::create_directory(path("ca-db"));
  write_text(path("ca-db/index.txt"), "");
  write_text(path("ca-db/serial"), "1000\n");

  ca_ = make_ca("ca", "pgwire test CA");
  server_ = issue("server", "localhost", "server_ext", ca_);
  proxy_ = issue("proxy", "localhost", "server_ext", ca_);
  client_ = issue("client", client_user_, "client_ext", ca_);
  expired_ = issue_expired("expired");
  wrong_host_ = issue("wrong-host", "wrong.example", "wrong_host_ext", ca_);
  untrusted_ca_ = make_ca("untrusted-ca", "pgwire untrusted CA");
  untrusted_ = issue("untrusted", "localhost", "untrusted_ext", untrusted_ca_);
}

// Runs openssl in dir() with our configuration. `req -noenc` writes its keys with mode 0600
// already; the chmod in issue() makes sure of it.
void TestPki::openssl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.cwd = dir_;
  options.env = {{"OPENSSL_CONF", path("openssl.cnf")}};
  options.timeout = std::chrono::seconds(30);
  CommandResult r = run_command(argv, options);
  if (!r.ok()) throw std::runtime_error("TestPki: " + format_command(argv) + " failed: " + r.describe());
}

CertKeyPair TestPki::make_ca(const std::string& name, const std::string& common_name) const {
  CertKeyPair ca{path(name + ".crt"), path(name + ".key")};
  openssl({"req", "-x509", "-config", "openssl.cnf", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
           "-keyout", ca.key, "-out", ca.cert, "-subj", "/CN=" + common_name, "-days", "3650", "-extensions",
           "ca_ext"});
  fs::permissions(ca.key, fs::perms::owner_read | fs::perms::owner_write);
  return ca;
}

// A new key and a certificate for it signed by `issuer`, in one command (`req -x509 -CA`, new
// in OpenSSL 3.0), valid from now for ten years.
CertKeyPair TestPki::issue(const std::string& name, const std::string& common_name, const std::string& extensions,
                           const CertKeyPair& issuer) const {
  CertKeyPair pair{path(name + ".crt"), path(name + ".key")};
  openssl({"req",
           "-x509",
           "-config",
           "openssl.cnf",
           "-CA",
           issuer.cert,
           "-CAkey",
           issuer.key,
           "-newkey",
           "ec",
           "-pkeyopt",
           "ec_paramgen_curve:P-256",
           "-noenc",
           "-keyout",
           pair.key,
           "-out",
           pair.cert,
           "-subj",
           "/CN=" + common_name,
           "-days",
           "3650",
           "-extensions",
           extensions});
  fs::permissions(pair.key, fs::perms::owner_read | fs::perms::owner_write);
  return pair;
}

// OpenSSL 3.0's `x509` and `req` can only start a certificate now; `ca` takes any dates.
CertKeyPair TestPki::issue_expired(const std::string& name) const {
  CertKeyPair pair{path(name + ".crt"), path(name + ".key")};
  std::string csr = path(name + ".csr");
  openssl({"req", "-new", "-config", "openssl.cnf", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
           "-keyout", pair.key, "-out", csr, "-subj", "/CN=localhost"});
  fs::permissions(pair.key, fs::perms::owner_read | fs::perms::owner_write);
  openssl({"ca", "-batch", "-config", "openssl.cnf", "-cert", ca_.cert, "-keyfile", ca_.key, "-in", csr, "-out",
           pair.cert, "-notext", "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-extensions",
           "server_ext"});
  return pair;
}

std::map<std::string, std::string> TestPki::libpq_env(const std::string& sslmode,
                                                      const std::optional<CertKeyPair>& client_cert) const {
  const bool verify = sslmode == "verify-ca" || sslmode == "verify-full";
  return {
      {"PGSSLMODE", sslmode},
      {"PGSSLROOTCERT", verify ? ca_cert() : path("no-root.crt")},
      {"PGSSLCERT", client_cert ? client_cert->cert : path("no-client-cert.crt")},
      {"PGSSLKEY", client_cert ? client_cert->key : path("no-client-cert.key")},
  };
}

CertKeyPair TestPki::install_pair(const CertKeyPair& pair, const std::string& dest_dir, const std::string& name,
                                  const std::optional<RunAs>& owner) {
  CertKeyPair installed{dest_dir + "/" + name + ".crt", dest_dir + "/" + name + ".key"};
  install_file(pair.cert, installed.cert, 0644, owner);
  install_file(pair.key, installed.key, 0600, owner);
  return installed;
}

}  // namespace pgwire::test
