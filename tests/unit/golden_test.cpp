// Golden byte vectors: corpus/golden/{frontend,backend}/*.hex, written by hand
// from the "Message Formats" section of the protocol documentation.
//
// For every file: frame it the way it would arrive on a connection, decode it,
// check the decoded field values against the table below, and re-encode it to
// the same bytes. Then check that every type byte, authentication sub-code and
// startup request code has a file, and that streams made of the files frame
// identically however they are split.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/protocol.hpp"

namespace pgwire {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(PGWIRE_CORPUS_DIR) / "golden";

// ---------------------------------------------------------------------------
// Reading the files.

// "# " comment lines first, then hex digits with optional "# comment" tails.
std::optional<std::vector<std::byte>> read_golden(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string hex;
  std::string line;
  while (std::getline(in, line)) {
    hex += line.substr(0, line.find('#'));
    hex += '\n';
  }
  return from_hex(hex);
}

std::vector<std::byte> golden(Direction dir, const std::string& file) {
  fs::path path = kGoldenDir / (dir == Direction::kFrontend ? "frontend" : "backend") / file;
  auto bytes = read_golden(path);
  EXPECT_TRUE(bytes.has_value()) << "cannot read or parse " << path;
  return bytes.value_or(std::vector<std::byte>{});
}

std::vector<std::byte> hex(std::string_view h) { return from_hex(h).value(); }

// ---------------------------------------------------------------------------
// Helpers for the expectation tables.

using Opt = std::optional<std::string>;
using Params = std::vector<std::pair<std::string, std::string>>;

std::string str(Bytes b) { return std::string(as_string_view(b)); }
std::string bin(std::string_view h) { return str(hex(h)); }
Opt opt(const Value& v) { return v ? Opt(str(*v)) : std::nullopt; }
std::vector<Opt> opts(const std::vector<Value>& vs) {
  std::vector<Opt> out;
  out.reserve(vs.size());
  for (const Value& v : vs) out.push_back(opt(v));
  return out;
}
std::vector<std::string> strs(const std::vector<std::string_view>& vs) { return {vs.begin(), vs.end()}; }

// Declares `m` as the decoded message of type T, or fails the check.
#define DECODED_AS(T)                \
  const T* m = std::get_if<T>(&msg); \
  ASSERT_NE(m, nullptr) << "decoded as variant alternative " << msg.index() << ", not " #T

// How a golden message reaches its framer.
enum class Via : uint8_t {
  kStartup,    // untyped startup-phase packet: the first bytes of a frontend stream
  kTyped,      // typed message (frontend: after a StartupMessage)
  kSslAnswer,  // backend one-byte answer after the client's SSLRequest
  kGssAnswer,  // backend one-byte answer after the client's GSSENCRequest
};

struct FrontendGolden {
  std::string file;
  Via via;
  PasswordKind password;
  std::function<void(const fe::Message&)> check;
};

struct BackendGolden {
  std::string file;
  Via via;
  std::function<void(const be::Message&)> check;
};

const std::string kKey32 = bin("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

const std::vector<FrontendGolden>& frontend_goldens() {
  using PK = PasswordKind;
  static const std::vector<FrontendGolden> table = {
      {"startup_v30.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::StartupMessage);
         EXPECT_EQ(m->protocol, kProtocol30);
         EXPECT_EQ(Params(m->params.begin(), m->params.end()),
                   (Params{{"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}}));
         EXPECT_EQ(m->param("database"), "shop");
       }},
      {"startup_v32.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::StartupMessage);
         EXPECT_EQ(m->protocol, kProtocol32);
         EXPECT_EQ(Params(m->params.begin(), m->params.end()), (Params{{"user", "bob"}, {"database", "bob"}}));
       }},
      {"startup_pq_option.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::StartupMessage);
         EXPECT_EQ(protocol_major(m->protocol), 3);
         EXPECT_EQ(protocol_minor(m->protocol), 9999);
         EXPECT_EQ(Params(m->params.begin(), m->params.end()),
                   (Params{{"user", "alice"}, {"_pq_.test_protocol_negotiation", ""}}));
       }},
      {"ssl_request.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<fe::SslRequest>(msg)); }},
      {"gssenc_request.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<fe::GssEncRequest>(msg)); }},
      {"cancel_request_v30.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::CancelRequest);
         EXPECT_EQ(m->process_id, 12345);
         EXPECT_EQ(str(m->secret_key), bin("1a2b3c4d"));
       }},
      {"cancel_request_v32.hex", Via::kStartup, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::CancelRequest);
         EXPECT_EQ(m->process_id, 12345);
         EXPECT_EQ(str(m->secret_key), kKey32);
       }},
      {"query.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Query);
         EXPECT_EQ(m->sql, "SELECT 1;");
       }},
      {"query_empty.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Query);
         EXPECT_EQ(m->sql, "");
       }},
      {"query_escapes.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Query);
         EXPECT_EQ(m->sql, "SELECT 'a\tb' AS \"q\";\n-- \xc3\xa9\x01\xff\\");
       }},
      {"parse.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Parse);
         EXPECT_EQ(m->statement, "stmt1");
         EXPECT_EQ(m->sql, "SELECT $1");
         EXPECT_EQ(m->param_types, (std::vector<uint32_t>{23}));
       }},
      {"parse_unnamed.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Parse);
         EXPECT_EQ(m->statement, "");
         EXPECT_EQ(m->sql, "SELECT now()");
         EXPECT_TRUE(m->param_types.empty());
       }},
      {"parse_three_params.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Parse);
         EXPECT_EQ(m->statement, "ins");
         EXPECT_EQ(m->sql, "INSERT INTO t VALUES ($1, $2, $3)");
         EXPECT_EQ(m->param_types, (std::vector<uint32_t>{23, 25, 0}));
       }},
      {"bind_text.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Bind);
         EXPECT_EQ(m->portal, "");
         EXPECT_EQ(m->statement, "stmt1");
         EXPECT_EQ(m->param_formats, (std::vector<int16_t>{0}));
         EXPECT_EQ(opts(m->params), (std::vector<Opt>{"42"}));
         EXPECT_EQ(m->result_formats, (std::vector<int16_t>{0}));
       }},
      {"bind_null.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Bind);
         EXPECT_EQ(m->portal, "p1");
         EXPECT_EQ(m->statement, "s2");
         EXPECT_TRUE(m->param_formats.empty());
         EXPECT_EQ(opts(m->params), (std::vector<Opt>{std::nullopt, "x"}));
         EXPECT_EQ(m->param_format(0), 0);
         EXPECT_EQ(m->param_format(1), 0);
         EXPECT_TRUE(m->result_formats.empty());
       }},
      {"bind_binary.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Bind);
         EXPECT_EQ(m->portal, "");
         EXPECT_EQ(m->statement, "stmt1");
         EXPECT_EQ(m->param_formats, (std::vector<int16_t>{1}));
         EXPECT_EQ(opts(m->params), (std::vector<Opt>{bin("0000002a"), bin("000000000000012c")}));
         EXPECT_EQ(m->param_format(1), 1);  // one code applies to all
         EXPECT_EQ(m->result_formats, (std::vector<int16_t>{1}));
       }},
      {"bind_mixed.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Bind);
         EXPECT_EQ(m->portal, "p1");
         EXPECT_EQ(m->statement, "ins");
         EXPECT_EQ(m->param_formats, (std::vector<int16_t>{0, 1, 0}));
         EXPECT_EQ(opts(m->params), (std::vector<Opt>{"abc", bin("0000002a"), std::nullopt}));
         EXPECT_EQ(m->param_format(0), 0);
         EXPECT_EQ(m->param_format(1), 1);
         EXPECT_EQ(m->param_format(2), 0);
         EXPECT_EQ(m->result_formats, (std::vector<int16_t>{1, 0}));
       }},
      {"describe_statement.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Describe);
         EXPECT_EQ(m->target, 'S');
         EXPECT_EQ(m->name, "stmt1");
       }},
      {"describe_portal.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Describe);
         EXPECT_EQ(m->target, 'P');
         EXPECT_EQ(m->name, "");
       }},
      {"close_statement.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Close);
         EXPECT_EQ(m->target, 'S');
         EXPECT_EQ(m->name, "stmt1");
       }},
      {"close_portal.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Close);
         EXPECT_EQ(m->target, 'P');
         EXPECT_EQ(m->name, "p1");
       }},
      {"execute.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Execute);
         EXPECT_EQ(m->portal, "");
         EXPECT_EQ(m->max_rows, 0);
       }},
      {"execute_max_rows.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::Execute);
         EXPECT_EQ(m->portal, "p1");
         EXPECT_EQ(m->max_rows, 100);
       }},
      {"sync.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<fe::Sync>(msg)); }},
      {"flush.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<fe::Flush>(msg)); }},
      {"terminate.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<fe::Terminate>(msg)); }},
      {"copy_data.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(CopyData);
         EXPECT_EQ(str(m->data), "1\talice\n");
       }},
      {"copy_done.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) { EXPECT_TRUE(std::holds_alternative<CopyDone>(msg)); }},
      {"copy_fail.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::CopyFail);
         EXPECT_EQ(m->message, "aborted by user");
       }},
      {"function_call.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::FunctionCall);
         EXPECT_EQ(m->function_oid, 952u);
         EXPECT_EQ(m->arg_formats, (std::vector<int16_t>{1}));
         EXPECT_EQ(opts(m->args), (std::vector<Opt>{bin("00004001"), bin("00040000")}));
         EXPECT_EQ(m->arg_format(1), 1);
         EXPECT_EQ(m->result_format, 1);
       }},
      {"function_call_null.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::FunctionCall);
         EXPECT_EQ(m->function_oid, 870u);
         EXPECT_EQ(m->arg_formats, (std::vector<int16_t>{0, 1}));
         EXPECT_EQ(opts(m->args), (std::vector<Opt>{std::nullopt, bin("0000002a")}));
         EXPECT_EQ(m->arg_format(0), 0);
         EXPECT_EQ(m->arg_format(1), 1);
         EXPECT_EQ(m->result_format, 0);
       }},
      {"password_cleartext.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::PasswordMessage);
         EXPECT_EQ(m->password, "secret");
       }},
      {"password_md5.hex", Via::kTyped, PK::kPassword,
       [](const fe::Message& msg) {
         DECODED_AS(fe::PasswordMessage);
         EXPECT_EQ(m->password, "md5a3556571e93b0d20722ba62be61e8c2d");
       }},
      {"sasl_initial_response.hex", Via::kTyped, PK::kSaslInitial,
       [](const fe::Message& msg) {
         DECODED_AS(fe::SaslInitialResponse);
         EXPECT_EQ(m->mechanism, "SCRAM-SHA-256");
         EXPECT_EQ(opt(m->data), Opt("n,,n=,r=rOprNGfwEbeRWgbNEkqO"));
       }},
      {"sasl_initial_response_no_data.hex", Via::kTyped, PK::kSaslInitial,
       [](const fe::Message& msg) {
         DECODED_AS(fe::SaslInitialResponse);
         EXPECT_EQ(m->mechanism, "SCRAM-SHA-256");
         EXPECT_FALSE(m->data.has_value());
       }},
      {"sasl_response.hex", Via::kTyped, PK::kSasl,
       [](const fe::Message& msg) {
         DECODED_AS(fe::SaslResponse);
         EXPECT_EQ(str(m->data),
                   "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
       }},
      {"gss_response.hex", Via::kTyped, PK::kGss,
       [](const fe::Message& msg) {
         DECODED_AS(fe::GssResponse);
         EXPECT_EQ(str(m->data), bin("6082011006092a864886f71201020201"));
       }},
  };
  return table;
}

