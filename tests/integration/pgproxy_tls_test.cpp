// pgproxy with TLS on its two legs (docs/pgproxy-tls.md), against a real PostgreSQL, real psql
// and pgbench (libpq 15) and real OpenSSL, on loopback only. Certificates come from TestPki
// (tests/support/test_pki.hpp); tls_harness_test.cpp checks them and the TLS servers without a
// proxy, so a failure here is about pgproxy.
//
// What libpq 15 cannot do is done by two small clients of our own: TcpClient (raw bytes: an
// SSLRequest followed by plaintext, half a ClientHello) and TlsClient (blocking OpenSSL: direct
// TLS with or without ALPN, TLS 1.2 only, and a look at the certificate pgproxy presents). Two
// stand-ins for the server's side: GatedRelay holds pgproxy's server connection until the test
// lets it through, SilentTlsServer answers 'S' and then nothing.
//
// ctest runs every test in a process of its own, so each test starts its servers: a suite shares
// one only when its binary is run directly. Tests that need a server of another kind make it;
// tests whose sessions must end before a server is needed (PgproxyTlsClientLeg) have none: their
// pgproxy points at a closed port, so a session that wrongly got that far says "cannot connect".
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loopback.hpp"
#include "pg_server.hpp"
#include "pgwire/auth.hpp"
#include "pgwire/bytes.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/protocol.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"
#include "test_files.hpp"
#include "test_pki.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;
using pt::line_head;
using pt::line_sql;
using pt::lines_of;
using pt::ProxyProcess;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

namespace {

const pt::TestPki& pki() { return pt::TestPki::shared(); }

// Is this very connection encrypted, as the server sees it?
const char* const kSslOfThisBackend = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

Args operator+(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// pgproxy's client leg: it presents `pair`.
Args client_leg(const pt::CertKeyPair& pair) { return {"--tls-cert", pair.cert, "--tls-key", pair.key}; }

// pgproxy's server leg, checking the server's certificate against `root` for the host of --upstream.
Args server_leg_verify_full(const std::string& root) {
  return {"--upstream-sslmode", "verify-full", "--upstream-sslrootcert", root};
}

// libpq's environment for TLS toward pgproxy: sslmode (with TestPki's files), channel_binding
// (empty: libpq's default, prefer) and a client certificate.
Env libpq_tls(const std::string& sslmode, const std::string& channel_binding,
              const std::optional<pt::CertKeyPair>& client_cert = std::nullopt) {
  Env env = pki().libpq_env(sslmode, client_cert);
  if (!channel_binding.empty()) env["PGCHANNELBINDING"] = channel_binding;
  return env;
}

// psql -X through the proxy, to the host name "localhost" (the name pgproxy's certificate has, for
// verify-full) at the address 127.0.0.1 (where the proxy listens; localhost may resolve to ::1
// first).
pt::CommandResult psql_localhost(const ProxyProcess& proxy, const pt::TempPostgres& pg, const Args& args, Env env,
                                 const std::string& stdin_data = {}) {
  env["PGHOST"] = "localhost";
  env["PGHOSTADDR"] = "127.0.0.1";
  return proxy.run(pg, Args{pg.bindir() + "/psql", "-X"} + args, stdin_data, env, 60s);
}

// pgdump-log on a capture.
pt::CommandResult pgdump_log(const std::string& capture, const Args& args) {
  return pt::run_command(Args{pt::tool_path("pgdump-log"), "--no-progress"} + args + Args{capture});
}

// Waits until pgproxy's output contains `text`; the output.
std::string wait_for_output(const ProxyProcess& proxy, const std::string& text, std::chrono::milliseconds limit = 10s) {
  std::string out;
  for (auto deadline = Clock::now() + limit; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    out = proxy.output();
    if (out.find(text) != std::string::npos) break;
  }
  return out;
}

// Waits until the server runs `query` (pg_stat_activity, over the admin socket); whether it did.
bool wait_until_running(const pt::TempPostgres& pg, const std::string& query) {
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    // psql interpolates :'q' (quoted) in its input, not in -c.
    pt::CommandResult a =
        pg.run_admin_psql({"-At", "-v", "q=" + query},
                          "SELECT count(*) FROM pg_stat_activity WHERE query = :'q' AND state = 'active';\n");
    if (a.ok() && a.out == "1\n") return true;
  }
  return false;
}

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) ++n;
  return n;
}

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// A private directory, removed with everything in it.
class TempDir : public pt::TempDir {
 public:
  TempDir() : pt::TempDir("pgproxy-tls") {}
};

std::string ssl_request() {
  pgwire::Buffer b;
  pgwire::fe::SslRequest{}.encode(b);
  return std::string(b.string_view());
}

std::string startup_message(const std::string& user) {
  pgwire::Buffer b;
  pgwire::fe::StartupMessage sm;
  sm.params = {{"user", user}, {"database", "postgres"}};
  sm.encode(b);
  return std::string(b.string_view());
}

// A TCP connection to 127.0.0.1:port; reads give up after 10 s (SO_RCVTIMEO), so that a blocking
// client can never hang a test.
int connect_loopback(uint16_t port) { return pt::connect_to_loopback(port, 10); }

