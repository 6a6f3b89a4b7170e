// ProxySession with TLS, over socketpairs: the test is the client and the
// server, and speaks TLS with OpenSSL directly on its sockets (not through
// pgproxy's TlsChannel), with certificates from the test PKI. What pgproxy
// must do on each leg: answer 'S' and terminate, send SSLRequest and
// originate, keep the decrypted stream exact, record the legs, rewrite only
// AuthenticationSASL, and end a session whose TLS fails with the reason.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "session_loop.hpp"
#include "test_pki.hpp"
#include "tls.hpp"

namespace pgproxy {
namespace {

using namespace pgproxy::test;  // NOLINT(google-build-using-namespace): the harness
using pgwire::test::TestPki;
using Phase = ProxySession::Phase;

// One end of a socketpair speaking TLS with plain OpenSSL, non-blocking:
// step() advances the handshake and reads what can be read.
class TlsPeer {
 public:
  // `server`: accept with `cert`; else connect, checking the chain against
  // `ca` and the name `host` when they are given.
  TlsPeer(int fd, bool server, const pgwire::test::CertKeyPair& cert, const std::string& ca = {},
          const std::string& host = {}) {
    ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (server) {
      EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, cert.cert.c_str()), 1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, cert.key.c_str(), SSL_FILETYPE_PEM), 1);
    } else if (!ca.empty()) {
      EXPECT_EQ(SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr), 1);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd);
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
      if (!host.empty()) SSL_set1_host(ssl_, host.c_str());
    }
  }
  ~TlsPeer() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  TlsPeer(const TlsPeer&) = delete;
  TlsPeer& operator=(const TlsPeer&) = delete;

  void step() {
    if (!open_ && !failed_) {
      int rc = SSL_do_handshake(ssl_);
      if (rc == 1) {
        open_ = true;
      } else {
        int err = SSL_get_error(ssl_, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          failed_ = true;
          ERR_clear_error();
        }
        return;
      }
    }
    if (!open_) return;
    char buf[16384];
    for (;;) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        got.insert(got.end(), reinterpret_cast<std::byte*>(buf), reinterpret_cast<std::byte*>(buf) + n);
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) closed_ = true;
      if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL) failed_ = true;
      ERR_clear_error();
      return;
    }
  }
  bool write(Bytes b) {
    while (!b.empty()) {
      int n = SSL_write(ssl_, b.data(), static_cast<int>(b.size()));
      if (n > 0) {
        b = b.subspan(static_cast<size_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) return false;
    }
    return true;
  }
  void close_notify() { (void)SSL_shutdown(ssl_); }
  bool open() const { return open_; }
  bool failed() const { return failed_; }
  bool closed() const { return closed_; }
  std::string version() const { return SSL_get_version(ssl_); }

  ByteVec got;  // decrypted

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool open_ = false;
  bool failed_ = false;
  bool closed_ = false;
};