using Fields = std::vector<std::pair<char, std::string>>;
Fields fields_of(const std::vector<std::pair<char, std::string_view>>& f) { return {f.begin(), f.end()}; }

template <class T>
std::function<void(const be::Message&)> is() {
  return [](const be::Message& msg) { EXPECT_TRUE(std::holds_alternative<T>(msg)); };
}

std::function<void(const be::Message&)> auth(AuthCode code, const std::string& data = {}) {
  return [code, data](const be::Message& msg) {
    DECODED_AS(be::Authentication);
    EXPECT_EQ(m->code, static_cast<int32_t>(code));
    EXPECT_EQ(str(m->data), data);
    EXPECT_TRUE(m->mechanisms.empty());
  };
}

std::function<void(const be::Message&)> ready(char status) {
  return [status](const be::Message& msg) {
    DECODED_AS(be::ReadyForQuery);
    EXPECT_EQ(m->status, status);
  };
}

std::function<void(const be::Message&)> answer(char c) {
  return [c](const be::Message& msg) {
    DECODED_AS(be::EncryptionAnswer);
    EXPECT_EQ(m->answer, c);
  };
}

const std::vector<BackendGolden>& backend_goldens() {
  static const std::vector<BackendGolden> table = {
      {"auth_ok.hex", Via::kTyped, auth(AuthCode::kOk)},
      {"auth_kerberos_v5.hex", Via::kTyped, auth(AuthCode::kKerberosV5)},
      {"auth_cleartext_password.hex", Via::kTyped, auth(AuthCode::kCleartextPassword)},
      {"auth_md5_password.hex", Via::kTyped, auth(AuthCode::kMd5Password, bin("9f3a17c4"))},
      {"auth_gss.hex", Via::kTyped, auth(AuthCode::kGss)},
      {"auth_gss_continue.hex", Via::kTyped, auth(AuthCode::kGssContinue, bin("a10f300da0030a0100a20604"))},
      {"auth_sspi.hex", Via::kTyped, auth(AuthCode::kSspi)},
      {"auth_sasl.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::Authentication);
         EXPECT_EQ(m->code, 10);
         EXPECT_EQ(strs(m->mechanisms), (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
       }},
      {"auth_sasl_continue.hex", Via::kTyped,
       auth(AuthCode::kSaslContinue,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")},
      {"auth_sasl_final.hex", Via::kTyped,
       auth(AuthCode::kSaslFinal, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")},
      {"backend_key_data_v30.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::BackendKeyData);
         EXPECT_EQ(m->process_id, 12345);
         EXPECT_EQ(str(m->secret_key), bin("1a2b3c4d"));
       }},
      {"backend_key_data_v32.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::BackendKeyData);
         EXPECT_EQ(m->process_id, 12345);
         EXPECT_EQ(str(m->secret_key), kKey32);
       }},
      {"parse_complete.hex", Via::kTyped, is<be::ParseComplete>()},
      {"bind_complete.hex", Via::kTyped, is<be::BindComplete>()},
      {"close_complete.hex", Via::kTyped, is<be::CloseComplete>()},
      {"no_data.hex", Via::kTyped, is<be::NoData>()},
      {"empty_query_response.hex", Via::kTyped, is<be::EmptyQueryResponse>()},
      {"portal_suspended.hex", Via::kTyped, is<be::PortalSuspended>()},
      {"command_complete_select.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::CommandComplete);
         EXPECT_EQ(m->tag, "SELECT 1");
       }},
      {"command_complete_insert.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::CommandComplete);
         EXPECT_EQ(m->tag, "INSERT 0 1");
       }},
      {"copy_data.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(CopyData);
         EXPECT_EQ(str(m->data), "2\tbob\n");
       }},
      {"copy_done.hex", Via::kTyped, is<CopyDone>()},
      {"copy_in_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::CopyInResponse);
         EXPECT_EQ(m->format, 0);
         EXPECT_EQ(m->column_formats, (std::vector<int16_t>{0, 0, 0}));
       }},
      {"copy_out_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::CopyOutResponse);
         EXPECT_EQ(m->format, 1);
         EXPECT_EQ(m->column_formats, (std::vector<int16_t>{1, 1}));
       }},
      {"copy_both_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::CopyBothResponse);
         EXPECT_EQ(m->format, 0);
         EXPECT_TRUE(m->column_formats.empty());
       }},
      {"data_row.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::DataRow);
         EXPECT_EQ(opts(m->values), (std::vector<Opt>{"1", std::nullopt}));
       }},
      {"data_row_mixed.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::DataRow);
         EXPECT_EQ(opts(m->values), (std::vector<Opt>{"", bin("0000002a"), "hello"}));
       }},
      {"data_row_no_columns.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::DataRow);
         EXPECT_TRUE(m->values.empty());
       }},
      {"error_response_all_fields.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::ErrorResponse);
         EXPECT_EQ(fields_of(m->fields), (Fields{{'S', "ERROR"},
                                                 {'V', "ERROR"},
                                                 {'C', "23505"},
                                                 {'M', "duplicate key value violates unique constraint \"t_pkey\""},
                                                 {'D', "Key (id)=(1) already exists."},
                                                 {'H', "Use a different id."},
                                                 {'P', "15"},
                                                 {'p', "3"},
                                                 {'q', "SELECT 1"},
                                                 {'W', "SQL function \"f\" statement 1"},
                                                 {'s', "public"},
                                                 {'t', "t"},
                                                 {'c', "id"},
                                                 {'d', "int4"},
                                                 {'n', "t_pkey"},
                                                 {'F', "nbtinsert.c"},
                                                 {'L', "666"},
                                                 {'R', "_bt_check_unique"}}));
         EXPECT_EQ(m->sqlstate(), "23505");
         EXPECT_EQ(m->severity(), "ERROR");
       }},
      {"error_response_undefined_table.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::ErrorResponse);
         EXPECT_EQ(fields_of(m->fields), (Fields{{'S', "ERROR"},
                                                 {'V', "ERROR"},
                                                 {'C', "42P01"},
                                                 {'M', "relation \"x\" does not exist"},
                                                 {'P', "15"},
                                                 {'F', "parse_relation.c"},
                                                 {'L', "1452"},
                                                 {'R', "parserOpenTable"}}));
         EXPECT_EQ(m->message(), "relation \"x\" does not exist");
       }},
      {"notice_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::NoticeResponse);
         EXPECT_EQ(fields_of(m->fields), (Fields{{'S', "NOTICE"},
                                                 {'V', "NOTICE"},
                                                 {'C', "00000"},
                                                 {'M', "table \"t\" does not exist, skipping"},
                                                 {'F', "tablecmds.c"},
                                                 {'L', "1300"},
                                                 {'R', "DropErrorMsgNonExistent"}}));
       }},
      {"notice_response_unknown_field.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::NoticeResponse);
         EXPECT_EQ(fields_of(m->fields),
                   (Fields{{'S', "WARNING"}, {'V', "WARNING"}, {'C', "01000"}, {'M', "x"}, {'Z', "future field"}}));
       }},
      {"function_call_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::FunctionCallResponse);
         EXPECT_EQ(opt(m->result), Opt(bin("00000003")));
       }},
      {"function_call_response_null.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::FunctionCallResponse);
         EXPECT_FALSE(m->result.has_value());
       }},
      {"negotiate_protocol_version.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::NegotiateProtocolVersion);
         EXPECT_EQ(m->newest_minor, 2);
         EXPECT_EQ(strs(m->unrecognized_options), (std::vector<std::string>{"_pq_.test_protocol_negotiation"}));
       }},
      {"negotiate_protocol_version_no_options.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::NegotiateProtocolVersion);
         EXPECT_EQ(m->newest_minor, 0);
         EXPECT_TRUE(m->unrecognized_options.empty());
       }},
      {"notification_response.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::NotificationResponse);
         EXPECT_EQ(m->process_id, 4242);
         EXPECT_EQ(m->channel, "jobs");
         EXPECT_EQ(m->payload, "42");
       }},
      {"parameter_description.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::ParameterDescription);
         EXPECT_EQ(m->types, (std::vector<uint32_t>{23, 25}));
       }},
      {"parameter_description_none.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::ParameterDescription);
         EXPECT_TRUE(m->types.empty());
       }},
      {"parameter_status.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::ParameterStatus);
         EXPECT_EQ(m->name, "server_version");
         EXPECT_EQ(m->value, "18.0");
       }},
      {"ready_for_query_idle.hex", Via::kTyped, ready('I')},
      {"ready_for_query_in_transaction.hex", Via::kTyped, ready('T')},
      {"ready_for_query_failed.hex", Via::kTyped, ready('E')},
      {"row_description.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::RowDescription);
         ASSERT_EQ(m->fields.size(), 2u);
         const auto& id = m->fields[0];
         EXPECT_EQ(id.name, "id");
         EXPECT_EQ(id.table_oid, 16384u);
         EXPECT_EQ(id.column, 1);
         EXPECT_EQ(id.type_oid, 23u);
         EXPECT_EQ(id.type_size, 4);
         EXPECT_EQ(id.type_modifier, -1);
         EXPECT_EQ(id.format, 0);
         const auto& name = m->fields[1];
         EXPECT_EQ(name.name, "name");
         EXPECT_EQ(name.table_oid, 16384u);
         EXPECT_EQ(name.column, 2);
         EXPECT_EQ(name.type_oid, 25u);
         EXPECT_EQ(name.type_size, -1);
         EXPECT_EQ(name.type_modifier, -1);
         EXPECT_EQ(name.format, 0);
       }},
      {"row_description_computed.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::RowDescription);
         ASSERT_EQ(m->fields.size(), 1u);
         const auto& f = m->fields[0];
         EXPECT_EQ(f.name, "?column?");
         EXPECT_EQ(f.table_oid, 0u);
         EXPECT_EQ(f.column, 0);
         EXPECT_EQ(f.type_oid, 23u);
         EXPECT_EQ(f.type_size, 4);
         EXPECT_EQ(f.type_modifier, -1);
         EXPECT_EQ(f.format, 1);
       }},
      {"row_description_no_fields.hex", Via::kTyped,
       [](const be::Message& msg) {
         DECODED_AS(be::RowDescription);
         EXPECT_TRUE(m->fields.empty());
       }},
      {"ssl_response_s.hex", Via::kSslAnswer, answer('S')},
      {"ssl_response_n.hex", Via::kSslAnswer, answer('N')},
      {"gssenc_response_g.hex", Via::kGssAnswer, answer('G')},
      {"gssenc_response_n.hex", Via::kGssAnswer, answer('N')},
  };
  return table;
}

