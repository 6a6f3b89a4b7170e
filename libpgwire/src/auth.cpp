#include "pgwire/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>

#include <fmt/format.h>

namespace pgwire {

namespace {

constexpr size_t kSha256Size = 32;
using Digest = std::array<unsigned char, kSha256Size>;

// libpq's SCRAM_RAW_NONCE_LEN: 18 random bytes, 24 base64 characters.
constexpr size_t kRawNonceLength = 18;

const unsigned char* uc(const void* p) { return static_cast<const unsigned char*>(p); }

bool sha256(const void* data, size_t size, Digest& out) {
  unsigned int len = 0;
  return EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) == 1 && len == out.size();
}

bool hmac_sha256(const void* key, size_t key_size, std::string_view data, Digest& out) {
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key, static_cast<int>(key_size), uc(data.data()), data.size(), out.data(), &len) !=
             nullptr &&
         len == out.size();
}

// Lower-case hex of an MD5 digest of `data`; empty if libcrypto fails.
std::string md5_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) != 1 || len != 16) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return out;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// RFC 5802 "printable": %x21-2B / %x2D-7E (no comma).
bool is_nonce_char(char c) { return c >= 0x21 && c <= 0x7e && c != ','; }

// saslname: ',' and '=' escaped as =2C and =3D.
std::string sasl_name(std::string_view user) {
  std::string out;
  out.reserve(user.size());
  for (char c : user) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out += c;
    }
  }
  return out;
}

// Splits "a=x,b=y" into attributes in order; false if one is not "<letter>=...".
bool split_attributes(std::string_view msg, std::vector<std::pair<char, std::string_view>>& out) {
  out.clear();
  size_t pos = 0;
  while (pos <= msg.size()) {
    size_t comma = msg.find(',', pos);
    std::string_view part = msg.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (part.size() < 2 || part[1] != '=' ||
        !((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z')))
      return false;
    out.emplace_back(part[0], part.substr(2));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return !out.empty();
}

// Wipes key material on scope exit.
template <class T>
struct Cleanse {
  T& v;
  ~Cleanse() { OPENSSL_cleanse(v.data(), v.size()); }
};

}  // namespace

std::string md5_password_hash(std::string_view user, std::string_view password, Bytes salt) {
  std::string inner_input;
  inner_input.reserve(password.size() + user.size());
  inner_input.append(password);
  inner_input.append(user);
  std::string inner = md5_hex(inner_input);
  OPENSSL_cleanse(inner_input.data(), inner_input.size());
  if (inner.empty()) return {};
  inner.append(as_string_view(salt));
  std::string outer = md5_hex(inner);
  OPENSSL_cleanse(inner.data(), inner.size());
  if (outer.empty()) return {};
  return "md5" + outer;
}

std::string base64_encode(Bytes data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), uc(data.data()), static_cast<int>(data.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      // Padding: at most two, and only at the very end.
      if (i + 2 < text.size()) return std::nullopt;
      ++padding;
    } else if (padding > 0 || !is_base64_char(c)) {
      return std::nullopt;
    }
  }
  std::vector<std::byte> out(text.size() / 4 * 3);
  if (text.empty()) return out;
  // EVP_DecodeBlock counts the padding as zero bytes; we drop them after.
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), uc(text.data()), static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - padding);
  return out;
}

// ---------------------------------------------------------------------------
// SCRAM-SHA-256
//
// SASLprep (RFC 4013) maps and NFKC-normalizes the password. For printable
// ASCII it changes nothing, which covers the passwords tests and most
// deployments use; libpq itself falls back to the raw bytes when the password
// is not valid UTF-8. We always use the raw bytes: a non-ASCII password that
// SASLprep would change (odd spaces, compatibility characters) fails to log
// in, with the server's ordinary "password authentication failed" error.

ScramSha256Client::ScramSha256Client(std::string_view user, std::string_view password, std::string client_nonce)
    : user_(user), password_(password), client_nonce_(std::move(client_nonce)) {}

ScramSha256Client::~ScramSha256Client() {
  OPENSSL_cleanse(password_.data(), password_.size());
  OPENSSL_cleanse(server_signature_.data(), server_signature_.size());
}

Error ScramSha256Client::fail(Errc code, std::string message) {
  state_ = State::kFailed;
  return Error{code, 0, "SCRAM: " + std::move(message)};
}

