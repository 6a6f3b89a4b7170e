#include "pgwire/trace.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"

namespace pgwire {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(PGWIRE_CORPUS_DIR);

std::vector<std::byte> hex(std::string_view h) { return from_hex(h).value(); }

// Golden file: hex digits after "# " comment lines, "#" comments at line ends.
std::vector<std::byte> golden(const std::string& rel) {
  std::ifstream in(kCorpus / "golden" / rel);
  EXPECT_TRUE(in.good()) << rel;
  std::string text;
  std::string line;
  while (std::getline(in, line)) text += line.substr(0, line.find('#')) + "\n";
  auto bytes = from_hex(text);
  EXPECT_TRUE(bytes.has_value()) << rel;
  return bytes.value_or(std::vector<std::byte>{});
}

// Frames a golden message the way it arrives and traces it.
std::string trace_golden(const std::string& rel, PasswordKind kind = PasswordKind::kPassword, TraceOptions opts = {}) {
  const bool frontend = rel.starts_with("frontend/");
  std::vector<std::byte> bytes = golden(rel);
  ConnectionFramer conn;
  std::vector<std::byte> prelude;
  if (frontend && !bytes.empty() && bytes[0] != std::byte{0}) prelude = hex("00000009 00030000 00");
  if (rel.starts_with("backend/ssl_response")) prelude = hex("00000008 04d2162f");
  if (rel.starts_with("backend/gssenc_response")) prelude = hex("00000008 04d21630");
  if (!prelude.empty()) {
    Bytes p{prelude};
    EXPECT_TRUE(conn.next(Direction::kFrontend, p).has_frame());
  }
  const Direction dir = frontend ? Direction::kFrontend : Direction::kBackend;
  Bytes in{bytes};
  FrameResult r = conn.next(dir, in);
  if (!r.has_frame()) return "<no frame>";
  return trace_frame(dir, r.frame(), kind, opts);
}

const TraceOptions kHide{true};

TEST(Trace, FrontendGoldens) {
  EXPECT_EQ(trace_golden("frontend/startup_v30.hex"),
            R"(F 56 StartupMessage 3.0 "user" "alice" "database" "shop" "application_name" "psql")");
  EXPECT_EQ(trace_golden("frontend/startup_pq_option.hex"),
            R"(F 52 StartupMessage 3.9999 "user" "alice" "_pq_.test_protocol_negotiation" "")");
  EXPECT_EQ(trace_golden("frontend/ssl_request.hex"), "F 8 SSLRequest");
  EXPECT_EQ(trace_golden("frontend/cancel_request_v30.hex"), R"(F 16 CancelRequest 12345 \x1a2b3c4d)");
  EXPECT_EQ(trace_golden("frontend/query.hex"), R"(F 14 Query "SELECT 1;")");
  EXPECT_EQ(trace_golden("frontend/parse.hex"), R"(F 26 Parse "stmt1" "SELECT $1" 1 23)");
  EXPECT_EQ(trace_golden("frontend/parse_three_params.hex"),
            R"x(F 56 Parse "ins" "INSERT INTO t VALUES ($1, $2, $3)" 3 23 25 0)x");
  EXPECT_EQ(trace_golden("frontend/bind_text.hex"), R"(F 27 Bind "" "stmt1" 1 0 1 2 '42' 1 0)");
  EXPECT_EQ(trace_golden("frontend/bind_null.hex"), R"(F 25 Bind "p1" "s2" 0 2 -1 1 'x' 0)");
  EXPECT_EQ(trace_golden("frontend/bind_binary.hex"),
            R"(F 41 Bind "" "stmt1" 1 1 2 4 \x0000002a 8 \x000000000000012c 1 1)");
  EXPECT_EQ(trace_golden("frontend/bind_mixed.hex"), R"(F 46 Bind "p1" "ins" 3 0 1 0 3 3 'abc' 4 \x0000002a -1 2 1 0)");
  EXPECT_EQ(trace_golden("frontend/describe_portal.hex"), R"(F 6 Describe P "")");
  EXPECT_EQ(trace_golden("frontend/close_statement.hex"), R"(F 11 Close S "stmt1")");
  EXPECT_EQ(trace_golden("frontend/execute_max_rows.hex"), R"(F 11 Execute "p1" 100)");
  EXPECT_EQ(trace_golden("frontend/sync.hex"), "F 4 Sync");
  EXPECT_EQ(trace_golden("frontend/copy_data.hex"), R"(F 12 CopyData '1\talice\n')");
  EXPECT_EQ(trace_golden("frontend/copy_done.hex"), "F 4 CopyDone");
  EXPECT_EQ(trace_golden("frontend/copy_fail.hex"), R"(F 20 CopyFail "aborted by user")");
  EXPECT_EQ(trace_golden("frontend/function_call_null.hex"), R"(F 30 FunctionCall 870 2 0 1 2 -1 4 \x0000002a 0)");
  EXPECT_EQ(trace_golden("frontend/password_cleartext.hex"), R"(F 11 PasswordMessage "secret")");
  EXPECT_EQ(trace_golden("frontend/sasl_initial_response.hex", PasswordKind::kSaslInitial),
            R"(F 50 SASLInitialResponse "SCRAM-SHA-256" 28 'n,,n=,r=rOprNGfwEbeRWgbNEkqO')");
  EXPECT_EQ(trace_golden("frontend/sasl_initial_response_no_data.hex", PasswordKind::kSaslInitial),
            R"(F 22 SASLInitialResponse "SCRAM-SHA-256" -1)");
  EXPECT_EQ(trace_golden("frontend/gss_response.hex", PasswordKind::kGss),
            R"(F 20 GSSResponse \x6082011006092a864886f71201020201)");
  EXPECT_EQ(trace_golden("frontend/terminate.hex"), "F 4 Terminate");
}

TEST(Trace, BackendGoldens) {
  EXPECT_EQ(trace_golden("backend/auth_ok.hex"), "B 8 AuthenticationOk");
  EXPECT_EQ(trace_golden("backend/auth_md5_password.hex"), R"(B 12 AuthenticationMD5Password \x9f3a17c4)");
  EXPECT_EQ(trace_golden("backend/auth_sasl.hex"), R"(B 42 AuthenticationSASL "SCRAM-SHA-256-PLUS" "SCRAM-SHA-256")");
  EXPECT_EQ(trace_golden("backend/auth_sasl_final.hex"),
            R"(B 54 AuthenticationSASLFinal 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')");
  EXPECT_EQ(trace_golden("backend/auth_gss_continue.hex"),
            R"(B 20 AuthenticationGSSContinue \xa10f300da0030a0100a20604)");
  EXPECT_EQ(trace_golden("backend/backend_key_data_v30.hex"), R"(B 12 BackendKeyData 12345 \x1a2b3c4d)");
  EXPECT_EQ(trace_golden("backend/parameter_status.hex"), R"(B 24 ParameterStatus "server_version" "18.0")");
  EXPECT_EQ(trace_golden("backend/ready_for_query_idle.hex"), "B 5 ReadyForQuery I");
  EXPECT_EQ(trace_golden("backend/ready_for_query_failed.hex"), "B 5 ReadyForQuery E");
  EXPECT_EQ(trace_golden("backend/row_description.hex"),
            R"(B 50 RowDescription 2 "id" 16384 1 23 4 -1 0 "name" 16384 2 25 -1 -1 0)");
  EXPECT_EQ(trace_golden("backend/data_row.hex"), "B 15 DataRow 2 1 '1' -1");
  EXPECT_EQ(trace_golden("backend/data_row_mixed.hex"), R"(B 27 DataRow 3 0 '' 4 '\x00\x00\x00*' 5 'hello')");
  EXPECT_EQ(trace_golden("backend/command_complete_insert.hex"), R"(B 15 CommandComplete "INSERT 0 1")");
  EXPECT_EQ(trace_golden("backend/error_response_undefined_table.hex"),
            R"(B 100 ErrorResponse S "ERROR" V "ERROR" C "42P01" M "relation \"x\" does not exist" P "15")"
            R"( F "parse_relation.c" L "1452" R "parserOpenTable")");
  EXPECT_EQ(trace_golden("backend/notice_response_unknown_field.hex"),
            R"(B 47 NoticeResponse S "WARNING" V "WARNING" C "01000" M "x" Z "future field")");
  EXPECT_EQ(trace_golden("backend/copy_in_response.hex"), "B 13 CopyInResponse 0 3 0 0 0");
  EXPECT_EQ(trace_golden("backend/copy_out_response.hex"), "B 11 CopyOutResponse 1 2 1 1");
  EXPECT_EQ(trace_golden("backend/copy_both_response.hex"), "B 7 CopyBothResponse 0 0");
  EXPECT_EQ(trace_golden("backend/copy_data.hex"), R"(B 10 CopyData '2\tbob\n')");
  EXPECT_EQ(trace_golden("backend/function_call_response.hex"), R"(B 12 FunctionCallResponse 4 '\x00\x00\x00\x03')");
  EXPECT_EQ(trace_golden("backend/function_call_response_null.hex"), "B 8 FunctionCallResponse -1");
  EXPECT_EQ(trace_golden("backend/negotiate_protocol_version.hex"),
            R"(B 43 NegotiateProtocolVersion 2 1 "_pq_.test_protocol_negotiation")");
  EXPECT_EQ(trace_golden("backend/notification_response.hex"), R"(B 16 NotificationResponse 4242 "jobs" "42")");
  EXPECT_EQ(trace_golden("backend/parameter_description.hex"), "B 14 ParameterDescription 2 23 25");
  EXPECT_EQ(trace_golden("backend/parse_complete.hex"), "B 4 ParseComplete");
  EXPECT_EQ(trace_golden("backend/portal_suspended.hex"), "B 4 PortalSuspended");
  EXPECT_EQ(trace_golden("backend/ssl_response_s.hex"), "B 1 EncryptionAnswer S");
  EXPECT_EQ(trace_golden("backend/gssenc_response_n.hex"), "B 1 EncryptionAnswer N");
}