std::shared_ptr<TlsContext> client_leg(const TestPki& pki) {
  ClientTlsOptions o;
  o.cert_file = pki.proxy().cert;
  o.key_file = pki.proxy().key;
  std::string error;
  auto ctx = TlsContext::for_clients(o, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

std::shared_ptr<TlsContext> server_leg(const TestPki& pki, UpstreamSslMode mode) {
  ServerTlsOptions o;
  o.mode = mode;
  if (mode == UpstreamSslMode::kVerifyFull || mode == UpstreamSslMode::kVerifyCa) o.root_cert = pki.ca_cert();
  o.host = "localhost";
  std::string error;
  auto ctx = TlsContext::for_server(o, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

const ByteVec kSslRequest = {std::byte{0},    std::byte{0},    std::byte{0},    std::byte{8},
                             std::byte{0x04}, std::byte{0xd2}, std::byte{0x16}, std::byte{0x2f}};

// SSLRequest, 'S', a handshake with the client's OpenSSL: the client's TLS is open.
void client_handshake(Loop& loop, Entry& e, TlsPeer& tls) {
  e.client.send_all(kSslRequest);
  ASSERT_TRUE(loop.until([&] { return !e.client.got.empty(); }));
  ASSERT_EQ(text(e.client.got), "S");
  e.client.manual = true;
  ASSERT_TRUE(loop.until([&] {
    tls.step();
    return tls.open() || tls.failed();
  }));
  ASSERT_TRUE(tls.open());
}

// The server leg's set-up: the client's startup packet goes out, the server
// (the test) gets exactly an SSLRequest, answers 'S', accepts TLS, and then
// gets the startup packet over it.
void accept_server_leg(Loop& loop, Entry& e, const TestPki& pki, const ByteVec& startup,
                       std::unique_ptr<TlsPeer>& server) {
  e.client.send_all(startup);
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= kSslRequest.size(); }));
  ASSERT_EQ(e.server.got, kSslRequest);
  const std::byte yes{'S'};
  e.server.send_all({&yes, 1});
  e.server.manual = true;
  server = std::make_unique<TlsPeer>(e.server.fd, true, pki.server());
  ASSERT_TRUE(loop.until([&] {
    server->step();
    return server->got.size() >= startup.size() || server->failed();
  }));
  ASSERT_EQ(server->got, startup);
}

TEST(ProxySessionTls, ClientLegIsTerminatedAndTheServerGetsThePlaintext) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.client_tls = client_leg(pki);
  Entry& e = loop.open();
  TlsPeer tls(e.client.fd, false, {}, pki.ca_cert(), "localhost");
  ASSERT_NO_FATAL_FAILURE(client_handshake(loop, e, tls));
  EXPECT_EQ(loop.connects, 0) << "no server connection before the startup packet";

  ByteVec startup = golden("frontend/startup_v30.hex");
  ByteVec query = golden("frontend/query.hex");
  ASSERT_TRUE(tls.write(startup));
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size(); }));
  EXPECT_EQ(e.server.got, startup) << "neither the SSLRequest nor TLS bytes reach the server";
  Wire greeting = auth_ok_ready();
  e.server.send_all(greeting.bytes());
  ASSERT_TRUE(loop.until([&] {
    tls.step();
    return tls.got.size() >= greeting.bytes().size();
  }));
  EXPECT_EQ(tls.got, greeting.bytes());

  ASSERT_TRUE(tls.write(query));
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size() + query.size(); }));
  // A large answer: many TLS records, more than one read's worth.
  ByteVec big = pattern(300'000, 7);
  Wire answer = W().msg('T', W().i16(0));
  for (size_t at = 0; at < big.size(); at += 30'000) {
    answer.msg('D', W().i16(1).i32(30'000).raw(pgwire::as_string_view(Bytes{big}.subspan(at, 30'000))));
  }
  answer.msg('C', W().str("SELECT 10")).msg('Z', W().byte('I'));
  // In pieces, with rounds between: the socketpair holds less than the whole.
  for (size_t at = 0; at < answer.bytes().size(); at += 16'384) {
    e.server.send_all(Bytes{answer.bytes()}.subspan(at, std::min<size_t>(16'384, answer.bytes().size() - at)));
    loop.round(0);
    tls.step();
  }
  const size_t want = greeting.bytes().size() + answer.bytes().size();
  ASSERT_TRUE(loop.until(
      [&] {
        tls.step();
        return tls.got.size() >= want;
      },
      400));
  ByteVec all = greeting.bytes();
  all.insert(all.end(), answer.bytes().begin(), answer.bytes().end());
  EXPECT_EQ(tls.got, all);

  const std::string& log = loop.batch().log;
  EXPECT_NE(log.find("user=alice db=shop query ok"), std::string::npos) << log;
  EXPECT_NE(log.find("rows=10"), std::string::npos) << log;
  auto recs = records_of(loop.batch().capture);
  // The 'S' answer, then the leg's record, then the decrypted startup packet.
  auto s_at = std::find(recs.begin(), recs.end(), "B 53");
  ASSERT_NE(s_at, recs.end());
  ASSERT_LT(s_at + 2, recs.end());
  EXPECT_EQ(s_at[1].rfind("meta client_tls=" + tls.version() + " ", 0), 0u) << s_at[1];
  EXPECT_EQ(s_at[2], "F " + pgwire::to_hex(startup));
  EXPECT_TRUE(contains(recs, "F " + pgwire::to_hex(query)));
  EXPECT_TRUE(e.session->client_tls());
  EXPECT_EQ(e.session->monitor().tracker().session().client_tls.rfind(tls.version(), 0), 0u);

  // close_notify from the client ends the session like a close.
  tls.close_notify();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_EQ(e.session->close_reason(), "client closed the TLS connection");
  EXPECT_EQ(loop.ctx.stats.tls_clients, 1u);
}

TEST(ProxySessionTls, PlaintextAfterTheAnswerFailsTheHandshakeAndEndsTheSession) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.client_tls = client_leg(pki);
  Entry& e = loop.open();
  e.client.send_all(kSslRequest);
  ASSERT_TRUE(loop.until([&] { return !e.client.got.empty(); }));
  ASSERT_EQ(text(e.client.got), "S");
  e.client.send_all(golden("frontend/startup_v30.hex"));  // not a ClientHello
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_NE(e.session->close_reason().find("TLS handshake failed"), std::string::npos) << e.session->close_reason();
  EXPECT_EQ(loop.connects, 0);
  EXPECT_EQ(loop.ctx.stats.tls_failures, 1u);
  EXPECT_EQ(loop.batch().log_lines, 0u);
}

TEST(ProxySessionTls, HandshakeThatStopsHalfwayTimesOut) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.client_tls = client_leg(pki);
  loop.ctx.startup_timeout_ms = 100;
  Entry& e = loop.open();
  e.client.send_all(kSslRequest);
  ASSERT_TRUE(loop.until([&] { return !e.client.got.empty(); }));
  // The first bytes of a ClientHello record, and then nothing.
  const ByteVec partial = {std::byte{0x16}, std::byte{0x03}, std::byte{0x01},
                           std::byte{0x02}, std::byte{0x00}, std::byte{0x01}};
  e.client.send_all(partial);
  auto start = pgwire::monotonic_ms();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }, 200));
  EXPECT_GE(pgwire::monotonic_ms() - start, 50);
  EXPECT_EQ(e.session->close_reason(), "no startup packet within the timeout");
}