// Raw bytes on a socket, for what no TLS library sends on purpose.
class TcpClient {
 public:
  explicit TcpClient(uint16_t port) : fd_(connect_loopback(port)) {}
  ~TcpClient() { close(fd_); }
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  void send_text(std::string_view s) const {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  // At most `n` bytes, as soon as some came; "" on EOF or after 10 s.
  std::string read_some(size_t n) const {
    std::string out(n, '\0');
    ssize_t got = recv(fd_, out.data(), n, 0);
    out.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return out;
  }
  // Everything until EOF (true) or until `limit` passed (false).
  bool read_to_eof(std::string& out, std::chrono::milliseconds limit) const {
    for (auto deadline = Clock::now() + limit;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
};

// The oldest error OpenSSL queued, as text, and the queue cleared.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error queued";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr read_certificate(const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

// The first bytes a TLS client sends: a ClientHello, made by OpenSSL on memory BIOs.
std::string client_hello() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  (void)SSL_connect(ssl);  // writes the ClientHello, then wants to read the ServerHello
  std::string hello(16384, '\0');
  int n = BIO_read(out, hello.data(), static_cast<int>(hello.size()));
  hello.resize(n > 0 ? static_cast<size_t>(n) : 0);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

struct TlsClientOptions {
  bool direct = false;              // TLS from the first byte (sslnegotiation=direct); else SSLRequest first
  std::string alpn = "postgresql";  // the one protocol offered with ALPN; empty: no ALPN
  std::string ca_file;              // set: verify the chain against it, and the name "localhost"
  int max_version = 0;              // TLS1_2_VERSION: a client that knows no TLS 1.3; 0: OpenSSL's newest
};

struct BackendMessage {
  char type = 0;
  std::string body;
  pgwire::Bytes bytes() const { return pgwire::as_bytes(body); }
};

struct QueryOutcome {
  std::vector<std::string> values;  // the first column of every DataRow
  std::string error;                // "SQLSTATE message" of an ErrorResponse, or why the connection ended
  bool ready = false;               // ReadyForQuery came
};

// A blocking TLS client made with OpenSSL alone: direct TLS (which libpq 15 cannot do), the
// certificate pgproxy presents, and a session on top (startup, SCRAM, simple queries).
class TlsClient {
 public:
  TlsClient(uint16_t port, TlsClientOptions opts) : opts_(std::move(opts)), fd_(connect_loopback(port)) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (opts_.max_version != 0) SSL_CTX_set_max_proto_version(ctx_, opts_.max_version);
    if (!opts_.alpn.empty()) {  // length-prefixed
      const std::string protos = static_cast<char>(opts_.alpn.size()) + opts_.alpn;
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(protos.data()),
                              static_cast<unsigned int>(protos.size()));
    }
    if (!opts_.ca_file.empty()) {
      SSL_CTX_load_verify_locations(ctx_, opts_.ca_file.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    if (!opts_.ca_file.empty()) SSL_set1_host(ssl_, "localhost");
    SSL_set_fd(ssl_, fd_);
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    close(fd_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // SSLRequest (unless direct) and the TLS handshake; false with error() set when either failed.
  bool handshake() {
    if (!opts_.direct) {
      std::string req = ssl_request();
      if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        return fail("cannot send SSLRequest");
      }
      char answer = 0;
      if (recv(fd_, &answer, 1, 0) != 1) return fail("no answer to SSLRequest");
      if (answer != 'S') return fail(std::string("SSLRequest answered ") + answer);
    }
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) {
      long verify = SSL_get_verify_result(ssl_);
      return fail(verify != X509_V_OK ? X509_verify_cert_error_string(verify) : openssl_error());
    }
    return true;
  }
  const std::string& error() const { return error_; }

  X509* peer_certificate() const { return SSL_get0_peer_certificate(ssl_); }
  bool peer_is(const std::string& cert_file) const {
    X509Ptr expected = read_certificate(cert_file);
    return expected && peer_certificate() != nullptr && X509_cmp(peer_certificate(), expected.get()) == 0;
  }
  std::string version() const { return SSL_get_version(ssl_); }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return {reinterpret_cast<const char*>(p), n};
  }

  bool send(std::string_view data) {
    size_t written = 0;
    if (SSL_write_ex(ssl_, data.data(), data.size(), &written) == 1 && written == data.size()) return true;
    return fail("write: " + openssl_error());
  }

  // The next whole backend message; nullopt when the connection ended (error() says how).
  std::optional<BackendMessage> next_message() {
    for (;;) {
      if (pending_.size() >= 5) {
        uint32_t len = 0;
        for (size_t i = 1; i < 5; ++i) len = (len << 8) | static_cast<unsigned char>(pending_[i]);
        if (len < 4) {
          fail("bad message length");
          return std::nullopt;
        }
        if (pending_.size() >= 1 + size_t{len}) {
          BackendMessage m{pending_[0], pending_.substr(5, len - 4)};
          pending_.erase(0, 1 + size_t{len});
          return m;
        }
      }
      char buf[16384];
      size_t got = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(ssl_, buf, sizeof buf, &got);
      if (rc != 1) {
        int err = SSL_get_error(ssl_, rc);
        fail(err == SSL_ERROR_ZERO_RETURN ? "closed (close_notify)"
             : err == SSL_ERROR_SYSCALL   ? "closed (EOF)"
                                          : "read: " + openssl_error());
        return std::nullopt;
      }
      pending_.append(buf, got);
    }
  }

  // StartupMessage and authentication (SCRAM without channel binding, as pgwire's client does
  // it), up to ReadyForQuery. "" when logged in, else what went wrong.
  std::string login(const std::string& user, const std::string& password) {
    if (!send(startup_message(user))) return error_;
    pgwire::ClientAuthenticator auth(user, password);
    while (auto m = next_message()) {
      if (m->type == 'E') return error_text(*m);
      if (m->type == 'Z') return {};
      if (m->type == 'K') backend_key_ = m->body;
      if (m->type != 'R') continue;
      auto request = pgwire::be::Authentication::decode(m->bytes(), 0);
      if (!request) return request.error().describe();
      pgwire::Buffer reply;
      auto step = auth.on_message(*request, reply);
      if (!step) return step.error().describe();
      if (step->replied && !send(std::string(reply.string_view()))) return error_;
    }
    return error_;
  }

  // BackendKeyData's body (process id, secret key) from login(); empty before.
  const std::string& backend_key() const { return backend_key_; }

  bool send_query(const std::string& sql) {
    pgwire::Buffer b;
    pgwire::fe::Query{sql}.encode(b);
    return send(std::string(b.string_view()));
  }
  QueryOutcome query(const std::string& sql) {
    if (!send_query(sql)) {
      QueryOutcome q;
      q.error = error_;
      return q;
    }
    return read_results();
  }
  // What a query sent with send_query() returned, up to ReadyForQuery.
  QueryOutcome read_results() {
    QueryOutcome q;
    while (auto m = next_message()) {
      if (m->type == 'E') q.error = error_text(*m);
      if (m->type == 'D') {
        auto row = pgwire::be::DataRow::decode(m->bytes(), 0);
        if (row && !row->values.empty() && row->values[0])
          q.values.emplace_back(pgwire::as_string_view(*row->values[0]));
      }
      if (m->type == 'Z') {
        q.ready = true;
        return q;
      }
    }
    q.error = error_;
    return q;
  }

  // Sends Terminate and reads until the connection ends: how it ended.
  std::string terminate() {
    pgwire::Buffer b;
    pgwire::fe::Terminate{}.encode(b);
    if (!send(std::string(b.string_view()))) return error_;
    return read_to_end();
  }
  // Reads until the connection ends, and says how: "closed (close_notify)" for a clean TLS end.
  std::string read_to_end() {
    while (next_message()) {
    }
    return error_;
  }

 private:
  static std::string error_text(const BackendMessage& m) {
    auto err = pgwire::be::ErrorResponse::decode(m.bytes(), 0);
    if (!err) return "undecodable ErrorResponse";
    return std::string(err->sqlstate()) + " " + std::string(err->message());
  }
  bool fail(std::string why) {
    error_ = std::move(why);
    return false;
  }

  TlsClientOptions opts_;
  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string pending_;
  std::string error_;
  std::string backend_key_;
};

// Runs `sql` as a session of its own over TLS (SSLRequest first, pgproxy's certificate checked
// against the test CA): the first column of the first row, or the error.
std::string tls_query(uint16_t port, const pt::TempPostgres& pg, const std::string& sql) {
  TlsClient c(port, {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
  if (!c.handshake()) return "handshake: " + c.error();
  std::string e = c.login(pg.user(), pg.password());
  if (!e.empty()) return "login: " + e;
  QueryOutcome q = c.query(sql);
  c.terminate();
  if (!q.error.empty()) return "query: " + q.error;
  return q.values.empty() ? std::string("no rows") : q.values[0];
}

// A TCP relay to 127.0.0.1:port that holds the first connection it accepts until open() is
// called: what a slow network or a busy server looks like to pgproxy's server leg.
class GatedRelay {
 public:
  explicit GatedRelay(uint16_t upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = pt::listen_on_loopback(port_);
    thread_ = std::thread([this] { relay(); });
  }
  ~GatedRelay() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  GatedRelay(const GatedRelay&) = delete;
  GatedRelay& operator=(const GatedRelay&) = delete;

  uint16_t port() const { return port_; }
  // Waits until a connection came in (true) or `limit` passed.
  bool wait_accepted(std::chrono::milliseconds limit) const {
    for (auto deadline = Clock::now() + limit; Clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
      if (accepted_) return true;
    }
    return accepted_;
  }
  void open() { open_ = true; }

 private:
  void relay() {
    int in = -1;
    while (!stop_ && in < 0) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) in = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    if (in < 0) return;
    accepted_ = true;
    while (!stop_ && !open_) std::this_thread::sleep_for(10ms);
    int out = stop_ ? -1 : connect_loopback(upstream_port_);
    pollfd fds[2] = {{in, POLLIN, 0}, {out, POLLIN, 0}};
    for (bool done = out < 0; !done && !stop_;) {
      if (poll(fds, 2, 20) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0) continue;
        char buf[16384];
        ssize_t n = recv(fds[i].fd, buf, sizeof buf, 0);
        if (n <= 0 || ::send(fds[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) done = true;
      }
    }
    close(in);
    if (out >= 0) close(out);
  }

  uint16_t upstream_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false}, open_{false}, accepted_{false};
  std::thread thread_;
};

// ---- Both legs TLS: a server that takes TCP connections over TLS only, with SCRAM ----------

class PgproxyTlsBothLegs : public pt::SharedServerTest<PgproxyTlsBothLegs> {
 public:
  static pt::TempPostgresOptions server_options() {
    pt::TempPostgresOptions o;
    o.tls = pt::TempPostgresTls{pki().server().cert, pki().server().key, pki().ca_cert()};
    o.hostssl_only = true;
    o.host_auth = pt::HostAuth::scram_sha_256;
    o.settings = {{"log_statement", "all"}};
    return o;
  }

 protected:
  // pgproxy terminating the client's TLS with its own certificate and checking the server's.
  static Args both_legs() { return client_leg(pki().proxy()) + server_leg_verify_full(pki().ca_cert()); }
};

TEST_F(PgproxyTlsBothLegs, ServerSeesTlsEveryStatementIsLoggedAndTheCaptureSaysHow) {
  // pgbench's tables, made over the Unix socket (trust) and owned by the login role.
  pt::CommandOptions init;
  init.env = {{"PGHOST", pg().socket_dir()},
              {"PGPORT", std::to_string(pg().port())},
              {"PGUSER", pg().user()},
              {"PGDATABASE", "postgres"}};
  pt::CommandResult r = pt::run_command({pg().bindir() + "/pgbench", "-i", "-q", "-s", "1"}, init);
  ASSERT_TRUE(r.ok()) << r.describe();

  ProxyProcess proxy(pg(), both_legs() + Args{"--capture-backend"});
  const size_t server_log_before = pg().read_log().size();
  r = psql_localhost(proxy, pg(), {"-At", "-c", kSslOfThisBackend}, libpq_tls("verify-full", "disable"));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "t\n") << "the server sees TLS";

  Env bench_env = libpq_tls("require", "disable");
  r = proxy.client(pg(), "pgbench", {"-n", "-S", "-c", "4", "-j", "2", "-t", "50"}, {}, bench_env);
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_NE(r.out.find("number of transactions actually processed: 200/200"), std::string::npos) << r.out;
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  // Every statement the server ran is in the SQL log, each pgbench SELECT once and ok.
  const std::string live = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(pt::proxy_statement_count(live), pt::server_statement_count(pg().read_log().substr(server_log_before)))
      << live.substr(0, 2000);
  int selects = 0;
  for (const std::string& l : lines_of(live)) {
    if (line_sql(l).starts_with("SELECT abalance FROM pgbench_accounts WHERE aid = ")) {
      ++selects;
      EXPECT_NE(line_head(l).find(" query ok"), std::string::npos) << l;
    }
  }
  EXPECT_EQ(selects, 200) << live.substr(0, 2000);
  EXPECT_NE(live.find("sql: " + std::string(kSslOfThisBackend)), std::string::npos) << live.substr(0, 2000);

  // The capture holds the decrypted frames: pgdump-log prints the live SQL log from it, byte for byte.
  pt::CommandResult offline = pgdump_log(proxy.capture(), {"--format", "sql"});
  ASSERT_TRUE(offline.ok()) << offline.describe();
  EXPECT_EQ(offline.out.size(), live.size());
  EXPECT_TRUE(offline.out == live) << "the live SQL log and pgdump-log of the capture differ";

  // The trace says how each leg was protected; --stats groups the sessions by it.
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  // psql's session, pgbench's four and the one it asks the scale with.
  EXPECT_GE(count_of(trace.out, " client leg TLS TLSv1.3 "), 5u) << trace.out.substr(0, 3000);
  EXPECT_GE(count_of(trace.out, " server leg TLS TLSv1.3 "), 5u) << trace.out.substr(0, 3000);
  EXPECT_EQ(count_of(trace.out, " client leg TLS "), count_of(trace.out, " server leg TLS "));

  pt::CommandResult stats = pgdump_log(proxy.capture(), {"--stats"});
  ASSERT_TRUE(stats.ok()) << stats.describe();
  size_t group = stats.out.find("by TLS (client leg | server leg):");
  ASSERT_NE(group, std::string::npos) << stats.out;
  const std::vector<std::string> after = lines_of(stats.out.substr(group));
  ASSERT_GE(after.size(), 2u) << stats.out;
  EXPECT_TRUE(after[1].starts_with("    TLSv1.3 ")) << after[1];
  EXPECT_NE(after[1].find(" | TLSv1.3 "), std::string::npos) << after[1];
  EXPECT_EQ(stats.out.find("plaintext"), std::string::npos) << stats.out;
}

// libpq's default, channel_binding=prefer, over TLS: it sees no SCRAM-SHA-256-PLUS and says it
// could have bound (gs2 flag y), which PostgreSQL on TLS takes for a downgrade. pgproxy refuses
// such a client itself and says why.
TEST_F(PgproxyTlsBothLegs, ChannelBindingPreferIsRefusedWithPgproxysReason) {
  ProxyProcess proxy(pg(), both_legs());
  pt::CommandResult r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", ""));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("channel binding cannot pass through pgproxy"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("channel_binding=disable"), std::string::npos) << "names the remedies: " << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("refused: the client uses channel_binding=prefer over TLS"), std::string::npos) << out;
  EXPECT_EQ(pt::read_text_file(proxy.sql_log()).find("never"), std::string::npos);
}

TEST_F(PgproxyTlsBothLegs, ChannelBindingRequireFailsAndPgproxySaysWhy) {
  ProxyProcess proxy(pg(), both_legs() + Args{"--stats-interval", "1"});
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "require"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("server did not offer an authentication method that supports channel binding"),
            std::string::npos)
      << r.describe();
  // Once in the log, every time in the statistics.
  r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "require"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  std::string out = wait_for_output(proxy, " channel_binding_removed=2");
  EXPECT_NE(out.find(" channel_binding_removed=2"), std::string::npos) << out;
  ASSERT_EQ(proxy.stop(), 0);
  out = proxy.output();
  EXPECT_EQ(count_of(out, "SCRAM-SHA-256-PLUS removed"), 1u) << out;
  EXPECT_EQ(pt::read_text_file(proxy.sql_log()).find("never"), std::string::npos);
}

// pgproxy showing the server's own certificate: the client's channel binding hashes what the
// server hashes, so pgproxy leaves SCRAM-SHA-256-PLUS alone and binding works through it.
TEST_F(PgproxyTlsBothLegs, TheServersOwnCertificateLetsChannelBindingPass) {
  ProxyProcess proxy(pg(), client_leg(pki().server()) + server_leg_verify_full(pki().ca_cert()));
  for (const char* binding : {"require", ""}) {
    SCOPED_TRACE(std::string("channel_binding=") + (*binding != 0 ? binding : "(default)"));
    pt::CommandResult r = psql_localhost(proxy, pg(), {"-At", "-c", std::string(kSslOfThisBackend) + " -- bound"},
                                         libpq_tls("verify-full", binding));
    ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
    EXPECT_EQ(r.out, "t\n");
  }
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_EQ(out.find("SCRAM-SHA-256-PLUS removed"), std::string::npos) << out;
  EXPECT_EQ(count_of(pt::read_text_file(proxy.sql_log()), " -- bound"), 2u);
}

// A plaintext client leg and a TLS server leg: the server that refuses TCP without TLS takes it.
TEST_F(PgproxyTlsBothLegs, PlaintextClientAndTlsToTheServer) {
  ProxyProcess proxy(pg(), {"--upstream-sslmode", "require"});
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", kSslOfThisBackend}, {{"PGSSLMODE", "disable"}});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "t\n") << "the server sees TLS";
  // Straight to the server, the same client is turned away.
  r = pg().run_psql({"-At", "-c", "SELECT 1"}, {}, {{"PGSSLMODE", "disable"}});
  EXPECT_NE(r.err.find("no encryption"), std::string::npos) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  EXPECT_NE(trace.out.find(" server leg TLS TLSv1.3 "), std::string::npos) << trace.out;
  EXPECT_EQ(trace.out.find(" client leg TLS "), std::string::npos) << trace.out;
}

// --upstream-sslrootcert of a CA that did not sign the server's certificate.
// --upstream-sslrootcert of a CA that did not sign the server's certificate: refused under
// verify-full, and under require too (libpq's rule: with a root file, require checks the chain).
TEST_F(PgproxyTlsBothLegs, ServerCertificateFromAnotherCaIsRefused) {
  for (const char* mode : {"verify-full", "require"}) {
    SCOPED_TRACE(mode);
    ProxyProcess proxy(pg(), {"--upstream-sslmode", mode, "--upstream-sslrootcert", pki().untrusted_ca_cert()});
    pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 'never'"}, {{"PGSSLMODE", "disable"}});
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find("pgproxy could not open a TLS connection to the server"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.describe();
    ASSERT_EQ(proxy.stop(), 0);
    const std::string out = proxy.output();
    EXPECT_NE(out.find("no TLS connection to the server"), std::string::npos) << out;
    // PostgreSQL sends the CA of its ssl_ca_file along (OpenSSL builds the chain from its
    // store), so the chain ends in a self-signed certificate that pgproxy does not trust.
    EXPECT_NE(out.find("certificate verify failed: self-signed certificate in certificate chain"), std::string::npos)
        << out;
  }
}

// ---- Client leg problems ------------------------------------------------------------------

// pgproxy presenting an expired certificate: a verifying client stops, pgproxy logs the failed
// handshake and goes on serving.
TEST_F(PgproxyTlsBothLegs, ExpiredProxyCertificateFailsTheHandshakeOnly) {
  ProxyProcess proxy(pg(), client_leg(pki().expired()) + server_leg_verify_full(pki().ca_cert()));
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "disable"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.describe();
  const std::string out = wait_for_output(proxy, "TLS handshake failed");
  EXPECT_NE(out.find("TLS handshake failed"), std::string::npos) << out;

  // Still serving: a plaintext client, and a TLS client that does not check the certificate.
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 'plaintext after'"}, {{"PGSSLMODE", "disable"}});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "plaintext after\n");
  r = proxy.psql(pg(), {"-At", "-c", "SELECT 'tls after'"}, libpq_tls("require", "disable"));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "tls after\n");
  ASSERT_EQ(proxy.stop(), 0);
  const std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(log.find("never"), std::string::npos) << log;
  EXPECT_NE(log.find("sql: SELECT 'tls after'"), std::string::npos) << log;
}

TEST_F(PgproxyTlsBothLegs, ClientCertificatesVerifyCa) {
  ProxyProcess proxy(pg(), both_legs() + Args{"--tls-ca", pki().ca_cert(), "--tls-client-verify", "verify-ca"});
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "disable"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate required"), std::string::npos) << r.describe();
  const std::string out = wait_for_output(proxy, "TLS handshake failed");
  EXPECT_NE(out.find("TLS handshake failed: peer did not return a certificate"), std::string::npos) << out;

  // A certificate of another CA is no better.
  r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"},
                     libpq_tls("verify-full", "disable", pki().untrusted()));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("unknown ca"), std::string::npos) << r.describe();

  r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'with a certificate'"},
                     libpq_tls("verify-full", "disable", pki().client()));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "with a certificate\n");
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_EQ(pt::read_text_file(proxy.sql_log()).find("never"), std::string::npos);
}

