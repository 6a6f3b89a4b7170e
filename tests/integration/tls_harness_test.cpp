// The TLS test infrastructure itself: TestPki's certificates checked with `openssl verify`, and
// TempPostgresOptions::tls / hostssl_only / HostAuth::cert checked with psql (libpq) straight
// against the server, no proxy in between. If these pass, a failing pgproxy TLS test is about
// the proxy, not about its certificates.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "pg_server.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"
#include "test_pki.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;

namespace {

const pt::TestPki& pki() { return pt::TestPki::shared(); }

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// `openssl verify` of `cert` against `ca_file`, plus `extra` options (-verify_hostname ...).
pt::CommandResult openssl_verify(const std::string& ca_file, const std::string& cert,
                                 const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {"openssl", "verify", "-CAfile", ca_file};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(cert);
  return pt::run_command(argv);
}

std::string openssl_x509(const std::string& cert, const std::string& what) {
  return pt::run_command({"openssl", "x509", "-in", cert, "-noout", what}).out;
}

pt::TempPostgresOptions tls_server_options(const pt::CertKeyPair& server, pt::HostAuth auth = pt::HostAuth::trust) {
  pt::TempPostgresOptions options;
  options.tls = pt::TempPostgresTls{server.cert, server.key, pki().ca_cert()};
  options.hostssl_only = true;
  options.host_auth = auth;
  return options;
}

// The query the brief of every TLS test asks: is this very connection encrypted?
const char* kSslOfThisBackend = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

}  // namespace

// ---- The PKI, checked with openssl alone --------------------------------------------------

TEST(TlsTestPki, WritesEveryFileWithPrivateKeysReadableOnlyByTheOwner) {
  auto start = std::chrono::steady_clock::now();
  pt::TestPki fresh("alice");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  RecordProperty("generation_ms", static_cast<int>(took.count()));
  EXPECT_LT(took, std::chrono::seconds(5)) << "generating the PKI is meant to take well under a second";

  EXPECT_EQ(file_mode(fresh.dir()), 0700u);
  const std::vector<pt::CertKeyPair> pairs = {{fresh.ca_cert(), fresh.ca_key()},
                                              fresh.server(),
                                              fresh.proxy(),
                                              fresh.client(),
                                              fresh.expired(),
                                              fresh.wrong_host(),
                                              fresh.untrusted()};
  for (const pt::CertKeyPair& pair : pairs) {
    EXPECT_TRUE(fs::is_regular_file(pair.cert)) << pair.cert;
    EXPECT_EQ(file_mode(pair.key), 0600u) << pair.key;
    EXPECT_TRUE(fs::path(pair.cert).string().starts_with(fresh.dir() + "/")) << pair.cert;
  }
  EXPECT_EQ(openssl_x509(fresh.client().cert, "-subject"), "subject=CN = alice\n");
  EXPECT_EQ(fresh.client_user(), "alice");
}

TEST(TlsTestPki, DestructorRemovesTheDirectory) {
  std::string dir;
  {
    pt::TestPki fresh;
    dir = fresh.dir();
    ASSERT_TRUE(fs::exists(fresh.server().key));
  }
  EXPECT_FALSE(fs::exists(dir));
}

TEST(TlsTestPki, SharedIsMadeOncePerProcess) {
  EXPECT_EQ(&pt::TestPki::shared(), &pt::TestPki::shared());
  EXPECT_EQ(pki().client_user(), pt::TestPki::kDefaultClientUser);
}

TEST(TlsTestPki, ServerAndProxyCertificatesVerifyForEveryLoopbackName) {
  for (const pt::CertKeyPair* pair : {&pki().server(), &pki().proxy()}) {
    for (const std::vector<std::string>& name : std::vector<std::vector<std::string>>{
             {"-verify_hostname", "localhost"}, {"-verify_ip", "127.0.0.1"}, {"-verify_ip", "::1"}}) {
      pt::CommandResult r = openssl_verify(pki().ca_cert(), pair->cert, name);
      EXPECT_TRUE(r.ok()) << pair->cert << " " << name[1] << ": " << r.describe();
    }
  }
  // Two certificates, not one under two names: other serials and other keys.
  EXPECT_NE(openssl_x509(pki().server().cert, "-serial"), openssl_x509(pki().proxy().cert, "-serial"));
  EXPECT_NE(openssl_x509(pki().server().cert, "-pubkey"), openssl_x509(pki().proxy().cert, "-pubkey"));
}

TEST(TlsTestPki, ClientCertificateIsForClientsAndNamesTheUser) {
  pt::CommandResult r = openssl_verify(pki().ca_cert(), pki().client().cert, {"-purpose", "sslclient"});
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(openssl_x509(pki().client().cert, "-subject"), "subject=CN = pgwire\n");
}

