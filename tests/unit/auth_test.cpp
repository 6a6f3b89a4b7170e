// Client authentication: MD5 against a value computed by hand, SCRAM-SHA-256
// against the RFC 7677 test vector, and the state machine's refusals.
#include "pgwire/auth.hpp"

#include <gtest/gtest.h>

#include <string>

#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"

namespace pgwire {
namespace {

// RFC 7677 section 3.
constexpr std::string_view kRfcUser = "user";
constexpr std::string_view kRfcPassword = "pencil";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

Bytes bytes_of(std::string_view s) { return as_bytes(s); }

// Decodes the single 'p' frame in `out`.
Frame only_frame(const Buffer& out) {
  Framer framer(Direction::kFrontend);
  // Skip the startup phase: the framer expects an untyped packet first.
  Buffer startup;
  fe::StartupMessage{kProtocol30, {{"user", "u"}}}.encode(startup);
  Bytes s = startup.view();
  EXPECT_TRUE(framer.next(s).has_frame());
  Bytes in = out.view();
  FrameResult r = framer.next(in);
  EXPECT_TRUE(r.has_frame());
  EXPECT_TRUE(in.empty()) << "more than one frame";
  return r.frame();
}

TEST(Md5Password, MatchesHandComputedValue) {
  // inner=$(printf '%s' secretpgwire | md5sum | cut -c1-32)   -> f71da8d66634ac4881936a2b56ec8ebd
  // printf '%s\x01\x02\x03\x04' "$inner" | md5sum             -> c520c2f285ad71571af5e18260aeaa7b
  const std::byte salt[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  EXPECT_EQ(md5_password_hash("pgwire", "secret", salt), "md5c520c2f285ad71571af5e18260aeaa7b");
  // printf '%sabcd' "$(printf '%s' pencilpostgres | md5sum | cut -c1-32)" | md5sum
  EXPECT_EQ(md5_password_hash("postgres", "pencil", bytes_of("abcd")), "md58a3daaa59510cdc1237e1eb10301ff1c");
}

TEST(Base64, RoundTripAndStrictness) {
  for (std::string_view s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string enc = base64_encode(bytes_of(s));
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec) << enc;
    EXPECT_EQ(as_string_view(Bytes{dec->data(), dec->size()}), s);
  }
  EXPECT_EQ(base64_encode(bytes_of("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(bytes_of("fo")), "Zm8=");
  EXPECT_FALSE(base64_decode("Zm8"));    // not a multiple of 4
  EXPECT_FALSE(base64_decode("Zm=8"));   // padding inside
  EXPECT_FALSE(base64_decode("Z==="));   // too much padding
  EXPECT_FALSE(base64_decode("Zm8*"));   // outside the alphabet
  EXPECT_FALSE(base64_decode(" Zm8="));  // no whitespace tolerance
}

TEST(Scram, Rfc7677TestVector) {
  ScramSha256Client c(kRfcUser, kRfcPassword, std::string(kRfcClientNonce));
  auto first = c.client_first();
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(*first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto final_msg = c.on_server_first(kRfcServerFirst);
  ASSERT_TRUE(final_msg) << final_msg.error().describe();
  EXPECT_EQ(*final_msg, kRfcClientFinal);
  EXPECT_FALSE(c.server_verified());
  Status st = c.on_server_final(kRfcServerFinal);
  EXPECT_TRUE(st) << st.error().describe();
  EXPECT_TRUE(c.server_verified());
}

TEST(Scram, RejectsWrongServerSignature) {
  ScramSha256Client c(kRfcUser, kRfcPassword, std::string(kRfcClientNonce));
  ASSERT_TRUE(c.client_first());
  ASSERT_TRUE(c.on_server_first(kRfcServerFirst));
  // First character changed: still valid base64, wrong signature.
  Status st = c.on_server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_FALSE(st);
  EXPECT_NE(st.error().message.find("wrong server signature"), std::string::npos);
  EXPECT_FALSE(c.server_verified());
}

TEST(Scram, RejectsServerError) {
  ScramSha256Client c(kRfcUser, kRfcPassword, std::string(kRfcClientNonce));
  ASSERT_TRUE(c.client_first());
  ASSERT_TRUE(c.on_server_first(kRfcServerFirst));
  Status st = c.on_server_final("e=invalid-proof");
  EXPECT_FALSE(st);
  EXPECT_NE(st.error().message.find("invalid-proof"), std::string::npos);
}

TEST(Scram, ValidatesServerFirst) {
  struct Case {
    std::string_view server_first;
    std::string_view why;
  };
  const Case cases[] = {
      {"r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce not ours"},
      {"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce not extended"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "zero iterations"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967296", "absurd iterations"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "negative iterations"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=40x", "junk iterations"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096", "bad salt"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096", "empty salt"},
      {"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", "wrong order"},
      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==", "no iterations"},
      {"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "mandatory extension"},
      {"", "empty"},
      {"garbage", "garbage"},
  };
  for (const Case& k : cases) {
    ScramSha256Client c(kRfcUser, kRfcPassword, std::string(kRfcClientNonce));
    ASSERT_TRUE(c.client_first());
    auto r = c.on_server_first(k.server_first);
    EXPECT_FALSE(r) << k.why;
    // Failed stays failed.
    EXPECT_FALSE(c.on_server_final(kRfcServerFinal)) << k.why;
  }
}

TEST(Scram, RandomNonceIsPrintableAndFresh) {
  ScramSha256Client a("", "pw"), b("", "pw");
  auto fa = a.client_first();
  auto fb = b.client_first();
  ASSERT_TRUE(fa);
  ASSERT_TRUE(fb);
  EXPECT_EQ(fa->rfind("n,,n=,r=", 0), 0u);
  EXPECT_EQ(fa->size(), std::string("n,,n=,r=").size() + 24);
  EXPECT_NE(*fa, *fb);
}

TEST(ClientAuthenticator, Trust) {
  ClientAuthenticator auth("u", std::nullopt);
  Buffer out;
  auto r = auth.on_message(be::Authentication{0, {}, {}}, out);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->done);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(auth.method(), "trust");
}

TEST(ClientAuthenticator, CleartextAndMd5) {
  {
    ClientAuthenticator auth("pgwire", std::string("secret"));
    Buffer out;
    auto r = auth.on_message(be::Authentication{3, {}, {}}, out);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->replied);
    Frame f = only_frame(out);
    EXPECT_EQ(f.type, 'p');
    auto pm = fe::PasswordMessage::decode(f.body, 0);
    ASSERT_TRUE(pm);
    EXPECT_EQ(pm->password, "secret");
    auto ok = auth.on_message(be::Authentication{0, {}, {}}, out);
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->done);
    EXPECT_EQ(auth.method(), "password");
  }
  {
    ClientAuthenticator auth("pgwire", std::string("secret"));
    Buffer out;
    const std::byte salt[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    auto r = auth.on_message(be::Authentication{5, salt, {}}, out);
    ASSERT_TRUE(r);
    Frame f = only_frame(out);
    auto pm = fe::PasswordMessage::decode(f.body, 0);
    ASSERT_TRUE(pm);
    EXPECT_EQ(pm->password, "md5c520c2f285ad71571af5e18260aeaa7b");
    EXPECT_EQ(auth.method(), "md5");
  }
}

TEST(ClientAuthenticator, MissingPassword) {
  for (int32_t code : {3, 5, 10}) {
    ClientAuthenticator auth("u", std::nullopt);
    Buffer out;
    const std::byte salt[] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    be::Authentication m{code, {}, {}};
    if (code == 5) m.data = salt;
    if (code == 10) m.mechanisms = {"SCRAM-SHA-256"};
    auto r = auth.on_message(m, out);
    EXPECT_FALSE(r) << code;
    EXPECT_TRUE(auth.needs_password()) << code;
    EXPECT_TRUE(out.empty());
  }
}

TEST(ClientAuthenticator, ScramExchangeWithRfcServer) {
  // The RFC's exchange, driven through the protocol messages. PostgreSQL
  // sends the SCRAM user name empty, so the proof differs from the RFC's;
  // the server side here is computed from the RFC's salt with the same
  // library, which the vector test above pins down.
  ClientAuthenticator auth("user", std::string(kRfcPassword), std::string(kRfcClientNonce));
  Buffer out;
  auto r1 = auth.on_message(be::Authentication{10, {}, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}}, out);
  ASSERT_TRUE(r1) << r1.error().describe();
  Frame f1 = only_frame(out);
  auto init = fe::SaslInitialResponse::decode(f1.body, 0);
  ASSERT_TRUE(init);
  EXPECT_EQ(init->mechanism, "SCRAM-SHA-256");
  ASSERT_TRUE(init->data);
  EXPECT_EQ(as_string_view(*init->data), "n,,n=,r=rOprNGfwEbeRWgbNEkqO");

  // AuthenticationOk before SASLFinal is refused.
  {
    ClientAuthenticator early("user", std::string(kRfcPassword), std::string(kRfcClientNonce));
    Buffer o;
    ASSERT_TRUE(early.on_message(be::Authentication{10, {}, {"SCRAM-SHA-256"}}, o));
    EXPECT_FALSE(early.on_message(be::Authentication{0, {}, {}}, o));
  }

  out.clear();
  auto r2 = auth.on_message(be::Authentication{11, as_bytes(kRfcServerFirst), {}}, out);
  ASSERT_TRUE(r2) << r2.error().describe();
  Frame f2 = only_frame(out);
  auto resp = fe::SaslResponse::decode(f2.body, 0);
  ASSERT_TRUE(resp);
  std::string_view client_final = as_string_view(resp->data);
  EXPECT_EQ(client_final.rfind("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=", 0), 0u);

  // The same computation with n= empty gives the server's signature.
  ScramSha256Client mirror("", kRfcPassword, std::string(kRfcClientNonce));
  ASSERT_TRUE(mirror.client_first());
  auto mirror_final = mirror.on_server_first(kRfcServerFirst);
  ASSERT_TRUE(mirror_final);
  EXPECT_EQ(*mirror_final, client_final);

  // A wrong signature fails the login...
  {
    ClientAuthenticator copy("user", std::string(kRfcPassword), std::string(kRfcClientNonce));
    Buffer o;
    ASSERT_TRUE(copy.on_message(be::Authentication{10, {}, {"SCRAM-SHA-256"}}, o));
    ASSERT_TRUE(copy.on_message(be::Authentication{11, as_bytes(kRfcServerFirst), {}}, o));
    EXPECT_FALSE(copy.on_message(be::Authentication{12, as_bytes(kRfcServerFinal), {}}, o));
  }
}

TEST(ClientAuthenticator, RefusesUnsupportedAndOutOfOrder) {
  Buffer out;
  {
    ClientAuthenticator auth("u", std::string("pw"));
    EXPECT_FALSE(auth.on_message(be::Authentication{7, {}, {}}, out));  // GSS
  }
  {
    ClientAuthenticator auth("u", std::string("pw"));
    EXPECT_FALSE(auth.on_message(be::Authentication{10, {}, {"SCRAM-SHA-256-PLUS"}}, out));
  }
  {
    ClientAuthenticator auth("u", std::string("pw"));
    EXPECT_FALSE(auth.on_message(be::Authentication{11, as_bytes(kRfcServerFirst), {}}, out));
  }
  {
    ClientAuthenticator auth("u", std::string("pw"));
    EXPECT_FALSE(auth.on_message(be::Authentication{12, as_bytes(kRfcServerFinal), {}}, out));
  }
  {
    ClientAuthenticator auth("u", std::string("pw"));
    const std::byte short_salt[] = {std::byte{1}};
    EXPECT_FALSE(auth.on_message(be::Authentication{5, short_salt, {}}, out));
  }
  {
    ClientAuthenticator auth("u", std::string("pw"));
    ASSERT_TRUE(auth.on_message(be::Authentication{0, {}, {}}, out));
    EXPECT_FALSE(auth.on_message(be::Authentication{3, {}, {}}, out));
  }
}

}  // namespace
}  // namespace pgwire
