#include "tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fmt/format.h"
#include "pgwire/system.hpp"

namespace pgproxy {

namespace {

// The oldest error OpenSSL queued, as text, and the queue cleared.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? std::string(reason) : std::string(buf);
}

int protocol_version(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

// ALPN "postgresql", as PostgreSQL 17 registers it: length-prefixed.
constexpr unsigned char kAlpn[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};

// A client that offers ALPN must offer "postgresql"; one that offers none is
// let in (clients before PostgreSQL 17 send none), except over direct TLS,
// checked once the handshake is done.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpn, sizeof kAlpn, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int keylog_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void write_keylog(const SSL* ssl, const char* line) {
  const auto* fd = static_cast<const int*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keylog_index()));
  if (fd == nullptr || *fd < 0) return;
  std::string l = fmt::format("{}\n", line);
  // One short write per handshake to a local file; a failure only loses a line.
  (void)!write(*fd, l.data(), l.size());
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

const char* upstream_sslmode_name(UpstreamSslMode m) {
  switch (m) {
    case UpstreamSslMode::kDisable: return "disable";
    case UpstreamSslMode::kPrefer: return "prefer";
    case UpstreamSslMode::kRequire: return "require";
    case UpstreamSslMode::kVerifyCa: return "verify-ca";
    case UpstreamSslMode::kVerifyFull: return "verify-full";
  }
  return "?";
}