// verify-full: the certificate's CN must be the user of the startup packet (pki().client() is
// "pgwire"; the superuser "postgres" has the same password).
TEST_F(PgproxyTlsBothLegs, ClientCertificatesVerifyFullWantsTheUsersName) {
  ProxyProcess proxy(pg(), both_legs() + Args{"--tls-ca", pki().ca_cert(), "--tls-client-verify", "verify-full"});
  Env env = libpq_tls("verify-full", "disable", pki().client());
  env["PGUSER"] = "postgres";
  pt::CommandResult r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, env);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate authentication failed for user \"postgres\""), std::string::npos) << r.describe();

  r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT current_user"},
                     libpq_tls("verify-full", "disable", pki().client()));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "pgwire\n");
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("certificate CN \"pgwire\" is not the user \"postgres\""), std::string::npos) << out;
}

// ---- Direct TLS (PostgreSQL 17's sslnegotiation=direct) -----------------------------------

TEST_F(PgproxyTlsBothLegs, DirectTlsWithAlpnIsServedAndRecorded) {
  ProxyProcess proxy(pg(), both_legs());
  TlsClient c(proxy.port(), {.direct = true, .alpn = "postgresql", .ca_file = pki().ca_cert()});
  ASSERT_TRUE(c.handshake()) << c.error() << proxy.output();
  EXPECT_EQ(c.alpn(), "postgresql");
  EXPECT_TRUE(c.peer_is(pki().proxy().cert));
  ASSERT_EQ(c.login(pg().user(), pg().password()), "") << proxy.output();
  QueryOutcome q = c.query("SELECT 'direct ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  EXPECT_EQ(q.error, "");
  EXPECT_TRUE(q.ready);
  EXPECT_EQ(q.values, std::vector<std::string>{"direct true"});
  EXPECT_EQ(c.terminate(), "closed (close_notify)") << "pgproxy ends a TLS connection with close_notify";
  ASSERT_EQ(proxy.stop(), 0);

  const std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("sql: SELECT 'direct ' || ssl FROM pg_stat_ssl"), std::string::npos) << log;
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  bool direct = false;
  for (const std::string& l : lines_of(trace.out)) {
    if (l.find(" client leg TLS TLSv1.3 ") != std::string::npos && l.ends_with(" direct")) direct = true;
  }
  EXPECT_TRUE(direct) << trace.out;
  EXPECT_NE(trace.out.find(" server leg TLS TLSv1.3 "), std::string::npos) << trace.out;
}

