// Client side of PostgreSQL authentication: cleartext password, MD5 and
// SCRAM-SHA-256 (RFC 5802 / RFC 7677, without channel binding), for tools
// that open their own connections to a server (pgreplay).
//
// No I/O happens here. ClientAuthenticator is a state machine: feed it each
// Authentication ('R') message the server sends during startup; it appends
// the 'p' frame to send (if any) to a Buffer and says when the server
// accepted (AuthenticationOk). Every protocol violation by the server -- an
// unexpected request, a malformed SCRAM message, a nonce that does not extend
// ours, an absurd iteration count, a wrong server signature -- is an Error,
// never an exception or an assert.
//
// Uses OpenSSL's libcrypto (EVP, HMAC, PKCS5_PBKDF2_HMAC, RAND_bytes).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/result.hpp"

namespace pgwire {

// "md5" + hex(md5(hex(md5(password + user)) + salt)): what PostgreSQL expects
// in the PasswordMessage answering AuthenticationMD5Password.
std::string md5_password_hash(std::string_view user, std::string_view password, Bytes salt);

// Standard base64 (with padding), as SCRAM uses it.
std::string base64_encode(Bytes data);
// Strict: only the standard alphabet, length a multiple of 4, '=' only as
// padding at the end. nullopt on anything else.
std::optional<std::vector<std::byte>> base64_decode(std::string_view text);

// Largest iteration count a server may ask for. PBKDF2 with 10 million
// rounds takes a few seconds; more is a server trying to burn our CPU.
inline constexpr uint32_t kMaxScramIterations = 10'000'000;

// The client half of SCRAM-SHA-256 without channel binding (gs2 header "n,,").
//
//   ScramSha256Client c(user, password);
//   send c.client_first();                      // SASLInitialResponse data
//   auto final = c.on_server_first(msg);        // SASLResponse data, or an Error
//   Status ok = c.on_server_final(msg);         // verifies the server's signature
//
// PostgreSQL ignores the SCRAM user name (it uses the startup packet's) and
// libpq sends it empty; pass "" for a server, a name for RFC test vectors.
// The password is used as given: SASLprep is the identity for printable
// ASCII; other passwords are not normalized (see the .cpp).
class ScramSha256Client {
 public:
  // `client_nonce` empty: 18 random bytes, base64 encoded (as libpq does).
  // Tests pass the RFC's nonce.
  ScramSha256Client(std::string_view user, std::string_view password, std::string client_nonce = {});
  ~ScramSha256Client();
  ScramSha256Client(const ScramSha256Client&) = delete;
  ScramSha256Client& operator=(const ScramSha256Client&) = delete;

  // "n,,n=<user>,r=<nonce>". Fails only if the random generator does.
  Result<std::string> client_first();
  // Parses server-first-message ("r=...,s=...,i=..."), checks it, and
  // returns client-final-message ("c=biws,r=...,p=<proof>").
  Result<std::string> on_server_first(std::string_view server_first);
  // Parses server-final-message: "v=<signature>" must match what the server
  // can only compute knowing the password; "e=<error>" is an error.
  Status on_server_final(std::string_view server_final);

  bool server_verified() const { return state_ == State::kDone; }

 private:
  enum class State : uint8_t { kStart, kSentFirst, kSentFinal, kDone, kFailed };
  Error fail(Errc code, std::string message);

  State state_ = State::kStart;
  std::string user_;
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::vector<std::byte> server_signature_;  // expected, computed with the proof
};

// What a ClientAuthenticator did with one Authentication message.
struct AuthStep {
  bool done = false;     // AuthenticationOk: the server accepted us
  bool replied = false;  // a 'p' frame was appended to the output buffer
};

class ClientAuthenticator {
 public:
  // `password` nullopt: none known; a server that asks for one gets an
  // error back from on_message() (needs_password() then says so).
  ClientAuthenticator(std::string user, std::optional<std::string> password, std::string scram_nonce_for_tests = {});
  ~ClientAuthenticator();  // wipes the password
  ClientAuthenticator(const ClientAuthenticator&) = delete;
  ClientAuthenticator& operator=(const ClientAuthenticator&) = delete;

  // Feeds one Authentication message; appends the reply frame, if any, to `out`.
  Result<AuthStep> on_message(const be::Authentication& msg, Buffer& out);

  // The method the server chose: "trust", "password", "md5", "SCRAM-SHA-256"; "" before.
  std::string_view method() const { return method_; }
  // The last error was "the server wants a password and none was given".
  bool needs_password() const { return needs_password_; }

 private:
  Error fail(Errc code, std::string message);
  Result<AuthStep> need_password(const char* method);

  std::string user_;
  std::optional<std::string> password_;
  std::string scram_nonce_;
  std::string method_;
  std::unique_ptr<ScramSha256Client> scram_;
  bool done_ = false;
  bool failed_ = false;
  bool needs_password_ = false;
};

}  // namespace pgwire