std::string key_file_problem(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return fmt::format("{}: {}", path, pgwire::errno_text(errno));
  if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", path);
  const mode_t m = st.st_mode & 07777;
  const bool ok = st.st_uid == 0 ? (m & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0 : (m & (S_IRWXG | S_IRWXO)) == 0;
  if (!ok) {
    return fmt::format(
        "private key file {} has group or world access (mode {:04o}); it must be 0600 or less, or 0640 or less "
        "if owned by root",
        path, m);
  }
  return {};
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

X509* TlsContext::certificate() const { return SSL_CTX_get0_certificate(ctx_); }

void TlsContext::set_keylog_fd(int fd) {
  keylog_fd_ = fd;
  SSL_CTX_set_ex_data(ctx_, keylog_index(), &keylog_fd_);
  SSL_CTX_set_keylog_callback(ctx_, fd < 0 ? nullptr : write_keylog);
}

std::shared_ptr<TlsContext> TlsContext::for_clients(const ClientTlsOptions& opts, std::string& error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->server_role_ = true;
  c->client_verify_ = opts.verify;
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (c->ctx_ == nullptr) {
    error = fmt::format("cannot make a TLS context: {}", openssl_error());
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  int min = protocol_version(opts.min_version);
  if (min == 0) {
    error = fmt::format("--tls-min-version {}: must be TLSv1.2 or TLSv1.3", opts.min_version);
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, min);
  // Renegotiation is refused (TLS 1.2; 1.3 has none), and compression never used.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle sessions give their read and write buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Resumption by stateless tickets only: no server-side cache to grow.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!opts.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, opts.ciphers.c_str()) != 1) {
    error = fmt::format("--tls-ciphers {}: {}", opts.ciphers, openssl_error());
    return nullptr;
  }
  if (std::string p = key_file_problem(opts.key_file); !p.empty()) {
    error = p;
    return nullptr;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1) {
    error = fmt::format("--tls-cert {}: {}", opts.cert_file, openssl_error());
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    std::string why = openssl_error();
    if (why.find("mismatch") == std::string::npos) {
      error = fmt::format("--tls-key {}: {}", opts.key_file, why);
      return nullptr;
    }
    error = fmt::format("--tls-key {} does not belong to the certificate in {}", opts.key_file, opts.cert_file);
    return nullptr;
  }
  if (opts.verify != ClientVerify::kNone) {
    if (opts.ca_file.empty()) {
      error = "--tls-client-verify needs --tls-ca (the CA of the client certificates)";
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(ctx, opts.ca_file.c_str(), nullptr) != 1) {
      error = fmt::format("--tls-ca {}: {}", opts.ca_file, openssl_error());
      return nullptr;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  return c;
}

std::shared_ptr<TlsContext> TlsContext::for_server(const ServerTlsOptions& opts, std::string& error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->server_opts_ = opts;
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) {
    error = fmt::format("cannot make a TLS context: {}", openssl_error());
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  // As libpq: TLS 1.2 at least, no renegotiation, no compression.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  // libpq's rule: with a root certificate, require verifies the chain as verify-ca does.
  bool verify = opts.mode == UpstreamSslMode::kVerifyCa || opts.mode == UpstreamSslMode::kVerifyFull ||
                (opts.mode == UpstreamSslMode::kRequire && !opts.root_cert.empty());
  if (verify) {
    if (opts.root_cert.empty()) {
      error = fmt::format(
          "--upstream-sslmode {} needs --upstream-sslrootcert (a CA file, or 'system' for the system's store)",
          upstream_sslmode_name(opts.mode));
      return nullptr;
    }
    int ok = opts.root_cert == "system" ? SSL_CTX_set_default_verify_paths(ctx)
                                        : SSL_CTX_load_verify_locations(ctx, opts.root_cert.c_str(), nullptr);
    if (ok != 1) {
      error = fmt::format("--upstream-sslrootcert {}: {}", opts.root_cert, openssl_error());
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!opts.cert_file.empty() || !opts.key_file.empty()) {
    if (opts.cert_file.empty() || opts.key_file.empty()) {
      error = "--upstream-sslcert and --upstream-sslkey go together";
      return nullptr;
    }
    if (std::string p = key_file_problem(opts.key_file); !p.empty()) {
      error = p;
      return nullptr;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1) {
      error = fmt::format("--upstream-sslcert {}: {}", opts.cert_file, openssl_error());
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      error = fmt::format("--upstream-sslkey {}: {}", opts.key_file, openssl_error());
      return nullptr;
    }
  }
  return c;
}

// --- the channel ---------------------------------------------------------------

BIO_METHOD* TlsChannel::bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgproxy session buffers");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int TlsChannel::bio_write(BIO* b, const char* data, int len) {
  auto* ch = static_cast<TlsChannel*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (ch == nullptr || ch->wire_ == nullptr) {  // only written to inside our calls
    BIO_set_retry_write(b);
    return -1;
  }
  ch->wire_->append({reinterpret_cast<const std::byte*>(data), static_cast<size_t>(len)});
  return len;
}

int TlsChannel::bio_read(BIO* b, char* out, int len) {
  auto* ch = static_cast<TlsChannel*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (ch == nullptr || ch->in_.empty()) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = std::min(ch->in_.size(), static_cast<size_t>(len));
  std::memcpy(out, ch->in_.data(), n);
  ch->in_ = ch->in_.subspan(n);
  return static_cast<int>(n);
}

long TlsChannel::bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

std::unique_ptr<TlsChannel> TlsChannel::make(std::shared_ptr<TlsContext> ctx, const std::string& sni, bool direct,
                                             std::string& error) {
  ERR_clear_error();
  std::unique_ptr<TlsChannel> ch(new TlsChannel());
  ch->ctx_ = std::move(ctx);
  ch->direct_ = direct;
  ch->ssl_ = SSL_new(ch->ctx_->get());
  BIO* bio = ch->ssl_ != nullptr ? BIO_new(bio_method()) : nullptr;
  if (bio == nullptr) {
    error = fmt::format("cannot start TLS: {}", openssl_error());
    return nullptr;
  }
  BIO_set_data(bio, ch.get());
  SSL_set_bio(ch->ssl_, bio, bio);  // one reference, owned by the SSL
  if (ch->ctx_->server_role()) {
    SSL_set_accept_state(ch->ssl_);
  } else {
    SSL_set_connect_state(ch->ssl_);
    const ServerTlsOptions& o = ch->ctx_->server_options();
    bool ip = is_ip_address(sni);
    if (!sni.empty() && !ip) {  // SSL_set_tlsext_host_name, without the macro's C cast
      SSL_ctrl(ch->ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(sni.c_str()));
    }
    if (o.mode == UpstreamSslMode::kVerifyFull) {
      int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ch->ssl_), sni.c_str())
                  : SSL_set1_host(ch->ssl_, sni.c_str());
      if (ok != 1) {
        error = fmt::format("cannot check the server's name {}: {}", sni, openssl_error());
        return nullptr;
      }
    }
  }
  return ch;
}

TlsChannel::~TlsChannel() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

namespace {
// Points the BIO at one call's input and output, and away again after it.
struct CallScope {
  CallScope(pgwire::Bytes& in, OutBuf*& wire, pgwire::Bytes cipher, OutBuf& out) : in_(in), wire_(wire) {
    in_ = cipher;
    wire_ = &out;
    ERR_clear_error();
  }
  ~CallScope() {
    in_ = {};
    wire_ = nullptr;
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  pgwire::Bytes& in_;
  OutBuf*& wire_;
};
}  // namespace

bool TlsChannel::fail(int ssl_error, const char* during) {
  state_ = State::kFailed;
  std::string why;
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    why = fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(verify));
    ERR_clear_error();
  } else if (ssl_error == SSL_ERROR_SSL) {
    why = openssl_error();
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    why = "unexpected end of the TLS stream";
  } else {
    why = fmt::format("OpenSSL error {}", ssl_error);
  }
  error_ = fmt::format("TLS {} failed: {}", during, why);
  return false;
}

bool TlsChannel::handshake() {
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    if (direct_ && ctx_->server_role()) {
      const unsigned char* alpn = nullptr;
      unsigned int len = 0;
      SSL_get0_alpn_selected(ssl_, &alpn, &len);
      if (len == 0) {
        state_ = State::kFailed;
        error_ = "direct TLS connection without ALPN \"postgresql\" refused (as PostgreSQL 17 does)";
        return false;
      }
    }
    state_ = State::kOpen;
    handshake_done_ = true;
    return true;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) return true;
  return fail(err, "handshake");
}