// ---------------------------------------------------------------------------
// Framing one golden message as it would arrive.

// The shortest StartupMessage: protocol 3.0, no parameters.
const std::vector<std::byte> kMinimalStartup = hex("00000009 00030000 00");

// Feeds `bytes` to one side and expects exactly one whole frame consuming all of it.
testing::AssertionResult one_frame(ConnectionFramer& conn, Direction dir, const std::vector<std::byte>& bytes,
                                   std::optional<OwnedFrame>& out) {
  Bytes in{bytes};
  FrameResult r = conn.next(dir, in);
  if (r.failed()) return testing::AssertionFailure() << "framer error: " << r.error().describe();
  if (!r.has_frame()) return testing::AssertionFailure() << "framer wants more bytes";
  if (!r.frame().whole()) return testing::AssertionFailure() << "frame came in pieces";
  if (!in.empty()) return testing::AssertionFailure() << in.size() << " bytes left after the frame";
  out.emplace(r.frame());
  FrameResult after = conn.next(dir, in);
  if (!after.needs_more()) return testing::AssertionFailure() << "framer did not ask for more after the frame";
  return testing::AssertionSuccess();
}

testing::AssertionResult frame_golden(Direction dir, Via via, const std::vector<std::byte>& bytes,
                                      std::optional<OwnedFrame>& out) {
  ConnectionFramer conn;
  std::optional<OwnedFrame> prelude;
  if (dir == Direction::kFrontend && via == Via::kTyped) {
    if (auto r = one_frame(conn, Direction::kFrontend, kMinimalStartup, prelude); !r) return r;
  } else if (via == Via::kSslAnswer) {
    if (auto r = one_frame(conn, Direction::kFrontend, hex("00000008 04d2162f"), prelude); !r) return r;
  } else if (via == Via::kGssAnswer) {
    if (auto r = one_frame(conn, Direction::kFrontend, hex("00000008 04d21630"), prelude); !r) return r;
  }
  return one_frame(conn, dir, bytes, out);
}