// ---- Cancel and large transfers over both legs -------------------------------------------

// A CancelRequest reaches the server over pgproxy's own TLS connection, whether the client sent
// it in plaintext (libpq before 17) or inside TLS (libpq 17).
TEST_F(PgproxyTlsBothLegs, CancelRequestReachesTheServerOverTls) {
  ProxyProcess proxy(pg(), both_legs());
  TlsClient session(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
  ASSERT_TRUE(session.handshake()) << session.error();
  ASSERT_EQ(session.login(pg().user(), pg().password()), "") << proxy.output();
  ASSERT_EQ(session.backend_key().size(), 8u);
  auto key = pgwire::be::BackendKeyData::decode(pgwire::as_bytes(session.backend_key()), 0);
  ASSERT_TRUE(key.ok());
  pgwire::Buffer cancel;
  pgwire::fe::CancelRequest{key->process_id, key->secret_key}.encode(cancel);

  for (bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "CancelRequest inside TLS" : "CancelRequest in plaintext");
    ASSERT_TRUE(session.send_query("SELECT pg_sleep(30)"));
    ASSERT_TRUE(wait_until_running(pg(), "SELECT pg_sleep(30)"));
    const auto start = Clock::now();
    if (tls) {
      TlsClient c(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
      ASSERT_TRUE(c.handshake()) << c.error();
      ASSERT_TRUE(c.send(std::string(cancel.string_view())));
      c.read_to_end();
    } else {
      TcpClient c(proxy.port());
      c.send_text(cancel.string_view());
      std::string got;
      EXPECT_TRUE(c.read_to_eof(got, 10s));
      EXPECT_EQ(got, "");
    }
    QueryOutcome q = session.read_results();
    EXPECT_TRUE(q.ready);
    EXPECT_EQ(q.error, "57014 canceling statement due to user request");
    EXPECT_LT(Clock::now() - start, 10s);
  }
  EXPECT_EQ(session.query("SELECT 'still there'").values, std::vector<std::string>{"still there"});
  session.terminate();
  ASSERT_EQ(proxy.stop(), 0);
  const std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_EQ(count_of(log, "sqlstate=57014"), 2u) << log;
}

// Results and COPY data much larger than a TLS record (16 KiB) on both legs.
TEST_F(PgproxyTlsBothLegs, LargeResultsAndCopyCrossManyTlsRecords) {
  ProxyProcess proxy(pg(), both_legs());
  pt::CommandResult r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT repeat('x', 16 * 1024 * 1024 + 7)"},
                                       libpq_tls("verify-full", "disable"));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out.size(), 16u * 1024 * 1024 + 8);
  EXPECT_EQ(r.out.find_first_not_of('x'), 16u * 1024 * 1024 + 7);

  std::string script = "CREATE TEMP TABLE t (n int, s text);\nCOPY t FROM STDIN;\n";
  const std::string filler(100, 'y');
  for (int i = 0; i < 100000; ++i) script += std::to_string(i) + "\t" + filler + "\n";
  script += "\\.\nSELECT count(*), sum(n), sum(length(s)) FROM t;\n";
  r = psql_localhost(proxy, pg(), {"-At", "-q", "-f", "-"}, libpq_tls("verify-full", "disable"), script);
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "100000|4999950000|10000000\n");
  ASSERT_EQ(proxy.stop(), 0);
  const std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("sql: SELECT count(*), sum(n), sum(length(s)) FROM t"), std::string::npos) << log;
  EXPECT_EQ(proxy.output().find("failed"), std::string::npos) << proxy.output();
}