TEST(ProxySessionTls, DirectTlsWithoutAlpnIsRefused) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.client_tls = client_leg(pki);
  Entry& e = loop.open();
  e.client.manual = true;
  TlsPeer tls(e.client.fd, false, {}, pki.ca_cert(), "localhost");  // no ALPN, no SSLRequest
  ASSERT_TRUE(loop.until([&] {
    tls.step();
    return e.session->done();
  }));
  EXPECT_NE(e.session->close_reason().find("ALPN"), std::string::npos) << e.session->close_reason();
  EXPECT_EQ(loop.connects, 0);
}

// The server leg: SSLRequest first, exactly; the handshake; then the client's
// startup packet, held meanwhile, arrives decrypted at the server.
TEST(ProxySessionTls, ServerLegSendsSslRequestThenTheHeldStartupOverTls) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.server_tls = server_leg(pki, UpstreamSslMode::kVerifyFull);
  loop.ctx.upstream_sslmode = UpstreamSslMode::kVerifyFull;
  loop.ctx.upstream_host = "localhost";
  Entry& e = loop.open();
  ByteVec startup = golden("frontend/startup_v30.hex");
  std::unique_ptr<TlsPeer> peer;
  ASSERT_NO_FATAL_FAILURE(accept_server_leg(loop, e, pki, startup, peer));
  TlsPeer& server = *peer;
  Wire greeting = auth_ok_ready();
  ASSERT_TRUE(server.write(greeting.bytes()));
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= greeting.bytes().size(); }));
  EXPECT_EQ(e.client.got, greeting.bytes());
  EXPECT_TRUE(e.session->server_tls());
  auto recs = records_of(loop.batch().capture);
  EXPECT_TRUE(std::any_of(recs.begin(), recs.end(), [&](const std::string& r) {
    return r.rfind("meta server_tls=" + server.version() + " ", 0) == 0;
  }));
  EXPECT_EQ(loop.ctx.stats.tls_servers, 1u);

  // The client leaves: the server gets the client's last bytes, then close_notify.
  ByteVec terminate = golden("frontend/terminate.hex");
  e.client.send_all(terminate);
  e.client.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  server.step();
  EXPECT_TRUE(server.closed()) << "close_notify before the connection was closed";
  ByteVec want = startup;
  want.insert(want.end(), terminate.begin(), terminate.end());
  EXPECT_EQ(server.got, want);
}