Result<std::string> ScramSha256Client::client_first() {
  if (state_ != State::kStart) return fail(Errc::kUnexpected, "client-first-message requested twice");
  if (client_nonce_.empty()) {
    std::array<unsigned char, kRawNonceLength> raw{};
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
      return fail(Errc::kIo, "RAND_bytes failed to produce a nonce");
    client_nonce_ = base64_encode(Bytes{reinterpret_cast<const std::byte*>(raw.data()), raw.size()});
  }
  for (char c : client_nonce_)
    if (!is_nonce_char(c)) return fail(Errc::kBadValue, "client nonce holds a character SCRAM forbids");
  client_first_bare_ = "n=" + sasl_name(user_) + ",r=" + client_nonce_;
  state_ = State::kSentFirst;
  return "n,," + client_first_bare_;
}

Result<std::string> ScramSha256Client::on_server_first(std::string_view server_first) {
  if (state_ != State::kSentFirst) return fail(Errc::kUnexpected, "server-first-message out of order");
  std::vector<std::pair<char, std::string_view>> attrs;
  if (!split_attributes(server_first, attrs)) return fail(Errc::kBadValue, "malformed server-first-message");
  if (attrs[0].first == 'm') return fail(Errc::kUnsupported, "server demands an unsupported SCRAM extension (m=)");
  if (attrs.size() < 3 || attrs[0].first != 'r' || attrs[1].first != 's' || attrs[2].first != 'i')
    return fail(Errc::kBadValue, "server-first-message must be r=...,s=...,i=...");

  std::string_view nonce = attrs[0].second;
  if (nonce.size() <= client_nonce_.size() || nonce.substr(0, client_nonce_.size()) != client_nonce_)
    return fail(Errc::kBadValue, "server nonce does not extend the client nonce");
  for (char c : nonce)
    if (!is_nonce_char(c)) return fail(Errc::kBadValue, "server nonce holds a character SCRAM forbids");

  auto salt = base64_decode(attrs[1].second);
  if (!salt || salt->empty()) return fail(Errc::kBadValue, "salt is not valid base64 or is empty");

  std::string_view iter_text = attrs[2].second;
  uint64_t iterations = 0;
  auto [end, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), iterations);
  if (ec != std::errc() || end != iter_text.data() + iter_text.size() || iter_text.empty())
    return fail(Errc::kBadValue, "iteration count is not a number");
  if (iterations < 1 || iterations > kMaxScramIterations)
    return fail(Errc::kBadValue, fmt::format("iteration count {} outside 1..{}", iterations, kMaxScramIterations));

  // SaltedPassword := Hi(Normalize(password), salt, i)
  Digest salted{};
  Cleanse<Digest> wipe_salted{salted};
  if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()), uc(salt->data()),
                        static_cast<int>(salt->size()), static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(salted.size()), salted.data()) != 1)
    return fail(Errc::kIo, "PBKDF2 failed");

  const std::string without_proof = "c=biws,r=" + std::string(nonce);  // biws = base64("n,,")
  const std::string auth_message = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;

  Digest client_key{}, stored_key{}, client_signature{}, server_key{}, server_signature{};
  Cleanse<Digest> w1{client_key}, w2{stored_key}, w3{client_signature}, w4{server_key};
  if (!hmac_sha256(salted.data(), salted.size(), "Client Key", client_key) ||
      !sha256(client_key.data(), client_key.size(), stored_key) ||
      !hmac_sha256(stored_key.data(), stored_key.size(), auth_message, client_signature) ||
      !hmac_sha256(salted.data(), salted.size(), "Server Key", server_key) ||
      !hmac_sha256(server_key.data(), server_key.size(), auth_message, server_signature))
    return fail(Errc::kIo, "HMAC-SHA-256 failed");

  Digest proof{};
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ client_signature[i];
  const auto* sig = reinterpret_cast<const std::byte*>(server_signature.data());
  server_signature_.assign(sig, sig + server_signature.size());

  state_ = State::kSentFinal;
  return without_proof + ",p=" + base64_encode(Bytes{reinterpret_cast<const std::byte*>(proof.data()), proof.size()});
}

Status ScramSha256Client::on_server_final(std::string_view server_final) {
  if (state_ != State::kSentFinal) return fail(Errc::kUnexpected, "server-final-message out of order");
  std::vector<std::pair<char, std::string_view>> attrs;
  if (!split_attributes(server_final, attrs)) return fail(Errc::kBadValue, "malformed server-final-message");
  if (attrs[0].first == 'e') return fail(Errc::kBadValue, "server reports: " + std::string(attrs[0].second));
  if (attrs[0].first != 'v') return fail(Errc::kBadValue, "server-final-message must start with v=");
  auto sig = base64_decode(attrs[0].second);
  if (!sig || sig->size() != server_signature_.size() ||
      CRYPTO_memcmp(sig->data(), server_signature_.data(), sig->size()) != 0)
    return fail(Errc::kBadValue, "wrong server signature: the server does not know the password");
  state_ = State::kDone;
  return {};
}