// Header and body of a frame as they were on the wire.
std::string wire_hex(const Frame& f) {
  Buffer b;
  f.append_header(b);
  b.append(f.body);
  return to_hex(b.view());
}

FrameKind expected_kind(Via via) {
  switch (via) {
    case Via::kStartup: return FrameKind::kStartup;
    case Via::kTyped: return FrameKind::kTyped;
    case Via::kSslAnswer:
    case Via::kGssAnswer: return FrameKind::kAnswer;
  }
  return FrameKind::kTyped;
}

TEST(Golden, FrontendDecodeCheckAndReencode) {
  for (const FrontendGolden& g : frontend_goldens()) {
    SCOPED_TRACE("frontend/" + g.file);
    std::vector<std::byte> bytes = golden(Direction::kFrontend, g.file);
    ASSERT_FALSE(bytes.empty());
    std::optional<OwnedFrame> owned;
    ASSERT_TRUE(frame_golden(Direction::kFrontend, g.via, bytes, owned));
    Frame frame = owned->view();
    EXPECT_EQ(frame.kind, expected_kind(g.via));
    EXPECT_EQ(wire_hex(frame), to_hex(bytes));
    Result<fe::Message> msg = decode_frontend(frame, g.password);
    ASSERT_TRUE(msg.ok()) << msg.error().describe();
    g.check(*msg);
    Buffer out;
    encode(*msg, out);
    EXPECT_EQ(to_hex(out.view()), to_hex(bytes)) << "re-encoding differs";
  }
}