// ---- SIGHUP: a new certificate for new connections ----------------------------------------

TEST_F(PgproxyTlsBothLegs, SighupRotatesTheCertificateWhileSessionsRun) {
  TempDir dir;
  const pt::CertKeyPair files{dir.file("proxy.crt"), dir.file("proxy.key")};
  pt::install_file(pki().proxy().cert, files.cert, 0644, std::nullopt);
  pt::install_file(pki().proxy().key, files.key, 0600, std::nullopt);
  ProxyProcess proxy(pg(), client_leg(files) + server_leg_verify_full(pki().ca_cert()));

  // A session in the middle of a statement while the certificate changes.
  pt::CommandResult slow;
  std::thread session([&] {
    slow = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT pg_sleep(2)"}, libpq_tls("verify-full", "disable"));
  });
  EXPECT_TRUE(wait_until_running(pg(), "SELECT pg_sleep(2)")) << "the session never got to its statement";
  {
    TlsClient before(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    ASSERT_TRUE(before.handshake()) << before.error();
    EXPECT_TRUE(before.peer_is(pki().proxy().cert));
  }

  pt::install_file(pki().server().cert, files.cert, 0644, std::nullopt);
  pt::install_file(pki().server().key, files.key, 0600, std::nullopt);
  proxy.signal(SIGHUP);
  std::string out = wait_for_output(proxy, "SIGHUP: reloaded the certificate and key for clients");
  EXPECT_NE(out.find("SIGHUP: reloaded the certificate and key for clients (" + files.cert + ")"), std::string::npos)
      << out;
  {
    TlsClient after(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    ASSERT_TRUE(after.handshake()) << after.error();
    EXPECT_TRUE(after.peer_is(pki().server().cert)) << "a new connection gets the new certificate";
    EXPECT_FALSE(after.peer_is(pki().proxy().cert));
  }
  EXPECT_EQ(tls_query(proxy.port(), pg(), "SELECT 'new certificate'"), "new certificate");

  session.join();
  EXPECT_TRUE(slow.ok()) << "the old session finishes: " << slow.describe();
  EXPECT_EQ(slow.out, "\n");

  // A file that does not load: the previous certificate stays.
  std::ofstream(files.cert, std::ios::trunc) << "garbage, not a PEM certificate\n";
  proxy.signal(SIGHUP);
  out = wait_for_output(proxy, "SIGHUP: keeping the previous certificate and key for clients");
  EXPECT_NE(out.find("SIGHUP: keeping the previous certificate and key for clients: --tls-cert " + files.cert),
            std::string::npos)
      << out;
  {
    TlsClient kept(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    ASSERT_TRUE(kept.handshake()) << kept.error();
    EXPECT_TRUE(kept.peer_is(pki().server().cert));
  }
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'after the bad file'"}, libpq_tls("verify-full", "disable"));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "after the bad file\n");
  ASSERT_EQ(proxy.stop(), 0);
  const std::string log = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(log.find("sql: SELECT pg_sleep(2)"), std::string::npos) << log;
  EXPECT_NE(log.find("sql: SELECT 'after the bad file'"), std::string::npos) << log;
}

// A session whose client handshake was made with the old certificate, and whose server
// handshake finishes after SIGHUP installed the server's own certificate: the client's channel
// binding hashes the old one, so SCRAM-SHA-256-PLUS must still be removed for it. (The server
// connection goes through a relay that holds it until the new certificate is in.)
TEST_F(PgproxyTlsBothLegs, SighupDuringAStartupKeepsTheSessionsChannelBindingDecision) {
  TempDir dir;
  const pt::CertKeyPair files{dir.file("proxy.crt"), dir.file("proxy.key")};
  pt::install_file(pki().proxy().cert, files.cert, 0644, std::nullopt);
  pt::install_file(pki().proxy().key, files.key, 0600, std::nullopt);
  GatedRelay relay(pg().port());
  ProxyProcess proxy(pt::ProxyOptions{"127.0.0.1:" + std::to_string(relay.port()),
                                      client_leg(files) + server_leg_verify_full(pki().ca_cert()),
                                      {},
                                      {},
                                      {}});
  pt::CommandResult r;
  std::thread client([&] {
    r = psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "require"));
  });
  // pgproxy connects to the server once the client's handshake and startup packet are in.
  const bool accepted = relay.wait_accepted(10s);
  EXPECT_TRUE(accepted) << proxy.output();
  pt::install_file(pki().server().cert, files.cert, 0644, std::nullopt);
  pt::install_file(pki().server().key, files.key, 0600, std::nullopt);
  proxy.signal(SIGHUP);
  std::string out = wait_for_output(proxy, "SIGHUP: reloaded the certificate and key for clients");
  EXPECT_NE(out.find("SIGHUP: reloaded the certificate and key for clients"), std::string::npos) << out;
  relay.open();
  client.join();
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("server did not offer an authentication method that supports channel binding"),
            std::string::npos)
      << "libpq hashed pgproxy's old certificate; the server must not be asked to check that binding: " << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  out = proxy.output();
  EXPECT_NE(out.find("SCRAM-SHA-256-PLUS removed"), std::string::npos) << out;
}