TEST(ProxySessionTls, ServerThatRefusesTlsUnderRequireIsReportedToTheClient) {
  const TestPki& pki = TestPki::shared();
  for (auto mode : {UpstreamSslMode::kRequire, UpstreamSslMode::kPrefer}) {
    SCOPED_TRACE(upstream_sslmode_name(mode));
    Loop loop;
    loop.ctx.server_tls = server_leg(pki, mode);
    loop.ctx.upstream_sslmode = mode;
    Entry& e = loop.open();
    ByteVec startup = golden("frontend/startup_v30.hex");
    e.client.send_all(startup);
    ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= kSslRequest.size(); }));
    const std::byte no{'N'};
    e.server.send_all({&no, 1});
    if (mode == UpstreamSslMode::kRequire) {
      ASSERT_TRUE(loop.until([&] { return !e.client.got.empty(); }));
      EXPECT_EQ(error_of(e.client.got).substr(0, 6), "08001 ");
      EXPECT_NE(error_of(e.client.got).find("does not accept TLS"), std::string::npos) << error_of(e.client.got);
      ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
      EXPECT_EQ(e.server.got, kSslRequest) << "the startup packet never went out in plaintext";
    } else {
      ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= kSslRequest.size() + startup.size(); }));
      EXPECT_EQ(ByteVec(e.server.got.begin() + 8, e.server.got.end()), startup);
      EXPECT_EQ(e.session->monitor().tracker().session().server_tls, "none");
    }
  }
}

TEST(ProxySessionTls, UnencryptedBytesAfterTheServersAnswerAreRefused) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.server_tls = server_leg(pki, UpstreamSslMode::kRequire);
  loop.ctx.upstream_sslmode = UpstreamSslMode::kRequire;
  Entry& e = loop.open();
  e.client.send_all(golden("frontend/startup_v30.hex"));
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= kSslRequest.size(); }));
  Wire injected = W().byte('S').msg('R', W().i32(0));  // CVE-2021-23222: data buffered before the handshake
  e.server.send_all(injected.bytes());
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_NE(error_of(e.client.got).find("unencrypted bytes after its answer"), std::string::npos)
      << error_of(e.client.got);
}