TEST(Golden, BackendDecodeCheckAndReencode) {
  for (const BackendGolden& g : backend_goldens()) {
    SCOPED_TRACE("backend/" + g.file);
    std::vector<std::byte> bytes = golden(Direction::kBackend, g.file);
    ASSERT_FALSE(bytes.empty());
    std::optional<OwnedFrame> owned;
    ASSERT_TRUE(frame_golden(Direction::kBackend, g.via, bytes, owned));
    Frame frame = owned->view();
    EXPECT_EQ(frame.kind, expected_kind(g.via));
    EXPECT_EQ(wire_hex(frame), to_hex(bytes));
    Result<be::Message> msg = decode_backend(frame);
    ASSERT_TRUE(msg.ok()) << msg.error().describe();
    g.check(*msg);
    Buffer out;
    encode(*msg, out);
    EXPECT_EQ(to_hex(out.view()), to_hex(bytes)) << "re-encoding differs";
  }
}

// decode_into, what the tracker uses for every statement, reuses one message:
// whatever it held before, the result is what decode gives.
template <class M>
void expect_decode_into_matches(const std::vector<std::string>& files) {
  M reused;
  // Each file after each other one, so every size follows every other.
  for (const std::string& before : files) {
    for (const std::string& file : files) {
      SCOPED_TRACE(before + " then " + file);
      const std::vector<std::byte> first = golden(Direction::kFrontend, before);
      const std::vector<std::byte> frame = golden(Direction::kFrontend, file);
      ASSERT_TRUE(M::decode_into(Bytes(first).subspan(5), 0, reused).ok());
      ASSERT_TRUE(M::decode_into(Bytes(frame).subspan(5), 0, reused).ok());
      Result<M> fresh = M::decode(Bytes(frame).subspan(5), 0);
      ASSERT_TRUE(fresh.ok());
      Buffer a, b;
      reused.encode(a);
      fresh->encode(b);
      EXPECT_EQ(to_hex(a.view()), to_hex(b.view()));
    }
  }
  // A damaged one: the error decode reports.
  std::vector<std::byte> cut = golden(Direction::kFrontend, files.back());
  cut.pop_back();
  Status st = M::decode_into(Bytes(cut).subspan(5), 0, reused);
  Result<M> fresh = M::decode(Bytes(cut).subspan(5), 0);
  ASSERT_FALSE(st.ok());
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(st.error().describe(), fresh.error().describe());
}