// ---- --tls-keylog -------------------------------------------------------------------------

TEST_F(PgproxyTlsBothLegs, KeylogFileGetsBothLegsSecretsPrivately) {
  TempDir dir;
  const std::string keylog = dir.file("keys.log");
  ProxyProcess proxy(pg(), both_legs() + Args{"--tls-keylog", keylog});
  EXPECT_NE(proxy.output().find("warning: --tls-keylog: the TLS secrets of every connection go to " + keylog),
            std::string::npos)
      << proxy.output();
  EXPECT_EQ(file_mode(keylog), 0600u);
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", kSslOfThisBackend}, libpq_tls("verify-full", "disable"));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "t\n");
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_EQ(file_mode(keylog), 0600u);
  const std::string keys = pt::read_text_file(keylog);
  // One handshake per leg, each with its own client random.
  size_t traffic = 0;
  std::vector<std::string> randoms;
  for (const std::string& l : lines_of(keys)) {
    if (!l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) continue;
    ++traffic;
    randoms.push_back(l.substr(24, 64));
  }
  EXPECT_EQ(traffic, 2u) << keys;
  if (randoms.size() == 2) {
    EXPECT_NE(randoms[0], randoms[1]);
  }
  // The secrets go to the key log only.
  EXPECT_EQ(pt::read_text_file(proxy.capture()).find("TRAFFIC_SECRET"), std::string::npos);
  EXPECT_EQ(proxy.output().find("TRAFFIC_SECRET"), std::string::npos);
}

// ---- Client leg problems that end before a server is needed ------------------------------

// pgproxy in front of a port where nothing listens: a session that got as far as opening the
// server connection would say "cannot connect to the server".
pt::ProxyOptions without_server(Args extra) {
  return {"127.0.0.1:" + std::to_string(pt::pick_free_port()), std::move(extra), {}, {}, {}};
}

Args client_leg_only() { return client_leg(pki().proxy()) + server_leg_verify_full(pki().ca_cert()); }

// A client that gets 'S' and goes on in plaintext: not a TLS record, so the handshake fails and
// the connection is closed without a plaintext answer.
TEST(PgproxyTlsClientLeg, PlaintextAfterSslRequestAcceptedClosesTheConnection) {
  ProxyProcess proxy(without_server(client_leg_only()));
  TcpClient c(proxy.port());
  c.send_text(ssl_request());
  ASSERT_EQ(c.read_some(1), "S");
  c.send_text(startup_message("pgwire"));
  std::string got;
  EXPECT_TRUE(c.read_to_eof(got, 5s)) << "the connection stays open";
  // At most a TLS alert record (content type 21), never a protocol message.
  if (!got.empty()) {
    EXPECT_EQ(got[0], '\x15') << "not a TLS alert: " << got;
  }
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("TLS handshake failed"), std::string::npos) << out;
  EXPECT_EQ(out.find("connect to the server"), std::string::npos) << out;
}

// A handshake that stops halfway is cut off at --startup-timeout, and holds up nobody meanwhile.
TEST(PgproxyTlsClientLeg, HalfAHandshakeIsClosedAtTheStartupTimeout) {
  ProxyProcess proxy(without_server(client_leg_only() + Args{"--startup-timeout", "1"}));
  const std::string hello = client_hello();
  ASSERT_GT(hello.size(), 40u);
  const auto start = Clock::now();
  TcpClient c(proxy.port());
  c.send_text(ssl_request());
  ASSERT_EQ(c.read_some(1), "S");
  c.send_text(hello.substr(0, hello.size() / 3));
  {
    TlsClient other(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    EXPECT_TRUE(other.handshake()) << other.error();
    EXPECT_TRUE(other.peer_is(pki().proxy().cert));
  }
  std::string got;
  EXPECT_TRUE(c.read_to_eof(got, 10s)) << "still open after 10 s";
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 950ms);
  EXPECT_LT(took, 4s);
  EXPECT_EQ(got, "");
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_EQ(proxy.output().find("connect to the server"), std::string::npos) << proxy.output();
}

TEST(PgproxyTlsClientLeg, DirectTlsWithoutAlpnIsRefused) {
  ProxyProcess proxy(without_server(client_leg_only()));
  TlsClient c(proxy.port(), {.direct = true, .alpn = "", .ca_file = pki().ca_cert()});
  // TLS 1.3: the client is done with its handshake before pgproxy has read its Finished; the
  // refusal comes as the end of the connection, not as a protocol message.
  if (c.handshake()) {
    std::string e = c.login("pgwire", "pgwire-secret");
    EXPECT_TRUE(e.starts_with("closed") || e.starts_with("read: ")) << e;
  }
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("direct TLS connection without ALPN \"postgresql\" refused"), std::string::npos) << out;
  EXPECT_EQ(out.find("connect to the server"), std::string::npos) << out;
}

// TLS 1.2 is the oldest accepted by default, as PostgreSQL; --tls-min-version TLSv1.3 refuses it.
TEST(PgproxyTlsClientLeg, MinVersion) {
  for (bool tls13_only : {false, true}) {
    SCOPED_TRACE(tls13_only ? "--tls-min-version TLSv1.3" : "default");
    ProxyProcess proxy(
        without_server(client_leg_only() + (tls13_only ? Args{"--tls-min-version", "TLSv1.3"} : Args{})));
    TlsClient old(proxy.port(),
                  {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert(), .max_version = TLS1_2_VERSION});
    if (tls13_only) {
      EXPECT_FALSE(old.handshake());
      EXPECT_NE(old.error().find("protocol version"), std::string::npos) << old.error();
    } else {
      ASSERT_TRUE(old.handshake()) << old.error();
      EXPECT_EQ(old.version(), "TLSv1.2");
    }
    TlsClient current(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    ASSERT_TRUE(current.handshake()) << current.error();
    EXPECT_EQ(current.version(), "TLSv1.3");
    ASSERT_EQ(proxy.stop(), 0);
    EXPECT_EQ(count_of(proxy.output(), "TLS handshake failed"), tls13_only ? 1u : 0u) << proxy.output();
  }
}

// GSSENCRequest is always answered N; the client may then ask for TLS.
TEST(PgproxyTlsClientLeg, GssEncRequestIsRefusedAndSslRequestThenAccepted) {
  ProxyProcess proxy(without_server(client_leg_only()));
  TcpClient c(proxy.port());
  pgwire::Buffer b;
  pgwire::fe::GssEncRequest{}.encode(b);
  c.send_text(b.string_view());
  EXPECT_EQ(c.read_some(1), "N");
  c.send_text(ssl_request());
  EXPECT_EQ(c.read_some(1), "S");
  ASSERT_EQ(proxy.stop(), 0);
}

// An SSLRequest inside TLS is a protocol violation, as in PostgreSQL.
TEST(PgproxyTlsClientLeg, SslRequestInsideTlsIsAProtocolViolation) {
  ProxyProcess proxy(without_server(client_leg_only()));
  TlsClient c(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
  ASSERT_TRUE(c.handshake()) << c.error();
  ASSERT_TRUE(c.send(ssl_request()));
  std::optional<BackendMessage> m = c.next_message();
  ASSERT_TRUE(m.has_value()) << c.error();
  ASSERT_EQ(m->type, 'E');
  auto err = pgwire::be::ErrorResponse::decode(m->bytes(), 0);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->sqlstate(), "08P01");
  EXPECT_NE(err->message().find("encryption request inside a TLS connection"), std::string_view::npos)
      << err->message();
  EXPECT_EQ(c.read_to_end(), "closed (close_notify)");
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_NE(proxy.output().find("protocol violation"), std::string::npos) << proxy.output();
}

// A client offering ALPN without "postgresql" is refused in the handshake, whether it opened with
// TLS or with an SSLRequest.
TEST(PgproxyTlsClientLeg, AlpnWithoutPostgresqlIsRefusedInTheHandshake) {
  ProxyProcess proxy(without_server(client_leg_only()));
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct" : "SSLRequest");
    TlsClient c(proxy.port(), {.direct = direct, .alpn = "http/1.1", .ca_file = pki().ca_cert()});
    EXPECT_FALSE(c.handshake());
    EXPECT_NE(c.error().find("no application protocol"), std::string::npos) << c.error();
  }
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_EQ(count_of(out, "TLS handshake failed"), 2u) << out;
  EXPECT_EQ(out.find("connect to the server"), std::string::npos) << out;
}