bool TlsChannel::start(OutBuf& wire) {
  CallScope scope(in_, wire_, {}, wire);
  return handshake();
}

bool TlsChannel::receive(pgwire::Bytes cipher, std::vector<std::byte>& buf, size_t& plain, OutBuf& wire) {
  plain = 0;
  if (state_ == State::kFailed || state_ == State::kClosed) return state_ != State::kFailed;
  CallScope scope(in_, wire_, cipher, wire);
  if (state_ == State::kHandshake && (!handshake() || state_ != State::kOpen)) return state_ != State::kFailed;
  constexpr size_t kRecord = size_t{16} * 1024;  // the most one SSL_read returns
  for (;;) {
    // Grown, never shrunk or cleared: resizing per record would zero 16 KiB
    // for every small record.
    if (buf.size() < plain + kRecord) buf.resize(std::max(buf.size() * 2, plain + kRecord));
    size_t got = 0;
    int rc = SSL_read_ex(ssl_, buf.data() + plain, kRecord, &got);
    plain += got;
    if (rc == 1) continue;
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) return true;
    if (err == SSL_ERROR_ZERO_RETURN) {
      state_ = State::kClosed;
      return true;
    }
    return fail(err, "read");
  }
}

bool TlsChannel::send(pgwire::Bytes plain, OutBuf& wire) {
  if (state_ != State::kOpen) return false;
  if (plain.empty()) return true;
  CallScope scope(in_, wire_, {}, wire);
  size_t written = 0;
  int rc = SSL_write_ex(ssl_, plain.data(), plain.size(), &written);
  if (rc == 1 && written == plain.size()) return true;
  return fail(SSL_get_error(ssl_, rc), "write");
}

void TlsChannel::close(OutBuf& wire) {
  if (close_sent_ || (state_ != State::kOpen && state_ != State::kClosed)) return;
  close_sent_ = true;
  CallScope scope(in_, wire_, {}, wire);
  (void)SSL_shutdown(ssl_);
}

std::string TlsChannel::describe() const {
  return fmt::format("{} {}", SSL_get_version(ssl_), SSL_get_cipher_name(ssl_));
}

std::string TlsChannel::peer_common_name() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return {};
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s))};
}

bool TlsChannel::peer_certificate_is(X509* cert) const {
  X509* peer = SSL_get0_peer_certificate(ssl_);
  return peer != nullptr && cert != nullptr && X509_cmp(peer, cert) == 0;
}

}  // namespace pgproxy