TEST(Golden, DecodeIntoAReusedMessageIsDecode) {
  expect_decode_into_matches<fe::Bind>({"bind_text.hex", "bind_null.hex", "bind_binary.hex", "bind_mixed.hex"});
  expect_decode_into_matches<fe::Parse>({"parse.hex", "parse_unnamed.hex", "parse_three_params.hex"});
}

// The table and the directory name the same files, and every file opens with comments.
TEST(Golden, TableMatchesDirectory) {
  for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
    std::set<std::string> on_disk;
    std::string sub = dir == Direction::kFrontend ? "frontend" : "backend";
    for (const auto& entry : fs::directory_iterator(kGoldenDir / sub)) {
      if (entry.path().extension() != ".hex") continue;
      on_disk.insert(entry.path().filename().string());
      std::ifstream in(entry.path());
      std::string first;
      std::getline(in, first);
      EXPECT_TRUE(first.starts_with("# ")) << sub << "/" << entry.path().filename() << " must open with a comment";
    }
    std::set<std::string> in_table;
    if (dir == Direction::kFrontend) {
      for (const auto& g : frontend_goldens()) EXPECT_TRUE(in_table.insert(g.file).second) << "duplicate " << g.file;
    } else {
      for (const auto& g : backend_goldens()) EXPECT_TRUE(in_table.insert(g.file).second) << "duplicate " << g.file;
    }
    EXPECT_EQ(on_disk, in_table) << "every " << sub << " golden file needs an expectation and vice versa";
  }
}

// Nothing in protocol.hpp is without a golden file.
TEST(Golden, EveryTypeByteCodeAndVariantIsCovered) {
  std::set<uint8_t> fe_types;
  std::set<uint32_t> startup_codes;
  std::set<PasswordKind> password_kinds;
  for (const auto& g : frontend_goldens()) {
    std::vector<std::byte> b = golden(Direction::kFrontend, g.file);
    ASSERT_GE(b.size(), 5u) << g.file;
    if (g.via == Via::kStartup) {
      startup_codes.insert(load_be32(b.data() + 4));
    } else {
      fe_types.insert(std::to_integer<uint8_t>(b[0]));
      if (b[0] == std::byte{'p'}) password_kinds.insert(g.password);
    }
  }
  std::set<uint8_t> be_types;
  std::set<int32_t> auth_codes;
  std::set<std::pair<Via, char>> answers;
  for (const auto& g : backend_goldens()) {
    std::vector<std::byte> b = golden(Direction::kBackend, g.file);
    ASSERT_FALSE(b.empty()) << g.file;
    if (g.via == Via::kTyped) {
      be_types.insert(std::to_integer<uint8_t>(b[0]));
      if (b[0] == std::byte{'R'}) auth_codes.insert(static_cast<int32_t>(load_be32(b.data() + 5)));
    } else {
      answers.insert({g.via, std::to_integer<char>(b[0])});
    }
  }

  int fe_named = 0;
  int be_named = 0;
  for (int t = 0; t < 256; ++t) {
    auto type = static_cast<uint8_t>(t);
    if (frontend_type_name(type) != "Unknown") {
      ++fe_named;
      EXPECT_TRUE(fe_types.count(type)) << "no frontend golden for '" << static_cast<char>(t) << "' "
                                        << frontend_type_name(type);
    }
    if (backend_type_name(type) != "Unknown") {
      ++be_named;
      EXPECT_TRUE(be_types.count(type)) << "no backend golden for '" << static_cast<char>(t) << "' "
                                        << backend_type_name(type);
    }
  }
  EXPECT_EQ(fe_named, 14);  // FrontendType has 14 enumerators
  EXPECT_EQ(be_named, 24);  // BackendType has 24

  int auth_named = 0;
  for (int32_t code = -1; code <= 64; ++code) {
    if (auth_code_name(code) == "AuthenticationUnknown") continue;
    ++auth_named;
    EXPECT_TRUE(auth_codes.count(code)) << "no golden for " << auth_code_name(code);
  }
  EXPECT_EQ(auth_named, 10);

  for (uint32_t code : {kProtocol30, kProtocol32, kSslRequestCode, kGssEncRequestCode, kCancelRequestCode}) {
    EXPECT_TRUE(startup_codes.count(code)) << "no golden startup packet with code " << code;
  }
  EXPECT_EQ(password_kinds.size(), 4u) << "every PasswordKind needs a 'p' golden";
  std::set<std::pair<Via, char>> want_answers = {
      {Via::kSslAnswer, 'S'}, {Via::kSslAnswer, 'N'}, {Via::kGssAnswer, 'G'}, {Via::kGssAnswer, 'N'}};
  EXPECT_EQ(answers, want_answers);
}

// ---------------------------------------------------------------------------
// Streams of golden messages, split every way.

struct Stream {
  std::vector<std::byte> bytes;
  std::vector<std::string> frames;  // expected frames, described independently of the framer
};