TEST(Trace, EscapesKeepEverythingOnOneLine) {
  EXPECT_EQ(trace_golden("frontend/query_escapes.hex"),
            "F 34 Query \"SELECT 'a\\tb' AS \\\"q\\\";\\n-- \xc3\xa9\\x01\\xff\\\\\"");
  EXPECT_EQ(trace_quote("a\"b\\c\n\t\r"), R"("a\"b\\c\n\t\r")");
  EXPECT_EQ(trace_quote("it's \"x\"", '\''), R"('it\'s "x"')");
  EXPECT_EQ(trace_quote(std::string_view("\x00\x01\x1f\x7f", 4)), R"("\x00\x01\x1f\x7f")");
  // Valid UTF-8 passes: 2, 3 and 4 byte sequences.
  EXPECT_EQ(trace_quote("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  // Invalid UTF-8 is escaped byte by byte: overlong, surrogate, truncated, above U+10FFFF, stray continuation.
  EXPECT_EQ(trace_quote("\xc0\xaf"), R"("\xc0\xaf")");
  EXPECT_EQ(trace_quote("\xed\xa0\x80"), R"("\xed\xa0\x80")");
  EXPECT_EQ(trace_quote("\xe2\x82"), R"("\xe2\x82")");
  EXPECT_EQ(trace_quote("\xe2\x82x"), R"("\xe2\x82x")");
  EXPECT_EQ(trace_quote("\xf4\x90\x80\x80"), R"("\xf4\x90\x80\x80")");
  EXPECT_EQ(trace_quote("\x80"), R"("\x80")");
  // C1 controls (NEL) and the Unicode line separators would break lines in some viewers.
  EXPECT_EQ(trace_quote("\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9"), R"("\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9")");
}

TEST(Trace, HideVolatile) {
  EXPECT_EQ(trace_golden("frontend/cancel_request_v32.hex", PasswordKind::kPassword, kHide),
            "F 44 CancelRequest <pid> <key>");
  EXPECT_EQ(trace_golden("backend/backend_key_data_v32.hex", PasswordKind::kPassword, kHide),
            "B 40 BackendKeyData <pid> <key>");
  EXPECT_EQ(trace_golden("backend/notification_response.hex", PasswordKind::kPassword, kHide),
            R"(B 16 NotificationResponse <pid> "jobs" "42")");
  EXPECT_EQ(trace_golden("frontend/sasl_initial_response.hex", PasswordKind::kSaslInitial, kHide),
            R"(F 50 SASLInitialResponse "SCRAM-SHA-256" 28 'n,,n=,r=<nonce>')");
  EXPECT_EQ(trace_golden("backend/auth_sasl_continue.hex", PasswordKind::kPassword, kHide),
            R"(B 94 AuthenticationSASLContinue 'r=<nonce>,s=<salt>,i=4096')");
  EXPECT_EQ(trace_golden("frontend/sasl_response.hex", PasswordKind::kSasl, kHide),
            R"(F 110 SASLResponse 'c=biws,r=<nonce>,p=<proof>')");
  EXPECT_EQ(trace_golden("backend/auth_sasl_final.hex", PasswordKind::kPassword, kHide),
            R"(B 54 AuthenticationSASLFinal 'v=<signature>')");
  EXPECT_EQ(trace_golden("backend/auth_md5_password.hex", PasswordKind::kPassword, kHide),
            "B 12 AuthenticationMD5Password <salt>");
  EXPECT_EQ(trace_golden("frontend/password_md5.hex", PasswordKind::kPassword, kHide), "F 40 PasswordMessage <md5>");
  EXPECT_EQ(trace_golden("frontend/gss_response.hex", PasswordKind::kGss, kHide), "F 20 GSSResponse <token>");
  EXPECT_EQ(trace_golden("backend/auth_gss_continue.hex", PasswordKind::kPassword, kHide),
            "B 20 AuthenticationGSSContinue <token>");
  // What is not volatile is left alone.
  EXPECT_EQ(trace_golden("frontend/password_cleartext.hex", PasswordKind::kPassword, kHide),
            R"(F 11 PasswordMessage "secret")");
  EXPECT_EQ(trace_golden("frontend/parse.hex", PasswordKind::kPassword, kHide),
            R"(F 26 Parse "stmt1" "SELECT $1" 1 23)");
}

TEST(Trace, MessagesWithoutAFrame) {
  fe::Parse parse;
  parse.statement = "stmt1";
  parse.sql = "SELECT $1";
  parse.param_types = {23};
  EXPECT_EQ(trace_message(fe::Message(parse)), R"(Parse "stmt1" "SELECT $1" 1 23)");

  std::vector<std::byte> one = hex("31");
  be::DataRow row;
  row.values = {Value(Bytes{one}), std::nullopt};
  EXPECT_EQ(trace_message(be::Message(row)), "DataRow 2 1 '1' -1");

  be::ErrorResponse err;
  err.fields = {{'S', "ERROR"}, {'V', "ERROR"}, {'C', "42P01"}, {'M', "relation \"x\" does not exist"}};
  EXPECT_EQ(trace_message(be::Message(err)),
            R"(ErrorResponse S "ERROR" V "ERROR" C "42P01" M "relation \"x\" does not exist")");

  // Sync and ParameterStatus share 'S'; CopyDone is the same type in both directions.
  EXPECT_EQ(trace_message(fe::Message(fe::Sync{})), "Sync");
  EXPECT_EQ(trace_message(be::Message(CopyDone{})), "CopyDone");
  EXPECT_EQ(trace_message(fe::Message(CopyDone{})), "CopyDone");
  EXPECT_EQ(trace_message(be::Message(be::NoData{})), "NoData");
}

// Frames that cannot be decoded give one clear line instead of failing.
TEST(Trace, UndecodableFrames) {
  // Bind claiming 1000 parameters in a 13-byte body.
  auto stream = hex("00000009 00030000 00  42 00000011 00 00 0000 03e8 00000001 78 0000");
  Framer f(Direction::kFrontend);
  Bytes in{stream};
  ASSERT_TRUE(f.next(in).has_frame());
  FrameResult r = f.next(in);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(trace_frame(Direction::kFrontend, r.frame()),
            "F 17 Bind <undecodable: bad count at offset 20: Bind parameter count 1000 needs at least 4000 bytes, "
            "7 left>");

  // A 'p' frame is named after the password kind it was decoded as.
  auto sasl = hex("00000009 00030000 00  70 00000016 534352414d2d5348412d32353600 fffffffe");
  Framer g(Direction::kFrontend);
  Bytes sin{sasl};
  ASSERT_TRUE(g.next(sin).has_frame());
  r = g.next(sin);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(trace_frame(Direction::kFrontend, r.frame(), PasswordKind::kSaslInitial),
            "F 22 SASLInitialResponse <undecodable: bad length at offset 28: value length -2 is negative>");

  // An error message quoting a raw newline byte stays on one line.
  auto describe = hex("00000009 00030000 00  44 00000006 0a 00");
  Framer h(Direction::kFrontend);
  Bytes din{describe};
  ASSERT_TRUE(h.next(din).has_frame());
  r = h.next(din);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(trace_frame(Direction::kFrontend, r.frame()),
            R"(F 6 Describe <undecodable: bad value at offset 14: Describe target '\n' is not S or P>)");

  // The first piece of a frame too large to buffer.
  FramerOptions opts;
  opts.max_buffered = 0;  // the framer raises it to 10000
  Framer big(Direction::kBackend, opts);
  std::vector<std::byte> copy = hex("64 00004e24");  // CopyData, 20000-byte body
  copy.resize(5 + 100, std::byte{'x'});
  Bytes cin{copy};
  r = big.next(cin);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(trace_frame(Direction::kBackend, r.frame()), "B 20004 CopyData <partial: body bytes 0..100 of 20000>");

  // Encrypted bytes.
  Framer tls(Direction::kFrontend);
  auto hello = hex("160301020001");
  Bytes tin{hello};
  r = tls.next(tin);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(trace_frame(Direction::kFrontend, r.frame()), "F <encrypted: 6 bytes>");

  // A frame traced in the wrong direction.
  Frame answer;
  answer.kind = FrameKind::kAnswer;
  answer.type = 'S';
  EXPECT_EQ(trace_frame(Direction::kFrontend, answer),
            "F 1 EncryptionAnswer <undecodable: unexpected at offset 0: not a frontend message>");
}

void expect_one_printable_line(const std::string& s, const std::string& what) {
  EXPECT_FALSE(s.empty()) << what;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    ASSERT_TRUE(u >= 0x20 && u != 0x7f) << what << ": control byte in " << s;
  }
}

std::vector<std::byte> read_binary(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  std::transform(raw.begin(), raw.end(), out.begin(),
                 [](char ch) { return std::byte(static_cast<unsigned char>(ch)); });
  return out;
}

// Every golden file traces to one line that decodes, with and without hiding.
TEST(Trace, EveryGoldenIsOneLine) {
  int count = 0;
  for (const char* sub : {"frontend", "backend"}) {
    for (const auto& entry : fs::directory_iterator(kCorpus / "golden" / sub)) {
      std::string rel = std::string(sub) + "/" + entry.path().filename().string();
      std::string name = entry.path().filename().string();
      PasswordKind kind = PasswordKind::kPassword;
      if (name.starts_with("sasl_initial")) kind = PasswordKind::kSaslInitial;
      if (name.starts_with("sasl_response")) kind = PasswordKind::kSasl;
      if (name.starts_with("gss_response")) kind = PasswordKind::kGss;
      for (const TraceOptions& o : {TraceOptions{}, kHide}) {
        std::string line = trace_golden(rel, kind, o);
        expect_one_printable_line(line, rel);
        EXPECT_EQ(line.find("<undecodable"), std::string::npos) << rel << ": " << line;
        EXPECT_EQ(line.find("<no frame>"), std::string::npos) << rel;
      }
      ++count;
    }
  }
  EXPECT_GT(count, 80);
}

// Every malformed seed, framed and traced with every password kind, gives one
// line per frame and never throws.
TEST(Trace, MalformedSeedsTraceToOneLine) {
  for (const auto& entry : fs::directory_iterator(kCorpus / "fuzz" / "seeds")) {
    std::string name = entry.path().filename().string();
    Direction dir;
    if (name.starts_with("fe_")) {
      dir = Direction::kFrontend;
    } else if (name.starts_with("be_")) {
      dir = Direction::kBackend;
    } else {
      continue;
    }
    std::vector<std::byte> bytes = read_binary(entry.path());
    Framer f(dir);
    Bytes in{bytes};
    for (;;) {
      FrameResult r = f.next(in);
      if (!r.has_frame()) break;
      for (PasswordKind k :
           {PasswordKind::kPassword, PasswordKind::kSaslInitial, PasswordKind::kSasl, PasswordKind::kGss}) {
        for (const TraceOptions& o : {TraceOptions{}, kHide}) {
          expect_one_printable_line(trace_frame(dir, r.frame(), k, o), name);
        }
      }
    }
  }
}

}  // namespace
}  // namespace pgwire