TEST(TlsTestPki, BadCertificatesFailVerificationForTheirOwnReason) {
  pt::CommandResult r = openssl_verify(pki().ca_cert(), pki().expired().cert, {"-verify_hostname", "localhost"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("certificate has expired"), std::string::npos) << r.describe();
  EXPECT_EQ(openssl_x509(pki().expired().cert, "-dates"),
            "notBefore=Jan  1 00:00:00 2020 GMT\nnotAfter=Feb  1 00:00:00 2020 GMT\n");
  // Only the dates are wrong: without the time check it verifies.
  r = openssl_verify(pki().ca_cert(), pki().expired().cert, {"-verify_hostname", "localhost", "-no_check_time"});
  EXPECT_TRUE(r.ok()) << r.describe();

  r = openssl_verify(pki().ca_cert(), pki().wrong_host().cert, {"-verify_hostname", "localhost"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("hostname mismatch"), std::string::npos) << r.describe();
  EXPECT_TRUE(openssl_verify(pki().ca_cert(), pki().wrong_host().cert, {"-verify_hostname", "wrong.example"}).ok());

  r = openssl_verify(pki().ca_cert(), pki().untrusted().cert, {"-verify_hostname", "localhost"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("unable to get local issuer certificate"), std::string::npos) << r.describe();
  EXPECT_TRUE(
      openssl_verify(pki().untrusted_ca_cert(), pki().untrusted().cert, {"-verify_hostname", "localhost"}).ok());
}

TEST(TlsTestPki, InstallPairGivesTheKeyToItsNewOwner) {
  std::string dir = pki().dir() + "/install-test";
  ASSERT_TRUE(fs::create_directory(dir));
  std::optional<pt::RunAs> owner;
  if (geteuid() == 0) owner = pt::lookup_user("postgres");
  pt::CertKeyPair installed = pt::TestPki::install_pair(pki().server(), dir, "pg", owner);
  EXPECT_EQ(installed.cert, dir + "/pg.crt");
  EXPECT_EQ(installed.key, dir + "/pg.key");
  EXPECT_EQ(file_mode(installed.cert), 0644u);
  EXPECT_EQ(file_mode(installed.key), 0600u);
  struct stat st {};
  ASSERT_EQ(stat(installed.key.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, owner ? owner->uid : geteuid());
  EXPECT_EQ(openssl_x509(installed.cert, "-serial"), openssl_x509(pki().server().cert, "-serial"));
  // Installing again replaces the files.
  EXPECT_NO_THROW(pt::TestPki::install_pair(pki().proxy(), dir, "pg", owner));
  EXPECT_EQ(openssl_x509(installed.cert, "-serial"), openssl_x509(pki().proxy().cert, "-serial"));
  fs::remove_all(dir);
}

// ---- A TLS server, trust over hostssl only ------------------------------------------------

class TlsServerTest : public pt::SharedServerTest<TlsServerTest> {
 public:
  static pt::TempPostgresOptions server_options() { return tls_server_options(pki().server()); }
};

TEST_F(TlsServerTest, VerifyFullToLocalhostConnectsOverTls) {
  pt::CommandResult r =
      pg().run_psql({"-h", "localhost", "-At", "-c", kSslOfThisBackend}, {}, pki().libpq_env("verify-full"));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "t\n");
}

TEST_F(TlsServerTest, VerifyFullToTheIpAddressMatchesItsSubjectAltName) {
  pt::CommandResult r =
      pg().run_psql({"-h", "127.0.0.1", "-At", "-c", kSslOfThisBackend}, {}, pki().libpq_env("verify-full"));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "t\n");
}

TEST_F(TlsServerTest, ServerUsesItsCopiesOfTheFiles) {
  ASSERT_TRUE(pg().tls().has_value());
  EXPECT_EQ(pg().tls()->cert_file, pg().base_dir() + "/tls/server.crt");
  EXPECT_EQ(file_mode(pg().tls()->key_file), 0600u);
  pt::CommandResult r =
      pg().run_admin_psql({"-At", "-c", "SELECT current_setting('ssl'), current_setting('ssl_key_file')"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "on|" + pg().tls()->key_file + "\n");
}

TEST_F(TlsServerTest, SslmodeDisableIsRejectedByPgHba) {
  pt::CommandResult r = pg().run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, pki().libpq_env("disable"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("pg_hba.conf rejects connection"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("no encryption"), std::string::npos) << r.describe();
}

TEST_F(TlsServerTest, VerifyFullTrustingAnotherCaFails) {
  auto env = pki().libpq_env("verify-full");
  env["PGSSLROOTCERT"] = pki().untrusted_ca_cert();
  pt::CommandResult r = pg().run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, env);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.describe();
}

TEST_F(TlsServerTest, UnixSocketStaysOpenForTheHarness) {
  pt::CommandResult r = pg().run_admin_psql({"-At", "-c", kSslOfThisBackend});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "f\n");
}

// ---- Servers with a bad certificate: verify-full must refuse them ------------------------

// libpq 15 does not say why a chain failed (expired, unknown issuer): "SSL error: certificate
// verify failed" for both. TlsTestPki.BadCertificatesFailVerificationForTheirOwnReason shows the
// reasons with openssl verify.
struct BadServerCert {
  const char* name;
  const pt::CertKeyPair& (pt::TestPki::*pair)() const;
  const char* libpq_error;  // part of psql's stderr with verify-full to localhost
};

void PrintTo(const BadServerCert& cert, std::ostream* out) { *out << cert.name; }

class TlsBadServerCertTest : public ::testing::TestWithParam<BadServerCert> {};

TEST_P(TlsBadServerCertTest, VerifyFullFailsWithLibpqsReason) {
  const pt::CertKeyPair& pair = (pki().*GetParam().pair)();
  pt::TempPostgres pg(tls_server_options(pair));
  pt::CommandResult r = pg.run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, pki().libpq_env("verify-full"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find(GetParam().libpq_error), std::string::npos) << r.describe();
  // The server itself is fine: a client that does not check the certificate gets in over TLS.
  r = pg.run_psql({"-h", "localhost", "-At", "-c", kSslOfThisBackend}, {}, pki().libpq_env("require"));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "t\n");
}

INSTANTIATE_TEST_SUITE_P(
    Certs, TlsBadServerCertTest,
    ::testing::Values(BadServerCert{"expired", &pt::TestPki::expired, "SSL error: certificate verify failed"},
                      BadServerCert{"wrong_host", &pt::TestPki::wrong_host,
                                    "server certificate for \"wrong.example\" does not match host name \"localhost\""},
                      BadServerCert{"untrusted", &pt::TestPki::untrusted, "SSL error: certificate verify failed"}),
    [](const ::testing::TestParamInfo<BadServerCert>& cert) { return std::string(cert.param.name); });

// ---- cert authentication ------------------------------------------------------------------

class TlsCertAuthTest : public pt::SharedServerTest<TlsCertAuthTest> {
 public:
  static pt::TempPostgresOptions server_options() { return tls_server_options(pki().server(), pt::HostAuth::cert); }
};

TEST_F(TlsCertAuthTest, ClientCertificateLogsInAsItsCommonName) {
  EXPECT_EQ(pg().user(), "pgwire");
  EXPECT_EQ(pg().password(), "");
  pt::CommandResult r =
      pg().run_psql({"-h", "localhost", "-At", "-c",
                     "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"},
                    {}, pki().libpq_env("verify-full", pki().client()));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "pgwire|t|/CN=pgwire\n");
}