std::string describe(FrameKind kind, uint8_t type, uint32_t length, uint64_t offset, Bytes body) {
  return fmt::format("kind={} type={:02x} length={} offset={} body={}", static_cast<int>(kind), type, length, offset,
                     to_hex(body));
}

// Concatenates golden files and describes each from its own bytes.
Stream make_stream(Direction dir, const std::vector<std::string>& files) {
  Stream s;
  for (const std::string& file : files) {
    std::vector<std::byte> b = golden(dir, file);
    const bool startup = dir == Direction::kFrontend && !b.empty() && b[0] == std::byte{0};
    const Bytes all{b};
    if (startup) {
      s.frames.push_back(describe(FrameKind::kStartup, 0, load_be32(b.data()), s.bytes.size(), all.subspan(4)));
    } else {
      s.frames.push_back(describe(FrameKind::kTyped, std::to_integer<uint8_t>(b[0]), load_be32(b.data() + 1),
                                  s.bytes.size(), all.subspan(5)));
    }
    s.bytes.insert(s.bytes.end(), b.begin(), b.end());
  }
  return s;
}

// Runs a framer over the chunks, gluing pieces of large frames back together.
std::vector<std::string> run_framer(Framer& framer, const std::vector<Bytes>& chunks, std::string& error) {
  std::vector<std::string> out;
  std::vector<std::byte> body;
  Frame head;
  for (Bytes in : chunks) {
    for (;;) {
      FrameResult r = framer.next(in);
      if (r.failed()) {
        error = r.error().describe();
        return out;
      }
      if (r.needs_more()) break;
      const Frame& f = r.frame();
      if (f.first) {
        head = f;
        body.clear();
      }
      body.insert(body.end(), f.body.begin(), f.body.end());
      if (f.last) out.push_back(describe(head.kind, head.type, head.length, head.offset, Bytes{body}));
    }
    if (!in.empty()) error = "framer left input unconsumed";
  }
  return out;
}

void check_every_split(Direction dir, const Stream& s) {
  const Bytes all{s.bytes};
  // Two chunks, split at every offset (including the empty first and last chunk).
  for (size_t k = 0; k <= all.size(); ++k) {
    Framer f(dir);
    std::string error;
    std::vector<std::string> got = run_framer(f, {all.first(k), all.subspan(k)}, error);
    ASSERT_EQ(error, "") << "split at " << k;
    ASSERT_EQ(got, s.frames) << "split at " << k;
    EXPECT_EQ(f.offset(), all.size());
    EXPECT_FALSE(f.mid_frame());
  }
  // Chunks of 1, 2, 3, 5 and 7 bytes.
  for (size_t size : {1u, 2u, 3u, 5u, 7u}) {
    std::vector<Bytes> chunks;
    for (size_t pos = 0; pos < all.size(); pos += size)
      chunks.push_back(all.subspan(pos, std::min(size, all.size() - pos)));
    Framer f(dir);
    std::string error;
    std::vector<std::string> got = run_framer(f, chunks, error);
    ASSERT_EQ(error, "") << "chunks of " << size;
    ASSERT_EQ(got, s.frames) << "chunks of " << size;
  }
}

const std::vector<std::string> kFrontendSession = {
    "startup_v30.hex",
    "sasl_initial_response.hex",
    "sasl_response.hex",
    "query.hex",
    "parse.hex",
    "bind_text.hex",
    "describe_portal.hex",
    "execute.hex",
    "sync.hex",
    "parse_three_params.hex",
    "bind_mixed.hex",
    "execute_max_rows.hex",
    "flush.hex",
    "describe_statement.hex",
    "close_portal.hex",
    "close_statement.hex",
    "sync.hex",
    "query_escapes.hex",
    "copy_data.hex",
    "copy_done.hex",
    "copy_fail.hex",
    "function_call.hex",
    "function_call_null.hex",
    "query_empty.hex",
    "bind_null.hex",
    "bind_binary.hex",
    "parse_unnamed.hex",
    "terminate.hex",
};

const std::vector<std::string> kBackendSession = {
    "auth_sasl.hex",
    "auth_sasl_continue.hex",
    "auth_sasl_final.hex",
    "auth_ok.hex",
    "parameter_status.hex",
    "backend_key_data_v32.hex",
    "ready_for_query_idle.hex",
    "row_description.hex",
    "data_row.hex",
    "data_row_mixed.hex",
    "command_complete_select.hex",
    "ready_for_query_idle.hex",
    "parse_complete.hex",
    "parameter_description.hex",
    "row_description_computed.hex",
    "bind_complete.hex",
    "data_row.hex",
    "portal_suspended.hex",
    "no_data.hex",
    "command_complete_insert.hex",
    "close_complete.hex",
    "notice_response.hex",
    "notification_response.hex",
    "error_response_all_fields.hex",
    "ready_for_query_failed.hex",
    "copy_in_response.hex",
    "copy_out_response.hex",
    "copy_data.hex",
    "copy_done.hex",
    "function_call_response.hex",
    "function_call_response_null.hex",
    "empty_query_response.hex",
    "copy_both_response.hex",
    "ready_for_query_in_transaction.hex",
};

TEST(GoldenStream, FrontendSessionAtEverySplit) {
  check_every_split(Direction::kFrontend, make_stream(Direction::kFrontend, kFrontendSession));
}

TEST(GoldenStream, BackendSessionAtEverySplit) {
  check_every_split(Direction::kBackend, make_stream(Direction::kBackend, kBackendSession));
}

