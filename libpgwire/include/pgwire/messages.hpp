// Every message of protocol 3.0 and 3.2, both directions.
//
// Each message is a struct with
//   static Result<T> decode(Bytes body, uint64_t offset)  -- body = bytes after the length field
//   void encode(Buffer& out) const                        -- appends the whole frame
// Decoded messages are views (string_view, span) into the frame's bytes and
// are valid as long as those bytes are; copy what must outlive them (or keep
// an OwnedFrame and decode again). Decoders validate counts against the bytes
// left before allocating, and require the body to be consumed exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/result.hpp"

namespace pgwire {

using Value = std::optional<Bytes>;  // nullopt = SQL NULL

// ---------------------------------------------------------------------------
// Messages with no body, and those that are the same in both directions.

template <char Type>
struct EmptyMessage {
  static constexpr char kType = Type;
  static Result<EmptyMessage> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const {
    out.u8(static_cast<uint8_t>(Type));
    out.u32(4);
  }
  bool operator==(const EmptyMessage&) const = default;
};

struct CopyData {
  static constexpr char kType = 'd';
  Bytes data;
  static Result<CopyData> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
using CopyDone = EmptyMessage<'c'>;

// ---------------------------------------------------------------------------
// Frontend.
namespace fe {

struct StartupMessage {
  uint32_t protocol = kProtocol30;
  std::vector<std::pair<std::string_view, std::string_view>> params;  // user, database, options, ...
  std::string_view param(std::string_view name) const;
  static Result<StartupMessage> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct SslRequest {
  static Result<SslRequest> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct GssEncRequest {
  static Result<GssEncRequest> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct CancelRequest {
  int32_t process_id = 0;
  Bytes secret_key;  // exactly 4 bytes in 3.0; 4 to 256 in 3.2
  static Result<CancelRequest> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};

struct Query {
  static constexpr char kType = 'Q';
  std::string_view sql;
  static Result<Query> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct Parse {
  static constexpr char kType = 'P';
  std::string_view statement;
  std::string_view sql;
  std::vector<uint32_t> param_types;  // 0 = unspecified
  static Result<Parse> decode(Bytes body, uint64_t offset);
  // As decode, into `out`, whose vector keeps its capacity: for a caller
  // that decodes one per statement. On an error `out` is left half filled.
  static Status decode_into(Bytes body, uint64_t offset, Parse& out);
  void encode(Buffer& out) const;
};
struct Bind {
  static constexpr char kType = 'B';
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;  // empty: all text; one: applies to all
  std::vector<Value> params;
  std::vector<int16_t> result_formats;
  int16_t param_format(size_t i) const;  // resolves the one-for-all rule
  static Result<Bind> decode(Bytes body, uint64_t offset);
  // As decode, into `out`, whose vectors keep their capacity: for a caller
  // that decodes one per statement. On an error `out` is left half filled.
  static Status decode_into(Bytes body, uint64_t offset, Bind& out);
  void encode(Buffer& out) const;
};
struct Describe {
  static constexpr char kType = 'D';
  char target = 'S';  // 'S' statement, 'P' portal
  std::string_view name;
  static Result<Describe> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct Close {
  static constexpr char kType = 'C';
  char target = 'S';
  std::string_view name;
  static Result<Close> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct Execute {
  static constexpr char kType = 'E';
  std::string_view portal;
  int32_t max_rows = 0;  // 0 = no limit
  static Result<Execute> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
using Sync = EmptyMessage<'S'>;
using Flush = EmptyMessage<'H'>;
using Terminate = EmptyMessage<'X'>;
struct CopyFail {
  static constexpr char kType = 'f';
  std::string_view message;
  static Result<CopyFail> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct FunctionCall {
  static constexpr char kType = 'F';
  uint32_t function_oid = 0;
  std::vector<int16_t> arg_formats;
  std::vector<Value> args;
  int16_t result_format = 0;
  int16_t arg_format(size_t i) const;
  static Result<FunctionCall> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
// The 'p' family: which one a frame is depends on the authentication request
// the server sent before it (see PasswordKind).
struct PasswordMessage {
  static constexpr char kType = 'p';
  std::string_view password;  // cleartext or "md5" + hex digest
  static Result<PasswordMessage> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct SaslInitialResponse {
  static constexpr char kType = 'p';
  std::string_view mechanism;
  Value data;  // -1 length: no initial response
  static Result<SaslInitialResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct SaslResponse {
  static constexpr char kType = 'p';
  Bytes data;
  static Result<SaslResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct GssResponse {
  static constexpr char kType = 'p';
  Bytes data;
  static Result<GssResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};

using Message = std::variant<StartupMessage, SslRequest, GssEncRequest, CancelRequest, Query, Parse, Bind, Describe,
                             Close, Execute, Sync, Flush, Terminate, CopyData, CopyDone, CopyFail, FunctionCall,
                             PasswordMessage, SaslInitialResponse, SaslResponse, GssResponse>;

}  // namespace fe

// What a frontend 'p' message is, from the last authentication request.
enum class PasswordKind : uint8_t { kPassword, kSaslInitial, kSasl, kGss };

// Maps an Authentication sub-code to what the client's next 'p' will be.
PasswordKind password_kind_after(int32_t auth_code);

// ---------------------------------------------------------------------------
// Backend.
namespace be {

struct Authentication {
  static constexpr char kType = 'R';
  int32_t code = 0;                          // AuthCode
  Bytes data;                                // MD5 salt (4 bytes), GSS/SASL continue/final data
  std::vector<std::string_view> mechanisms;  // AuthenticationSASL
  static Result<Authentication> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct BackendKeyData {
  static constexpr char kType = 'K';
  int32_t process_id = 0;
  Bytes secret_key;  // 4 bytes in 3.0; 4 to 256 in 3.2 (PostgreSQL 18 sends 32)
  static Result<BackendKeyData> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
using BindComplete = EmptyMessage<'2'>;
using CloseComplete = EmptyMessage<'3'>;
using ParseComplete = EmptyMessage<'1'>;
using NoData = EmptyMessage<'n'>;
using EmptyQueryResponse = EmptyMessage<'I'>;
using PortalSuspended = EmptyMessage<'s'>;

struct CommandComplete {
  static constexpr char kType = 'C';
  std::string_view tag;  // "SELECT 5", "INSERT 0 1", ...
  static Result<CommandComplete> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};

template <char Type>
struct CopyResponse {
  static constexpr char kType = Type;
  int8_t format = 0;  // overall: 0 text, 1 binary
  std::vector<int16_t> column_formats;
  static Result<CopyResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
using CopyInResponse = CopyResponse<'G'>;
using CopyOutResponse = CopyResponse<'H'>;
using CopyBothResponse = CopyResponse<'W'>;

struct DataRow {
  static constexpr char kType = 'D';
  std::vector<Value> values;
  static Result<DataRow> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};

// ErrorResponse and NoticeResponse: (field code, value) pairs. Field codes:
// S V C M D H P p q W s t c d n F L R (unknown codes are kept, as the docs ask).
template <char Type>
struct FieldResponse {
  static constexpr char kType = Type;
  std::vector<std::pair<char, std::string_view>> fields;
  std::string_view field(char code) const {
    for (const auto& [c, v] : fields)
      if (c == code) return v;
    return {};
  }
  std::string_view sqlstate() const { return field('C'); }
  std::string_view message() const { return field('M'); }
  std::string_view severity() const { return field('V').empty() ? field('S') : field('V'); }
  static Result<FieldResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
using ErrorResponse = FieldResponse<'E'>;
using NoticeResponse = FieldResponse<'N'>;

struct FunctionCallResponse {
  static constexpr char kType = 'V';
  Value result;
  static Result<FunctionCallResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct NegotiateProtocolVersion {
  static constexpr char kType = 'v';
  int32_t newest_minor = 0;
  std::vector<std::string_view> unrecognized_options;
  static Result<NegotiateProtocolVersion> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct NotificationResponse {
  static constexpr char kType = 'A';
  int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
  static Result<NotificationResponse> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct ParameterDescription {
  static constexpr char kType = 't';
  std::vector<uint32_t> types;
  static Result<ParameterDescription> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct ParameterStatus {
  static constexpr char kType = 'S';
  std::string_view name;
  std::string_view value;
  static Result<ParameterStatus> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct ReadyForQuery {
  static constexpr char kType = 'Z';
  char status = 'I';  // 'I' idle, 'T' in a transaction, 'E' in a failed transaction
  static Result<ReadyForQuery> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
struct RowDescription {
  static constexpr char kType = 'T';
  struct Field {
    std::string_view name;
    uint32_t table_oid = 0;
    int16_t column = 0;
    uint32_t type_oid = 0;
    int16_t type_size = 0;
    int32_t type_modifier = 0;
    int16_t format = 0;
  };
  std::vector<Field> fields;
  static Result<RowDescription> decode(Bytes body, uint64_t offset);
  void encode(Buffer& out) const;
};
// The one-byte answer to SSLRequest / GSSENCRequest ('S', 'G' or 'N').
struct EncryptionAnswer {
  char answer = 'N';
  void encode(Buffer& out) const { out.u8(static_cast<uint8_t>(answer)); }
};

using Message = std::variant<Authentication, BackendKeyData, BindComplete, CloseComplete, CommandComplete, CopyData,
                             CopyDone, CopyInResponse, CopyOutResponse, CopyBothResponse, DataRow, EmptyQueryResponse,
                             ErrorResponse, FunctionCallResponse, NegotiateProtocolVersion, NoData, NoticeResponse,
                             NotificationResponse, ParameterDescription, ParameterStatus, ParseComplete,
                             PortalSuspended, ReadyForQuery, RowDescription, EncryptionAnswer>;

}  // namespace be

// Decodes a whole frame (Frame::whole()). `password_kind` says what a 'p'
// frame is; the tracker knows it from the authentication exchange.
Result<fe::Message> decode_frontend(const Frame& frame, PasswordKind password_kind = PasswordKind::kPassword);
Result<be::Message> decode_backend(const Frame& frame);

void encode(const fe::Message& msg, Buffer& out);
void encode(const be::Message& msg, Buffer& out);

}  // namespace pgwire