// A server on TLS offers SCRAM-SHA-256-PLUS; the client sees pgproxy's
// certificate, so the mechanism is removed, and the list arrives without it
// even when the server's frame comes in two pieces.
TEST(ProxySessionTls, ChannelBindingIsRemovedFromTheServersMechanisms) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.server_tls = server_leg(pki, UpstreamSslMode::kRequire);
  loop.ctx.upstream_sslmode = UpstreamSslMode::kRequire;
  Entry& e = loop.open();
  ByteVec startup = golden("frontend/startup_v30.hex");
  std::unique_ptr<TlsPeer> peer;
  ASSERT_NO_FATAL_FAILURE(accept_server_leg(loop, e, pki, startup, peer));
  TlsPeer& server = *peer;
  Wire sasl = W().msg('R', W().i32(10).str("SCRAM-SHA-256-PLUS").str("SCRAM-SHA-256").byte(0));
  const ByteVec& bytes = sasl.bytes();
  ASSERT_TRUE(server.write(Bytes{bytes}.first(9)));
  loop.round(50);
  loop.round(50);
  EXPECT_TRUE(e.client.got.empty()) << "nothing of an incomplete frame is forwarded in this phase";
  ASSERT_TRUE(server.write(Bytes{bytes}.subspan(9)));
  Wire without = W().msg('R', W().i32(10).str("SCRAM-SHA-256").byte(0));
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= without.bytes().size(); }));
  EXPECT_EQ(e.client.got, without.bytes());
  EXPECT_EQ(loop.ctx.stats.channel_binding_removed, 1u);

  // A client that says it would have bound (gs2 flag 'y') would be refused by
  // a PostgreSQL on TLS as a downgrade: pgproxy says why instead.
  Wire init = W().msg('p', W().str("SCRAM-SHA-256").i32(20).raw("y,,n=,r=0123456789ab"));
  e.client.send_all(init.bytes());
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_NE(error_of(ByteVec(e.client.got.begin() + static_cast<ptrdiff_t>(without.bytes().size()), e.client.got.end()))
                .find("channel binding cannot pass through pgproxy"),
            std::string::npos);
  server.step();
  EXPECT_EQ(server.got, startup) << "the SASLInitialResponse never reached the server";
}

TEST(ProxySessionTls, AfterAuthenticationTheServersBytesPassAsRead) {
  const TestPki& pki = TestPki::shared();
  Loop loop;
  loop.ctx.server_tls = server_leg(pki, UpstreamSslMode::kRequire);
  loop.ctx.upstream_sslmode = UpstreamSslMode::kRequire;
  Entry& e = loop.open();
  ByteVec startup = golden("frontend/startup_v30.hex");
  std::unique_ptr<TlsPeer> peer;
  ASSERT_NO_FATAL_FAILURE(accept_server_leg(loop, e, pki, startup, peer));
  TlsPeer& server = *peer;
  Wire greeting = auth_ok_ready();
  ASSERT_TRUE(server.write(greeting.bytes()));
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= greeting.bytes().size(); }));
  // Now half a frame is passed on at once: the session is out of the frame-by-frame phase.
  Wire row = W().msg('D', W().i16(1).i32(4).raw("abcd"));
  ASSERT_TRUE(server.write(Bytes{row.bytes()}.first(6)));
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= greeting.bytes().size() + 6; }));
}

TEST(TlsContext, KeyFileReadableByOthersIsRefused) {
  const TestPki& pki = TestPki::shared();
  std::string copy = pki.dir() + "/loose.key";
  pgwire::test::install_file(pki.proxy().key, copy, 0644, std::nullopt);
  EXPECT_NE(key_file_problem(copy).find("mode 0644"), std::string::npos) << key_file_problem(copy);
  ClientTlsOptions o;
  o.cert_file = pki.proxy().cert;
  o.key_file = copy;
  std::string error;
  EXPECT_FALSE(TlsContext::for_clients(o, error));
  EXPECT_NE(error.find(copy), std::string::npos) << error;
  ASSERT_EQ(chmod(copy.c_str(), 0600), 0);
  EXPECT_EQ(key_file_problem(copy), "");
  o.key_file = pki.server().key;  // another certificate's key
  EXPECT_FALSE(TlsContext::for_clients(o, error));
  EXPECT_NE(error.find("does not belong"), std::string::npos) << error;
}

TEST(TlsContext, VerifyingTheServerNeedsARootCertificate) {
  ServerTlsOptions o;
  o.mode = UpstreamSslMode::kVerifyFull;
  std::string error;
  EXPECT_FALSE(TlsContext::for_server(o, error));
  EXPECT_NE(error.find("needs --upstream-sslrootcert"), std::string::npos) << error;
}

}  // namespace
}  // namespace pgproxy