// Every frame of the sessions decodes, given the password kind the backend's
// authentication requests imply.
TEST(GoldenStream, SessionsDecode) {
  std::map<std::string, PasswordKind> kinds;
  for (const auto& g : frontend_goldens()) kinds[g.file] = g.password;
  Stream fe_stream = make_stream(Direction::kFrontend, kFrontendSession);
  Framer f(Direction::kFrontend);
  Bytes in{fe_stream.bytes};
  for (const std::string& file : kFrontendSession) {
    FrameResult r = f.next(in);
    ASSERT_TRUE(r.has_frame()) << file;
    Result<fe::Message> m = decode_frontend(r.frame(), kinds[file]);
    EXPECT_TRUE(m.ok()) << file << ": " << m.error().describe();
  }
  EXPECT_TRUE(in.empty());

  Stream be_stream = make_stream(Direction::kBackend, kBackendSession);
  Framer b(Direction::kBackend);
  Bytes bin_in{be_stream.bytes};
  for (const std::string& file : kBackendSession) {
    FrameResult r = b.next(bin_in);
    ASSERT_TRUE(r.has_frame()) << file;
    Result<be::Message> m = decode_backend(r.frame());
    EXPECT_TRUE(m.ok()) << file << ": " << m.error().describe();
  }
  EXPECT_TRUE(bin_in.empty());
}

// Feeds `bytes` to one side of the connection a byte at a time; returns the frames.
std::vector<OwnedFrame> feed_bytewise(ConnectionFramer& conn, Direction dir, const std::vector<std::byte>& bytes) {
  std::vector<OwnedFrame> out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    Bytes in{bytes.data() + i, 1};
    for (;;) {
      FrameResult r = conn.next(dir, in);
      EXPECT_FALSE(r.failed()) << r.error().describe();
      if (!r.has_frame()) break;
      out.emplace_back(r.frame());
    }
  }
  return out;
}

std::vector<std::byte> cat(Direction dir, const std::vector<std::string>& files) {
  return make_stream(dir, files).bytes;
}

// GSSENCRequest refused, SSLRequest refused, plaintext 3.2 session.
TEST(GoldenStream, EncryptionRefusedThenPlaintext) {
  ConnectionFramer conn;
  auto fe1 = feed_bytewise(conn, Direction::kFrontend, golden(Direction::kFrontend, "gssenc_request.hex"));
  auto be1 = feed_bytewise(conn, Direction::kBackend, golden(Direction::kBackend, "gssenc_response_n.hex"));
  auto fe2 = feed_bytewise(conn, Direction::kFrontend, golden(Direction::kFrontend, "ssl_request.hex"));
  auto be2 = feed_bytewise(conn, Direction::kBackend, golden(Direction::kBackend, "ssl_response_n.hex"));
  auto fe3 =
      feed_bytewise(conn, Direction::kFrontend,
                    cat(Direction::kFrontend, {"startup_v32.hex", "password_md5.hex", "query.hex", "terminate.hex"}));
  auto be3 = feed_bytewise(conn, Direction::kBackend,
                           cat(Direction::kBackend, {"auth_md5_password.hex", "auth_ok.hex", "backend_key_data_v32.hex",
                                                     "ready_for_query_idle.hex"}));
  ASSERT_EQ(fe1.size(), 1u);
  EXPECT_EQ(fe1[0].view().startup_code(), kGssEncRequestCode);
  ASSERT_EQ(be1.size(), 1u);
  EXPECT_EQ(be1[0].kind, FrameKind::kAnswer);
  EXPECT_EQ(be1[0].type, 'N');
  ASSERT_EQ(fe2.size(), 1u);
  EXPECT_EQ(fe2[0].view().startup_code(), kSslRequestCode);
  EXPECT_EQ(fe2[0].offset, 8u);
  ASSERT_EQ(be2.size(), 1u);
  EXPECT_EQ(be2[0].type, 'N');
  EXPECT_EQ(be2[0].offset, 1u);
  ASSERT_EQ(fe3.size(), 4u);
  EXPECT_EQ(fe3[0].view().startup_code(), kProtocol32);
  EXPECT_EQ(fe3[1].type, 'p');
  EXPECT_EQ(fe3[2].type, 'Q');
  EXPECT_EQ(fe3[3].type, 'X');
  ASSERT_EQ(be3.size(), 4u);
  EXPECT_EQ(be3[0].type, 'R');
  EXPECT_EQ(be3[0].offset, 2u);
  EXPECT_EQ(be3[3].type, 'Z');
}

// SSLRequest accepted: everything after the answer is TLS, framed as opaque bytes.
TEST(GoldenStream, SslAcceptedThenOpaque) {
  ConnectionFramer conn;
  auto fe1 = feed_bytewise(conn, Direction::kFrontend, golden(Direction::kFrontend, "ssl_request.hex"));
  auto be1 = feed_bytewise(conn, Direction::kBackend, golden(Direction::kBackend, "ssl_response_s.hex"));
  ASSERT_EQ(fe1.size(), 1u);
  ASSERT_EQ(be1.size(), 1u);
  EXPECT_EQ(be1[0].type, 'S');
  auto hello = hex("1603010200 0100");
  auto fe2 = feed_bytewise(conn, Direction::kFrontend, hello);
  ASSERT_EQ(fe2.size(), hello.size());  // one opaque frame per 1-byte chunk
  for (const auto& f : fe2) EXPECT_EQ(f.kind, FrameKind::kOpaque);
  EXPECT_TRUE(conn.frontend().encrypted());
  EXPECT_TRUE(conn.backend().encrypted());
}

}  // namespace
}  // namespace pgwire