TEST_F(TlsCertAuthTest, WithoutClientCertificateFails) {
  pt::CommandResult r = pg().run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, pki().libpq_env("verify-full"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("connection requires a valid client certificate"), std::string::npos) << r.describe();
}

TEST_F(TlsCertAuthTest, CertificateOfAnotherUserFails) {
  auto env = pki().libpq_env("verify-full", pki().client());
  env["PGUSER"] = "postgres";
  pt::CommandResult r = pg().run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, env);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate authentication failed for user \"postgres\""), std::string::npos) << r.describe();
}

TEST_F(TlsCertAuthTest, ClientCertificateFromAnUntrustedCaIsRefused) {
  pt::CommandResult r = pg().run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {},
                                      pki().libpq_env("verify-full", pki().untrusted()));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("unknown ca"), std::string::npos) << r.describe();
}

// ---- Other combinations -------------------------------------------------------------------

TEST(TempPostgresTls, ScramOverTlsAndWithoutWhenNotHostsslOnly) {
  pt::TempPostgresOptions options;
  options.tls = pt::TempPostgresTls{pki().server().cert, pki().server().key, ""};
  options.host_auth = pt::HostAuth::scram_sha_256;
  pt::TempPostgres pg(options);

  pt::CommandResult r =
      pg.run_psql({"-h", "localhost", "-At", "-c", kSslOfThisBackend}, {}, pki().libpq_env("verify-full"));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "t\n");
  r = pg.run_psql({"-h", "localhost", "-At", "-c", kSslOfThisBackend}, {}, pki().libpq_env("disable"));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "f\n");

  auto env = pki().libpq_env("verify-full");
  env["PGPASSWORD"] = "wrong";
  r = pg.run_psql({"-h", "localhost", "-At", "-c", "SELECT 1"}, {}, env);
  EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.describe();
}

TEST(TempPostgresTls, OptionsThatCannotWorkAreRefusedBeforeAnythingStarts) {
  pt::TempPostgresOptions options;
  options.hostssl_only = true;
  EXPECT_THROW(pt::TempPostgres{options}, std::invalid_argument);

  options = {};
  options.host_auth = pt::HostAuth::cert;
  EXPECT_THROW(pt::TempPostgres{options}, std::invalid_argument);
  options.tls = pt::TempPostgresTls{pki().server().cert, pki().server().key, ""};  // no CA for clients
  EXPECT_THROW(pt::TempPostgres{options}, std::invalid_argument);
}