// ---------------------------------------------------------------------------
// ClientAuthenticator

ClientAuthenticator::ClientAuthenticator(std::string user, std::optional<std::string> password,
                                         std::string scram_nonce_for_tests)
    : user_(std::move(user)), password_(std::move(password)), scram_nonce_(std::move(scram_nonce_for_tests)) {}

ClientAuthenticator::~ClientAuthenticator() {
  if (!password_) return;
  std::string& secret = *password_;
  OPENSSL_cleanse(secret.data(), secret.size());
}

Error ClientAuthenticator::fail(Errc code, std::string message) {
  failed_ = true;
  return Error{code, 0, std::move(message)};
}

Result<AuthStep> ClientAuthenticator::need_password(const char* method) {
  needs_password_ = true;
  return fail(Errc::kUnsupported,
              fmt::format("the server requested {} authentication but no password was supplied", method));
}

Result<AuthStep> ClientAuthenticator::on_message(const be::Authentication& msg, Buffer& out) {
  if (failed_) return Error{Errc::kUnexpected, 0, "authentication already failed"};
  if (done_) return fail(Errc::kUnexpected, "authentication request after AuthenticationOk");
  switch (static_cast<AuthCode>(msg.code)) {
    case AuthCode::kOk:
      // A server that started SCRAM must prove it knows the password before
      // accepting us; skipping SASLFinal would let an impostor through.
      if (scram_ && !scram_->server_verified())
        return fail(Errc::kUnexpected, "AuthenticationOk before the SCRAM exchange completed");
      if (method_.empty()) method_ = "trust";
      done_ = true;
      return AuthStep{true, false};

    case AuthCode::kCleartextPassword: {
      if (!method_.empty()) return fail(Errc::kUnexpected, "second password request");
      method_ = "password";
      if (!password_) return need_password("password");
      fe::PasswordMessage{*password_}.encode(out);
      return AuthStep{false, true};
    }

    case AuthCode::kMd5Password: {
      if (!method_.empty()) return fail(Errc::kUnexpected, "second password request");
      method_ = "md5";
      if (!password_) return need_password("md5");
      if (msg.data.size() != 4) return fail(Errc::kBadValue, "MD5 request without a 4-byte salt");
      std::string hash = md5_password_hash(user_, *password_, msg.data);
      if (hash.empty()) return fail(Errc::kIo, "MD5 failed (libcrypto)");
      fe::PasswordMessage{hash}.encode(out);
      return AuthStep{false, true};
    }

    case AuthCode::kSasl: {
      if (!method_.empty()) return fail(Errc::kUnexpected, "second SASL request");
      bool offered = false;
      for (std::string_view m : msg.mechanisms) offered = offered || m == "SCRAM-SHA-256";
      if (!offered) {
        std::string list;
        for (std::string_view m : msg.mechanisms) list += (list.empty() ? "" : ", ") + std::string(m);
        return fail(Errc::kUnsupported, "no supported SASL mechanism offered (server offers: " + list + ")");
      }
      method_ = "SCRAM-SHA-256";
      if (!password_) return need_password("SCRAM-SHA-256");
      scram_ = std::make_unique<ScramSha256Client>("", *password_, scram_nonce_);
      auto first = scram_->client_first();
      if (!first) return fail(first.error().code, first.error().message);
      fe::SaslInitialResponse{"SCRAM-SHA-256", as_bytes(*first)}.encode(out);
      return AuthStep{false, true};
    }

    case AuthCode::kSaslContinue: {
      if (!scram_) return fail(Errc::kUnexpected, "SASLContinue without a SASL exchange");
      auto final_msg = scram_->on_server_first(as_string_view(msg.data));
      if (!final_msg) return fail(final_msg.error().code, final_msg.error().message);
      fe::SaslResponse{as_bytes(*final_msg)}.encode(out);
      return AuthStep{false, true};
    }

    case AuthCode::kSaslFinal: {
      if (!scram_) return fail(Errc::kUnexpected, "SASLFinal without a SASL exchange");
      Status st = scram_->on_server_final(as_string_view(msg.data));
      if (!st) return fail(st.error().code, st.error().message);
      return AuthStep{false, false};
    }

    case AuthCode::kKerberosV5:
    case AuthCode::kGss:
    case AuthCode::kGssContinue:
    case AuthCode::kSspi: break;
  }
  return fail(Errc::kUnsupported, fmt::format("unsupported authentication method: {}", auth_code_name(msg.code)));
}

}  // namespace pgwire
