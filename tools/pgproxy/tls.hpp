// TLS for pgproxy's two legs, with OpenSSL driven from memory.
//
// A TlsChannel does no I/O: the session hands it the ciphertext it read from
// a socket and gets the plaintext back; what OpenSSL wants to send (handshake
// messages, records, alerts) is appended to the session's OutBuf toward that
// socket, through a BIO of our own. So TLS changes nothing in the loop: the
// round's encrypted writes still go out together (SendBatch), the OutBuf's
// backpressure counts the bytes on the wire, and a handshake that wants more
// input simply waits for the next POLLIN like any other read.
#pragma once

#include <openssl/types.h>

struct bio_method_st;

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "out_buf.hpp"
#include "pgwire/bytes.hpp"

namespace pgproxy {

// --tls-client-verify: what pgproxy asks of the client's certificate.
enum class ClientVerify : uint8_t {
  kNone,        // no certificate asked for
  kVerifyCa,    // required, and signed by --tls-ca
  kVerifyFull,  // and its CN is the user name of the startup packet (pg_hba's clientcert=verify-full)
};

// The client leg: pgproxy terminates the client's TLS.
struct ClientTlsOptions {
  std::string cert_file;  // empty: no TLS toward clients (SSLRequest answered 'N')
  std::string key_file;
  std::string ca_file;  // CA of client certificates
  ClientVerify verify = ClientVerify::kNone;
  std::string min_version = "TLSv1.2";  // TLSv1.2 or TLSv1.3
  std::string ciphers;                  // TLS 1.2 cipher list; empty: OpenSSL's default
  bool enabled() const { return !cert_file.empty(); }
};

// --upstream-sslmode, with libpq's meanings.
enum class UpstreamSslMode : uint8_t { kDisable, kPrefer, kRequire, kVerifyCa, kVerifyFull };
const char* upstream_sslmode_name(UpstreamSslMode m);

// The server leg: pgproxy opens TLS to the server.
struct ServerTlsOptions {
  UpstreamSslMode mode = UpstreamSslMode::kDisable;
  std::string root_cert;  // CA file, or "system" for the system's store
  std::string cert_file;  // client certificate (pg_hba `cert`), optional
  std::string key_file;
  std::string host;  // SNI and the name verify-full checks
};

// One SSL_CTX and what was read to make it. Sessions hold a reference, so a
// context replaced on SIGHUP lives on until its last session ends.
class TlsContext {
 public:
  // Returns null and sets `error` when a file cannot be used.
  static std::shared_ptr<TlsContext> for_clients(const ClientTlsOptions& opts, std::string& error);
  static std::shared_ptr<TlsContext> for_server(const ServerTlsOptions& opts, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }
  bool server_role() const { return server_role_; }  // we accept (the client leg)
  // Our own certificate on the client leg (what a client's channel binding hashes).
  X509* certificate() const;
  const ServerTlsOptions& server_options() const { return server_opts_; }
  ClientVerify client_verify() const { return client_verify_; }
  // Also write the session secrets of every handshake to this open file
  // (NSS key log format, for Wireshark); -1 = off.
  void set_keylog_fd(int fd);

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool server_role_ = false;
  ServerTlsOptions server_opts_;
  ClientVerify client_verify_ = ClientVerify::kNone;
  int keylog_fd_ = -1;  // the key log callback reads it through the SSL_CTX
};

// A key file that others than its owner can read is refused, as PostgreSQL
// does: mode 0600 or less, or 0640 or less when owned by root. "" when fine.
std::string key_file_problem(const std::string& path);

class TlsChannel {
 public:
  enum class State : uint8_t {
    kHandshake,
    kOpen,
    kClosed,  // the peer sent close_notify
    kFailed,
  };

  // `sni`: the server name to send (client role; empty for none). `direct`:
  // the connection opened with TLS (no SSLRequest), so ALPN "postgresql" is
  // required, as PostgreSQL 17 requires it.
  static std::unique_ptr<TlsChannel> make(std::shared_ptr<TlsContext> ctx, const std::string& sni, bool direct,
                                          std::string& error);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  // Client role: starts the handshake (the ClientHello goes to `wire`).
  bool start(OutBuf& wire);
  // Ciphertext read from the socket. The decrypted bytes go to the front of
  // `buf` (grown as needed, never shrunk), `plain` of them; what must be sent
  // back (handshake, alerts) to `wire`. False when the connection failed:
  // error() says why, and what `wire` got (an alert) should still be sent.
  bool receive(pgwire::Bytes cipher, std::vector<std::byte>& buf, size_t& plain, OutBuf& wire);
  // Encrypts `plain` into `wire`. Only once open.
  bool send(pgwire::Bytes plain, OutBuf& wire);
  // Sends close_notify (once).
  void close(OutBuf& wire);

  State state() const { return state_; }
  bool open() const { return state_ == State::kOpen; }
  // The handshake finished in the last receive()/start(); reset by reading it.
  bool take_handshake_done() {
    bool d = handshake_done_;
    handshake_done_ = false;
    return d;
  }
  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384".
  std::string describe() const;
  // The peer's certificate subject CN ("" when none).
  std::string peer_common_name() const;
  // Whether the peer's certificate is `cert` (for channel binding).
  bool peer_certificate_is(X509* cert) const;
  const TlsContext& context() const { return *ctx_; }

 private:
  TlsChannel() = default;
  bool handshake();
  bool fail(int ssl_error, const char* during);
  static int bio_write(BIO* b, const char* data, int len);
  static int bio_read(BIO* b, char* out, int len);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static bio_method_st* bio_method();  // BIO_METHOD

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  State state_ = State::kHandshake;
  bool direct_ = false;
  bool handshake_done_ = false;
  bool close_sent_ = false;
  std::string error_;
  // Valid during one call: where the BIO reads from and writes to.
  pgwire::Bytes in_;
  OutBuf* wire_ = nullptr;
};

}  // namespace pgproxy