// Without --tls-cert, a ClientHello as the first bytes is refused at once: that session could not
// be logged, and a direct-TLS client never falls back to plaintext.
TEST(PgproxyTlsClientLeg, DirectTlsWithoutTlsCertIsRefused) {
  ProxyProcess proxy(without_server(server_leg_verify_full(pki().ca_cert())));
  TlsClient c(proxy.port(), {.direct = true, .alpn = "postgresql", .ca_file = pki().ca_cert()});
  EXPECT_FALSE(c.handshake());
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("direct TLS connection refused (pgproxy runs without --tls-cert)"), std::string::npos) << out;
  EXPECT_EQ(out.find("connect to the server"), std::string::npos) << out;
}

// ---- A server without TLS (SCRAM) -----------------------------------------------------------

class PgproxyTlsPlainServer : public pt::SharedServerTest<PgproxyTlsPlainServer> {
 public:
  static pt::TempPostgresOptions server_options() {
    pt::TempPostgresOptions o;
    o.host_auth = pt::HostAuth::scram_sha_256;
    return o;
  }
};

// TLS client leg, plaintext server leg: PostgreSQL without TLS accepts the 'y' of
// channel_binding=prefer, so libpq's default works.
TEST_F(PgproxyTlsPlainServer, TlsClientAndPlaintextServerWithChannelBindingPrefer) {
  ProxyProcess proxy(pg(), client_leg(pki().proxy()));
  pt::CommandResult r = psql_localhost(proxy, pg(), {"-At", "-c", kSslOfThisBackend}, libpq_tls("verify-full", ""));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "f\n") << "the server leg is plaintext";
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_NE(pt::read_text_file(proxy.sql_log()).find("sql: " + std::string(kSslOfThisBackend)), std::string::npos);
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  EXPECT_NE(trace.out.find(" client leg TLS TLSv1.3 "), std::string::npos) << trace.out;
  EXPECT_EQ(trace.out.find(" server leg TLS "), std::string::npos) << trace.out;
}

TEST_F(PgproxyTlsPlainServer, UpstreamPreferFallsBackToPlaintext) {
  ProxyProcess proxy(pg(), {"--upstream-sslmode", "prefer"});
  pt::CommandResult r = proxy.psql(pg(), {"-At", "-c", "SELECT 'prefer'"}, {{"PGSSLMODE", "disable"}});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "prefer\n");
  ASSERT_EQ(proxy.stop(), 0);
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  EXPECT_NE(trace.out.find(" server leg TLS none"), std::string::npos) << trace.out;
}

// No TLS over a Unix socket (as libpq): prefer means plaintext there, without an SSLRequest.
TEST_F(PgproxyTlsPlainServer, UpstreamPreferOverAUnixSocketIsPlaintext) {
  ProxyProcess proxy(pt::ProxyOptions{pg().socket_dir() + ":" + std::to_string(pg().port()),
                                      client_leg(pki().proxy()) + Args{"--upstream-sslmode", "prefer"},
                                      {},
                                      {},
                                      {}});
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'over the socket'"}, libpq_tls("verify-full", ""));
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "over the socket\n");
  ASSERT_EQ(proxy.stop(), 0);
  pt::CommandResult trace = pgdump_log(proxy.capture(), {"--format", "trace"});
  ASSERT_TRUE(trace.ok()) << trace.describe();
  EXPECT_NE(trace.out.find(" client leg TLS TLSv1.3 "), std::string::npos) << trace.out;
  EXPECT_EQ(trace.out.find(" server leg TLS "), std::string::npos) << trace.out;
}

// --upstream-sslmode require and a server that answers N: that session fails with 08001, the
// proxy goes on.
TEST_F(PgproxyTlsPlainServer, UpstreamRequireAgainstAServerWithoutTlsFailsTheSessionOnly) {
  ProxyProcess proxy(pg(), client_leg(pki().proxy()) + Args{"--upstream-sslmode", "require"});
  pt::CommandResult r =
      psql_localhost(proxy, pg(), {"-At", "-c", "SELECT 'never'"}, libpq_tls("verify-full", "disable"));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("does not accept TLS"), std::string::npos) << r.describe();

  // The SQLSTATE, which psql does not show for a failed connection.
  for (int i = 0; i < 2; ++i) {
    TlsClient c(proxy.port(), {.direct = false, .alpn = "postgresql", .ca_file = pki().ca_cert()});
    ASSERT_TRUE(c.handshake()) << c.error();
    std::string e = c.login(pg().user(), pg().password());
    EXPECT_TRUE(e.starts_with("08001 pgproxy could not open a TLS connection to the server")) << e;
    EXPECT_NE(e.find("does not accept TLS"), std::string::npos) << e;
    EXPECT_EQ(c.read_to_end(), "closed (close_notify)");
  }
  EXPECT_TRUE(proxy.alive());
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_EQ(count_of(out, "the server does not accept TLS, and --upstream-sslmode is require"), 3u) << out;
}

// ---- A server whose TLS handshake never finishes -----------------------------------------

