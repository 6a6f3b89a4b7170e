// A throwaway PKI for TLS tests, made with the `openssl` command-line tool:
//
//   const pgwire::test::TestPki& pki = pgwire::test::TestPki::shared();  // made once per process
//   pki.ca_cert();         // ca.crt: the root the clients trust (PGSSLROOTCERT)
//   pki.server().cert;     // server.crt/.key, for PostgreSQL
//   pki.proxy().key;       // proxy.crt/.key, for pgproxy's client leg
//   auto env = pki.libpq_env("verify-full", pki.client());   // PGSSLMODE, PGSSLROOTCERT, ...
//
// Every certificate is signed by the test CA unless its name says otherwise, with EC P-256 keys
// (an RSA 2048 key takes 0.1 to 0.5 s to generate, an EC key next to nothing). Server
// certificates carry subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1, so clients must connect
// to one of those names for sslmode=verify-full. The whole set takes nine openssl runs, 0.2 to
// 0.5 s; TestPki::shared() makes it once per test process (ctest runs every test in a process of
// its own, so that is once per test).
//
// The constructor creates a fresh /tmp/pgwire-pki-XXXXXX (mode 0700, private keys 0600); the
// destructor removes it. A directory left by a process that died is removed by the next TestPki.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace pgwire::test {

// Paths of a PEM certificate and of its PEM private key.
struct CertKeyPair {
  std::string cert;
  std::string key;
};

class TestPki {
 public:
  static constexpr const char* kDefaultClientUser = "pgwire";  // TempPostgresOptions::user

  // Generates everything; throws std::runtime_error (with openssl's stderr) on failure.
  // `client_user` is the CN of client(), the role `cert` authentication logs in as.
  explicit TestPki(std::string client_user = kDefaultClientUser);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // One PKI for the whole process (client CN kDefaultClientUser), made on first use and removed
  // at exit. Thread-safe.
  static const TestPki& shared();

  const std::string& dir() const { return dir_; }
  const std::string& client_user() const { return client_user_; }

  // The test CA (CN "pgwire test CA"): what clients and servers trust.
  const std::string& ca_cert() const { return ca_.cert; }
  const std::string& ca_key() const { return ca_.key; }
  // CN localhost, for PostgreSQL.
  const CertKeyPair& server() const { return server_; }
  // CN localhost, another key and serial than server(): for the proxy's client-facing side.
  const CertKeyPair& proxy() const { return proxy_; }
  // CN client_user(), extendedKeyUsage clientAuth: for `cert` authentication.
  const CertKeyPair& client() const { return client_; }
  // Same names as server(), valid from 2020-01-01 to 2020-02-01 only.
  const CertKeyPair& expired() const { return expired_; }
  // CN and only subjectAltName wrong.example: verify-full to localhost must fail.
  const CertKeyPair& wrong_host() const { return wrong_host_; }
  // Same names as server() (and usable as a client certificate), signed by another CA that
  // nothing trusts.
  const CertKeyPair& untrusted() const { return untrusted_; }
  const std::string& untrusted_ca_cert() const { return untrusted_ca_.cert; }

  // libpq's environment for a connection with PGSSLMODE=sslmode: PGSSLROOTCERT is ca_cert() for
  // verify-ca and verify-full, and a file that does not exist for the other modes (libpq turns
  // `require` into verify-ca when the root file exists); PGSSLCERT/PGSSLKEY are `client_cert`,
  // or files that do not exist (so that a ~/.postgresql/postgresql.crt is never sent).
  std::map<std::string, std::string> libpq_env(const std::string& sslmode,
                                               const std::optional<CertKeyPair>& client_cert = std::nullopt) const;

  // Copies `pair` to dest_dir/<name>.crt (mode 0644) and dest_dir/<name>.key (mode 0600), both
  // owned by `owner` when set (we must be root then), and returns the new paths. This is what
  // PostgreSQL demands of ssl_key_file: owned by the server's user and not readable by others;
  // TempPostgres does it for the files of TempPostgresOptions::tls.
  static CertKeyPair install_pair(const CertKeyPair& pair, const std::string& dest_dir, const std::string& name,
                                  const std::optional<RunAs>& owner);

 private:
  void generate();
  void openssl(const std::vector<std::string>& args) const;
  CertKeyPair make_ca(const std::string& name, const std::string& common_name) const;
  CertKeyPair issue(const std::string& name, const std::string& common_name, const std::string& extensions,
                    const CertKeyPair& issuer) const;
  CertKeyPair issue_expired(const std::string& name) const;
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

  std::string client_user_;
  pid_t owner_pid_;
  std::string dir_;
  CertKeyPair ca_, server_, proxy_, client_, expired_, wrong_host_, untrusted_ca_, untrusted_;
};

// Copies `source` to `dest` with `mode` (replacing `dest` if it exists), owned by `owner` when set.
// Throws std::runtime_error when any step fails.
void install_file(const std::string& source, const std::string& dest, mode_t mode, const std::optional<RunAs>& owner);

}  // namespace pgwire::test