// Accepts connections, answers an SSLRequest with 'S' and then says nothing more.
class SilentTlsServer {
 public:
  SilentTlsServer() {
    listen_fd_ = pt::listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~SilentTlsServer() {
    stop_ = true;
    thread_.join();
    for (int fd : accepted_) close(fd);
    close(listen_fd_);
  }
  SilentTlsServer(const SilentTlsServer&) = delete;
  SilentTlsServer& operator=(const SilentTlsServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      accepted_.push_back(fd);
      char request[8];
      size_t got = 0;
      while (got < sizeof request) {
        ssize_t n = recv(fd, request + got, sizeof request - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (got == sizeof request) (void)!::send(fd, "S", 1, MSG_NOSIGNAL);
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> accepted_;  // kept open, never answered
  std::thread thread_;
};

// "the server's TLS handshake has the same limit" (--startup-timeout): the client gets 08001.
TEST(PgproxyTlsServerLeg, HandshakeThatNeverFinishesEndsAtTheStartupTimeout) {
  SilentTlsServer server;
  ProxyProcess proxy(pt::ProxyOptions{"127.0.0.1:" + std::to_string(server.port()),
                                      {"--upstream-sslmode", "require", "--startup-timeout", "2"},
                                      {},
                                      {},
                                      {}});
  const auto start = Clock::now();
  TcpClient c(proxy.port());
  c.send_text(startup_message("pgwire"));
  std::string got;
  EXPECT_TRUE(c.read_to_eof(got, 20s)) << "still open after 20 s";
  const auto took = Clock::now() - start;
  EXPECT_NE(got.find("08001"), std::string::npos) << got;
  EXPECT_NE(got.find("timed out"), std::string::npos) << got;
  ASSERT_EQ(proxy.stop(), 0);
  const std::string out = proxy.output();
  EXPECT_NE(out.find("no TLS connection to the server 127.0.0.1:" + std::to_string(server.port()) + ": timed out"),
            std::string::npos)
      << out;
  EXPECT_GE(took, 1900ms);
  EXPECT_LT(took, 5s) << "the server's handshake took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms to time out with --startup-timeout 2\n"
                      << out;
}

// ---- Servers with a bad certificate, pgproxy with --upstream-sslmode verify-full ----------

pt::TempPostgresOptions tls_server(const pt::CertKeyPair& pair) {
  pt::TempPostgresOptions o;
  o.tls = pt::TempPostgresTls{pair.cert, pair.key, ""};
  o.hostssl_only = true;
  return o;
}

TEST(PgproxyTlsServerCertificate, ExpiredIsRefusedWithTheReason) {
  pt::TempPostgres pg(tls_server(pki().expired()));
  ProxyProcess proxy(pg, server_leg_verify_full(pki().ca_cert()));
  pt::CommandResult r = proxy.psql(pg, {"-At", "-c", "SELECT 'never'"}, {{"PGSSLMODE", "disable"}});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("certificate verify failed: certificate has expired"), std::string::npos) << r.describe();
  ASSERT_EQ(proxy.stop(), 0);
  EXPECT_NE(proxy.output().find("certificate verify failed: certificate has expired"), std::string::npos)
      << proxy.output();

  // The certificate is all that is wrong: without the check, the same server is fine.
  ProxyProcess unchecked(pg, {"--upstream-sslmode", "require"});
  r = unchecked.psql(pg, {"-At", "-c", kSslOfThisBackend}, {{"PGSSLMODE", "disable"}});
  ASSERT_TRUE(r.ok()) << r.describe() << unchecked.output();
  EXPECT_EQ(r.out, "t\n");
}

// The name checked is the host of --upstream: a name (also sent as SNI) or an address.
TEST(PgproxyTlsServerCertificate, WrongHostIsRefusedByNameAndByAddress) {
  pt::TempPostgres pg(tls_server(pki().wrong_host()));
  struct Case {
    std::string upstream;
    std::string reason;
  };
  for (const Case& c : {Case{"localhost:" + std::to_string(pg.port()), "hostname mismatch"},
                        Case{"127.0.0.1:" + std::to_string(pg.port()), "IP address mismatch"}}) {
    SCOPED_TRACE(c.upstream);
    ProxyProcess proxy(pt::ProxyOptions{c.upstream, server_leg_verify_full(pki().ca_cert()), {}, {}, {}});
    pt::CommandResult r = proxy.psql(pg, {"-At", "-c", "SELECT 'never'"}, {{"PGSSLMODE", "disable"}});
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find("certificate verify failed: " + c.reason), std::string::npos) << r.describe();
    ASSERT_EQ(proxy.stop(), 0);
    EXPECT_NE(proxy.output().find("certificate verify failed: " + c.reason), std::string::npos) << proxy.output();
  }
  // verify-ca checks the chain only.
  ProxyProcess proxy(pg, {"--upstream-sslmode", "verify-ca", "--upstream-sslrootcert", pki().ca_cert()});
  pt::CommandResult r = proxy.psql(pg, {"-At", "-c", kSslOfThisBackend}, {{"PGSSLMODE", "disable"}});
  ASSERT_TRUE(r.ok()) << r.describe() << proxy.output();
  EXPECT_EQ(r.out, "t\n");
}

// ---- cert authentication: the server sees pgproxy's --upstream-sslcert -------------------

// The client's private key never reaches pgproxy, so a `cert` line in the server's pg_hba is met
// with pgproxy's own client certificate, for every session.
TEST(PgproxyTlsCertAuth, TheServerSeesPgproxysUpstreamCertificate) {
  pt::TempPostgresOptions o;
  o.tls = pt::TempPostgresTls{pki().server().cert, pki().server().key, pki().ca_cert()};
  o.host_auth = pt::HostAuth::cert;
  pt::TempPostgres pg(o);
  const std::string sql = "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

  ProxyProcess with_cert(pg,
                         client_leg(pki().proxy()) + server_leg_verify_full(pki().ca_cert()) +
                             Args{"--upstream-sslcert", pki().client().cert, "--upstream-sslkey", pki().client().key});
  pt::CommandResult r = psql_localhost(with_cert, pg, {"-At", "-c", sql}, libpq_tls("verify-full", ""));
  ASSERT_TRUE(r.ok()) << r.describe() << with_cert.output();
  EXPECT_EQ(r.out, "pgwire|t|/CN=pgwire\n");

  // Without one, the server asks in vain, whatever certificate the client has.
  ProxyProcess without_cert(pg, client_leg(pki().proxy()) + server_leg_verify_full(pki().ca_cert()));
  r = psql_localhost(without_cert, pg, {"-At", "-c", sql}, libpq_tls("verify-full", "", pki().client()));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("connection requires a valid client certificate"), std::string::npos) << r.describe();
}

// ---- Start-up refusals --------------------------------------------------------------------

pt::CommandResult run_pgproxy(const Args& args) {
  return pt::run_command(Args{pt::tool_path("pgproxy"), "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9",
                              "--sql-log", "", "--stats-interval", "0"} +
                             args,
                         {}, 20s);
}

TEST(PgproxyTlsStartup, KeyFileReadableByOthersIsRefused) {
  TempDir dir;
  const std::string key = dir.file("open.key");
  pt::install_file(pki().proxy().key, key, 0644, std::nullopt);
  pt::CommandResult r = run_pgproxy({"--tls-cert", pki().proxy().cert, "--tls-key", key});
  EXPECT_FALSE(r.timed_out) << "pgproxy started: " << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("private key file " + key + " has group or world access (mode 0644)"), std::string::npos)
      << r.describe();
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.describe();
}

TEST(PgproxyTlsStartup, VerifyFullWithoutRootCertIsRefused) {
  pt::CommandResult r = run_pgproxy({"--upstream-sslmode", "verify-full"});
  EXPECT_FALSE(r.timed_out) << "pgproxy started: " << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("--upstream-sslmode verify-full needs --upstream-sslrootcert"), std::string::npos)
      << r.describe();
}

TEST(PgproxyTlsStartup, TlsToAUnixSocketIsRefused) {
  pt::CommandResult r = pt::run_command({pt::tool_path("pgproxy"), "--listen", "127.0.0.1:0", "--upstream", "/tmp:5432",
                                         "--sql-log", "", "--upstream-sslmode", "require"},
                                        {}, 20s);
  EXPECT_FALSE(r.timed_out) << "pgproxy started: " << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("there is no TLS over a Unix socket"), std::string::npos) << r.describe();
}

}  // namespace
