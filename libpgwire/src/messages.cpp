#include "pgwire/messages.hpp"

#include <fmt/format.h>

namespace pgwire {
namespace {

// Turns a Reader's outcome into a Result once every field has been read.
template <class T>
Result<T> done(Reader& r, T msg, const char* what) {
  if (!r.finish(what)) return r.error();
  return msg;
}

// Int16 count followed by that many Int16 format codes, into `out`
// (cleared first; its capacity is kept, see Bind::decode_into).
void read_formats(Reader& r, const char* what, std::vector<int16_t>& out) {
  out.clear();
  int16_t n = r.i16();
  if (!r.check_count(n, 2, what)) return;
  out.reserve(static_cast<size_t>(n));
  for (int16_t i = 0; i < n; ++i) {
    size_t at = r.position();
    int16_t f = r.i16();
    if (f != 0 && f != 1) r.fail_at(at, Errc::kBadValue, fmt::format("{} {} is not 0 or 1", what, f));
    out.push_back(f);
  }
}

void read_values(Reader& r, const char* what, std::vector<Value>& out) {
  out.clear();
  int16_t n = r.i16();
  if (!r.check_count(n, 4, what)) return;
  out.reserve(static_cast<size_t>(n));
  for (int16_t i = 0; i < n && r.ok(); ++i) out.push_back(r.nullable_bytes());
}

void write_formats(Buffer& out, const std::vector<int16_t>& formats) {
  out.i16(static_cast<int16_t>(formats.size()));
  for (int16_t f : formats) out.i16(f);
}

void write_values(Buffer& out, const std::vector<Value>& values) {
  out.i16(static_cast<int16_t>(values.size()));
  for (const Value& v : values) out.nullable_bytes(v);
}

// Resolves the "zero codes: all text; one code: all; else one per value" rule.
int16_t format_for(const std::vector<int16_t>& formats, size_t i) {
  if (formats.empty()) return 0;
  if (formats.size() == 1) return formats[0];
  return i < formats.size() ? formats[i] : 0;
}

char read_target(Reader& r, const char* what) {
  size_t at = r.position();
  auto t = static_cast<char>(r.u8());
  if (r.ok() && t != 'S' && t != 'P')
    r.fail_at(at, Errc::kBadValue, fmt::format("{} target '{}' is not S or P", what, t));
  return t;
}

Bytes cancel_key(Reader& r, const char* what) {
  size_t n = r.remaining();
  if (n < kMinCancelKey || n > kMaxCancelKey) {
    r.fail(Errc::kBadLength,
           fmt::format("{} secret key of {} bytes is outside {}..{}", what, n, kMinCancelKey, kMaxCancelKey));
    return {};
  }
  return r.rest();
}

}  // namespace

template <char Type>
Result<EmptyMessage<Type>> EmptyMessage<Type>::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  return done(r, EmptyMessage{}, "empty message");
}
template struct EmptyMessage<'c'>;
template struct EmptyMessage<'S'>;
template struct EmptyMessage<'H'>;
template struct EmptyMessage<'X'>;
template struct EmptyMessage<'1'>;
template struct EmptyMessage<'2'>;
template struct EmptyMessage<'3'>;
template struct EmptyMessage<'n'>;
template struct EmptyMessage<'I'>;
template struct EmptyMessage<'s'>;

Result<CopyData> CopyData::decode(Bytes body, uint64_t) { return CopyData{body}; }
void CopyData::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.append(data);
  out.end_message(at);
}

PasswordKind password_kind_after(int32_t auth_code) {
  switch (static_cast<AuthCode>(auth_code)) {
    case AuthCode::kSasl: return PasswordKind::kSaslInitial;
    case AuthCode::kSaslContinue: return PasswordKind::kSasl;
    case AuthCode::kGss:
    case AuthCode::kGssContinue:
    case AuthCode::kSspi: return PasswordKind::kGss;
    default: return PasswordKind::kPassword;
  }
}

// ---------------------------------------------------------------------------
namespace fe {

std::string_view StartupMessage::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

Result<StartupMessage> StartupMessage::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  StartupMessage m;
  m.protocol = r.u32();
  if (r.ok() && protocol_major(m.protocol) != 3) {
    return Error{Errc::kUnsupported, offset,
                 fmt::format("protocol {}.{}", protocol_major(m.protocol), protocol_minor(m.protocol))};
  }
  while (r.ok()) {
    std::string_view name = r.cstring();
    if (!r.ok() || name.empty()) break;
    std::string_view value = r.cstring();
    m.params.emplace_back(name, value);
  }
  return done(r, std::move(m), "StartupMessage");
}
void StartupMessage::encode(Buffer& out) const {
  size_t at = out.begin_packet();
  out.u32(protocol);
  for (const auto& [k, v] : params) {
    out.cstring(k);
    out.cstring(v);
  }
  out.u8(0);
  out.end_message(at);
}

namespace {
Status expect_code(Reader& r, uint32_t code, const char* what) {
  size_t at = r.position();
  uint32_t got = r.u32();
  if (r.ok() && got != code) r.fail_at(at, Errc::kBadValue, fmt::format("{} code {} is not {}", what, got, code));
  if (!r.finish(what)) return r.error();
  return {};
}
void write_request(Buffer& out, uint32_t code) {
  out.u32(8);
  out.u32(code);
}
}  // namespace

Result<SslRequest> SslRequest::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  if (Status s = expect_code(r, kSslRequestCode, "SSLRequest"); !s) return s.error();
  return SslRequest{};
}
void SslRequest::encode(Buffer& out) const { write_request(out, kSslRequestCode); }

Result<GssEncRequest> GssEncRequest::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  if (Status s = expect_code(r, kGssEncRequestCode, "GSSENCRequest"); !s) return s.error();
  return GssEncRequest{};
}
void GssEncRequest::encode(Buffer& out) const { write_request(out, kGssEncRequestCode); }

Result<CancelRequest> CancelRequest::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  CancelRequest m;
  size_t at = r.position();
  if (uint32_t code = r.u32(); r.ok() && code != kCancelRequestCode) {
    r.fail_at(at, Errc::kBadValue, fmt::format("CancelRequest code {}", code));
  }
  m.process_id = r.i32();
  m.secret_key = cancel_key(r, "CancelRequest");
  return done(r, m, "CancelRequest");
}
void CancelRequest::encode(Buffer& out) const {
  size_t at = out.begin_packet();
  out.u32(kCancelRequestCode);
  out.i32(process_id);
  out.append(secret_key);
  out.end_message(at);
}

Result<Query> Query::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  Query m{r.cstring()};
  return done(r, m, "Query");
}
void Query::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(sql);
  out.end_message(at);
}

Result<Parse> Parse::decode(Bytes body, uint64_t offset) {
  Parse m;
  if (Status s = decode_into(body, offset, m); !s) return s.error();
  return m;
}
Status Parse::decode_into(Bytes body, uint64_t offset, Parse& m) {
  Reader r(body, offset);
  m.statement = r.cstring();
  m.sql = r.cstring();
  m.param_types.clear();
  int16_t n = r.i16();
  if (r.check_count(n, 4, "Parse parameter type")) {
    m.param_types.reserve(static_cast<size_t>(n));
    for (int16_t i = 0; i < n; ++i) m.param_types.push_back(r.u32());
  }
  if (!r.finish("Parse")) return r.error();
  return {};
}
void Parse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(statement);
  out.cstring(sql);
  out.i16(static_cast<int16_t>(param_types.size()));
  for (uint32_t t : param_types) out.u32(t);
  out.end_message(at);
}

int16_t Bind::param_format(size_t i) const { return format_for(param_formats, i); }

Result<Bind> Bind::decode(Bytes body, uint64_t offset) {
  Bind m;
  if (Status s = decode_into(body, offset, m); !s) return s.error();
  return m;
}
Status Bind::decode_into(Bytes body, uint64_t offset, Bind& m) {
  Reader r(body, offset);
  m.portal = r.cstring();
  m.statement = r.cstring();
  read_formats(r, "Bind parameter format", m.param_formats);
  size_t at = r.position();
  read_values(r, "Bind parameter", m.params);
  if (r.ok() && m.param_formats.size() > 1 && m.param_formats.size() != m.params.size()) {
    r.fail_at(at, Errc::kBadCount,
              fmt::format("Bind has {} parameter formats for {} parameters", m.param_formats.size(), m.params.size()));
  }
  read_formats(r, "Bind result format", m.result_formats);
  if (!r.finish("Bind")) return r.error();
  return {};
}
void Bind::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(portal);
  out.cstring(statement);
  write_formats(out, param_formats);
  write_values(out, params);
  write_formats(out, result_formats);
  out.end_message(at);
}

Result<Describe> Describe::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  Describe m;
  m.target = read_target(r, "Describe");
  m.name = r.cstring();
  return done(r, m, "Describe");
}
void Describe::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.u8(static_cast<uint8_t>(target));
  out.cstring(name);
  out.end_message(at);
}

Result<Close> Close::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  Close m;
  m.target = read_target(r, "Close");
  m.name = r.cstring();
  return done(r, m, "Close");
}
void Close::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.u8(static_cast<uint8_t>(target));
  out.cstring(name);
  out.end_message(at);
}

Result<Execute> Execute::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  Execute m;
  m.portal = r.cstring();
  m.max_rows = r.i32();
  return done(r, m, "Execute");
}
void Execute::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(portal);
  out.i32(max_rows);
  out.end_message(at);
}

Result<CopyFail> CopyFail::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  CopyFail m{r.cstring()};
  return done(r, m, "CopyFail");
}
void CopyFail::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(message);
  out.end_message(at);
}

int16_t FunctionCall::arg_format(size_t i) const { return format_for(arg_formats, i); }

Result<FunctionCall> FunctionCall::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  FunctionCall m;
  m.function_oid = r.u32();
  read_formats(r, "FunctionCall argument format", m.arg_formats);
  size_t count_at = r.position();
  read_values(r, "FunctionCall argument", m.args);
  // Same rule as Bind: zero codes, one for all, or one per argument.
  if (r.ok() && m.arg_formats.size() > 1 && m.arg_formats.size() != m.args.size()) {
    r.fail_at(
        count_at, Errc::kBadCount,
        fmt::format("FunctionCall has {} argument formats for {} arguments", m.arg_formats.size(), m.args.size()));
  }
  size_t at = r.position();
  m.result_format = r.i16();
  if (r.ok() && m.result_format != 0 && m.result_format != 1)
    r.fail_at(at, Errc::kBadValue, fmt::format("FunctionCall result format {}", m.result_format));
  return done(r, std::move(m), "FunctionCall");
}
void FunctionCall::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.u32(function_oid);
  write_formats(out, arg_formats);
  write_values(out, args);
  out.i16(result_format);
  out.end_message(at);
}

Result<PasswordMessage> PasswordMessage::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  PasswordMessage m{r.cstring()};
  return done(r, m, "PasswordMessage");
}
void PasswordMessage::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(password);
  out.end_message(at);
}

Result<SaslInitialResponse> SaslInitialResponse::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  SaslInitialResponse m;
  m.mechanism = r.cstring();
  m.data = r.nullable_bytes();
  return done(r, m, "SASLInitialResponse");
}
void SaslInitialResponse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(mechanism);
  out.nullable_bytes(data);
  out.end_message(at);
}

Result<SaslResponse> SaslResponse::decode(Bytes body, uint64_t) { return SaslResponse{body}; }
void SaslResponse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.append(data);
  out.end_message(at);
}

Result<GssResponse> GssResponse::decode(Bytes body, uint64_t) { return GssResponse{body}; }
void GssResponse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.append(data);
  out.end_message(at);
}

}  // namespace fe

// ---------------------------------------------------------------------------
namespace be {

Result<Authentication> Authentication::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  Authentication m;
  m.code = r.i32();
  if (!r.ok()) return r.error();
  switch (static_cast<AuthCode>(m.code)) {
    case AuthCode::kOk:
    case AuthCode::kKerberosV5:
    case AuthCode::kCleartextPassword:
    case AuthCode::kGss:
    case AuthCode::kSspi: break;
    case AuthCode::kMd5Password: m.data = r.bytes(4); break;
    case AuthCode::kGssContinue:
    case AuthCode::kSaslContinue:
    case AuthCode::kSaslFinal: m.data = r.rest(); break;
    case AuthCode::kSasl:
      for (;;) {
        std::string_view mech = r.cstring();
        if (!r.ok() || mech.empty()) break;
        m.mechanisms.push_back(mech);
      }
      break;
    default: r.fail_at(0, Errc::kBadValue, fmt::format("unknown authentication request code {}", m.code)); break;
  }
  return done(r, std::move(m), "Authentication");
}
void Authentication::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i32(code);
  if (code == static_cast<int32_t>(AuthCode::kSasl)) {
    for (std::string_view mech : mechanisms) out.cstring(mech);
    out.u8(0);
  } else {
    out.append(data);
  }
  out.end_message(at);
}

Result<BackendKeyData> BackendKeyData::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  BackendKeyData m;
  m.process_id = r.i32();
  m.secret_key = cancel_key(r, "BackendKeyData");
  return done(r, m, "BackendKeyData");
}
void BackendKeyData::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i32(process_id);
  out.append(secret_key);
  out.end_message(at);
}

Result<CommandComplete> CommandComplete::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  CommandComplete m{r.cstring()};
  return done(r, m, "CommandComplete");
}
void CommandComplete::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(tag);
  out.end_message(at);
}

template <char Type>
Result<CopyResponse<Type>> CopyResponse<Type>::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  CopyResponse m;
  m.format = static_cast<int8_t>(r.u8());
  if (r.ok() && m.format != 0 && m.format != 1)
    r.fail_at(0, Errc::kBadValue, fmt::format("copy format {} is not 0 or 1", m.format));
  read_formats(r, "copy column format", m.column_formats);
  // "All must be zero if the overall copy format is textual."
  for (size_t i = 0; r.ok() && m.format == 0 && i < m.column_formats.size(); ++i) {
    if (m.column_formats[i] != 0) {
      r.fail_at(3 + 2 * i, Errc::kBadValue,
                fmt::format("textual COPY with column {} in format {}", i, m.column_formats[i]));
    }
  }
  return done(r, std::move(m), "CopyResponse");
}
template <char Type>
void CopyResponse<Type>::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.u8(static_cast<uint8_t>(format));
  write_formats(out, column_formats);
  out.end_message(at);
}
template struct CopyResponse<'G'>;
template struct CopyResponse<'H'>;
template struct CopyResponse<'W'>;

Result<DataRow> DataRow::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  DataRow m;
  read_values(r, "DataRow column", m.values);
  return done(r, std::move(m), "DataRow");
}
void DataRow::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  write_values(out, values);
  out.end_message(at);
}

template <char Type>
Result<FieldResponse<Type>> FieldResponse<Type>::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  FieldResponse m;
  while (r.ok()) {
    auto code = static_cast<char>(r.u8());
    if (!r.ok() || code == 0) break;
    std::string_view value = r.cstring();
    m.fields.emplace_back(code, value);
  }
  return done(r, std::move(m), Type == 'E' ? "ErrorResponse" : "NoticeResponse");
}
template <char Type>
void FieldResponse<Type>::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  for (const auto& [code, value] : fields) {
    out.u8(static_cast<uint8_t>(code));
    out.cstring(value);
  }
  out.u8(0);
  out.end_message(at);
}
template struct FieldResponse<'E'>;
template struct FieldResponse<'N'>;

Result<FunctionCallResponse> FunctionCallResponse::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  FunctionCallResponse m{r.nullable_bytes()};
  return done(r, m, "FunctionCallResponse");
}
void FunctionCallResponse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.nullable_bytes(result);
  out.end_message(at);
}

Result<NegotiateProtocolVersion> NegotiateProtocolVersion::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  NegotiateProtocolVersion m;
  m.newest_minor = r.i32();
  int32_t n = r.i32();
  if (r.check_count(n, 1, "NegotiateProtocolVersion option")) {
    m.unrecognized_options.reserve(static_cast<size_t>(n));
    for (int32_t i = 0; i < n && r.ok(); ++i) m.unrecognized_options.push_back(r.cstring());
  }
  return done(r, std::move(m), "NegotiateProtocolVersion");
}
void NegotiateProtocolVersion::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i32(newest_minor);
  out.i32(static_cast<int32_t>(unrecognized_options.size()));
  for (std::string_view o : unrecognized_options) out.cstring(o);
  out.end_message(at);
}

Result<NotificationResponse> NotificationResponse::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  NotificationResponse m;
  m.process_id = r.i32();
  m.channel = r.cstring();
  m.payload = r.cstring();
  return done(r, m, "NotificationResponse");
}
void NotificationResponse::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i32(process_id);
  out.cstring(channel);
  out.cstring(payload);
  out.end_message(at);
}

Result<ParameterDescription> ParameterDescription::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  ParameterDescription m;
  int16_t n = r.i16();
  if (r.check_count(n, 4, "ParameterDescription type")) {
    m.types.reserve(static_cast<size_t>(n));
    for (int16_t i = 0; i < n; ++i) m.types.push_back(r.u32());
  }
  return done(r, std::move(m), "ParameterDescription");
}
void ParameterDescription::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i16(static_cast<int16_t>(types.size()));
  for (uint32_t t : types) out.u32(t);
  out.end_message(at);
}

Result<ParameterStatus> ParameterStatus::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  ParameterStatus m;
  m.name = r.cstring();
  m.value = r.cstring();
  return done(r, m, "ParameterStatus");
}
void ParameterStatus::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.cstring(name);
  out.cstring(value);
  out.end_message(at);
}

Result<ReadyForQuery> ReadyForQuery::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  ReadyForQuery m;
  m.status = static_cast<char>(r.u8());
  if (r.ok() && m.status != 'I' && m.status != 'T' && m.status != 'E')
    r.fail_at(0, Errc::kBadValue, fmt::format("ReadyForQuery status 0x{:02x}", static_cast<uint8_t>(m.status)));
  return done(r, m, "ReadyForQuery");
}
void ReadyForQuery::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.u8(static_cast<uint8_t>(status));
  out.end_message(at);
}

Result<RowDescription> RowDescription::decode(Bytes body, uint64_t offset) {
  Reader r(body, offset);
  RowDescription m;
  int16_t n = r.i16();
  // name (at least the NUL) + 18 bytes of fixed fields
  if (r.check_count(n, 19, "RowDescription field")) {
    m.fields.reserve(static_cast<size_t>(n));
    for (int16_t i = 0; i < n && r.ok(); ++i) {
      Field f;
      f.name = r.cstring();
      f.table_oid = r.u32();
      f.column = r.i16();
      f.type_oid = r.u32();
      f.type_size = r.i16();
      f.type_modifier = r.i32();
      size_t format_at = r.position();
      f.format = r.i16();
      if (r.ok() && f.format != 0 && f.format != 1)
        r.fail_at(format_at, Errc::kBadValue, fmt::format("RowDescription format {} is not 0 or 1", f.format));
      m.fields.push_back(f);
    }
  }
  return done(r, std::move(m), "RowDescription");
}
void RowDescription::encode(Buffer& out) const {
  size_t at = out.begin_message(kType);
  out.i16(static_cast<int16_t>(fields.size()));
  for (const Field& f : fields) {
    out.cstring(f.name);
    out.u32(f.table_oid);
    out.i16(f.column);
    out.u32(f.type_oid);
    out.i16(f.type_size);
    out.i32(f.type_modifier);
    out.i16(f.format);
  }
  out.end_message(at);
}

}  // namespace be

// ---------------------------------------------------------------------------
namespace {

template <class Variant, class T>
Result<Variant> lift(Result<T>&& r) {
  if (!r.ok()) return r.error();
  return Variant(std::move(r).value());
}

Error not_whole(const Frame& f) { return Error{Errc::kUnsupported, f.offset, "only whole frames can be decoded"}; }

}  // namespace

Result<fe::Message> decode_frontend(const Frame& frame, PasswordKind password_kind) {
  using M = fe::Message;
  if (!frame.whole()) return not_whole(frame);
  const uint64_t at = frame.offset + (frame.kind == FrameKind::kTyped ? 5 : 4);
  const Bytes body = frame.body;
  if (frame.kind == FrameKind::kStartup) {
    switch (frame.startup_code()) {
      case kSslRequestCode: return lift<M>(fe::SslRequest::decode(body, at));
      case kGssEncRequestCode: return lift<M>(fe::GssEncRequest::decode(body, at));
      case kCancelRequestCode: return lift<M>(fe::CancelRequest::decode(body, at));
      default: return lift<M>(fe::StartupMessage::decode(body, at));
    }
  }
  if (frame.kind != FrameKind::kTyped) {
    return Error{Errc::kUnexpected, frame.offset, "not a frontend message"};
  }
  switch (static_cast<FrontendType>(frame.type)) {
    case FrontendType::kBind: return lift<M>(fe::Bind::decode(body, at));
    case FrontendType::kClose: return lift<M>(fe::Close::decode(body, at));
    case FrontendType::kCopyData: return lift<M>(CopyData::decode(body, at));
    case FrontendType::kCopyDone: return lift<M>(CopyDone::decode(body, at));
    case FrontendType::kCopyFail: return lift<M>(fe::CopyFail::decode(body, at));
    case FrontendType::kDescribe: return lift<M>(fe::Describe::decode(body, at));
    case FrontendType::kExecute: return lift<M>(fe::Execute::decode(body, at));
    case FrontendType::kFlush: return lift<M>(fe::Flush::decode(body, at));
    case FrontendType::kFunctionCall: return lift<M>(fe::FunctionCall::decode(body, at));
    case FrontendType::kParse: return lift<M>(fe::Parse::decode(body, at));
    case FrontendType::kQuery: return lift<M>(fe::Query::decode(body, at));
    case FrontendType::kSync: return lift<M>(fe::Sync::decode(body, at));
    case FrontendType::kTerminate: return lift<M>(fe::Terminate::decode(body, at));
    case FrontendType::kPassword:
      switch (password_kind) {
        case PasswordKind::kPassword: return lift<M>(fe::PasswordMessage::decode(body, at));
        case PasswordKind::kSaslInitial: return lift<M>(fe::SaslInitialResponse::decode(body, at));
        case PasswordKind::kSasl: return lift<M>(fe::SaslResponse::decode(body, at));
        case PasswordKind::kGss: return lift<M>(fe::GssResponse::decode(body, at));
      }
      break;
  }
  return Error{Errc::kUnknownType, frame.offset, fmt::format("unknown frontend message type 0x{:02x}", frame.type)};
}

Result<be::Message> decode_backend(const Frame& frame) {
  using M = be::Message;
  if (!frame.whole()) return not_whole(frame);
  if (frame.kind == FrameKind::kAnswer) return M(be::EncryptionAnswer{static_cast<char>(frame.type)});
  if (frame.kind != FrameKind::kTyped) {
    return Error{Errc::kUnexpected, frame.offset, "not a backend message"};
  }
  const uint64_t at = frame.offset + 5;
  const Bytes body = frame.body;
  switch (static_cast<BackendType>(frame.type)) {
    case BackendType::kAuthentication: return lift<M>(be::Authentication::decode(body, at));
    case BackendType::kBackendKeyData: return lift<M>(be::BackendKeyData::decode(body, at));
    case BackendType::kBindComplete: return lift<M>(be::BindComplete::decode(body, at));
    case BackendType::kCloseComplete: return lift<M>(be::CloseComplete::decode(body, at));
    case BackendType::kCommandComplete: return lift<M>(be::CommandComplete::decode(body, at));
    case BackendType::kCopyData: return lift<M>(CopyData::decode(body, at));
    case BackendType::kCopyDone: return lift<M>(CopyDone::decode(body, at));
    case BackendType::kCopyInResponse: return lift<M>(be::CopyInResponse::decode(body, at));
    case BackendType::kCopyOutResponse: return lift<M>(be::CopyOutResponse::decode(body, at));
    case BackendType::kCopyBothResponse: return lift<M>(be::CopyBothResponse::decode(body, at));
    case BackendType::kDataRow: return lift<M>(be::DataRow::decode(body, at));
    case BackendType::kEmptyQueryResponse: return lift<M>(be::EmptyQueryResponse::decode(body, at));
    case BackendType::kErrorResponse: return lift<M>(be::ErrorResponse::decode(body, at));
    case BackendType::kFunctionCallResponse: return lift<M>(be::FunctionCallResponse::decode(body, at));
    case BackendType::kNegotiateProtocolVersion: return lift<M>(be::NegotiateProtocolVersion::decode(body, at));
    case BackendType::kNoData: return lift<M>(be::NoData::decode(body, at));
    case BackendType::kNoticeResponse: return lift<M>(be::NoticeResponse::decode(body, at));
    case BackendType::kNotificationResponse: return lift<M>(be::NotificationResponse::decode(body, at));
    case BackendType::kParameterDescription: return lift<M>(be::ParameterDescription::decode(body, at));
    case BackendType::kParameterStatus: return lift<M>(be::ParameterStatus::decode(body, at));
    case BackendType::kParseComplete: return lift<M>(be::ParseComplete::decode(body, at));
    case BackendType::kPortalSuspended: return lift<M>(be::PortalSuspended::decode(body, at));
    case BackendType::kReadyForQuery: return lift<M>(be::ReadyForQuery::decode(body, at));
    case BackendType::kRowDescription: return lift<M>(be::RowDescription::decode(body, at));
  }
  return Error{Errc::kUnknownType, frame.offset, fmt::format("unknown backend message type 0x{:02x}", frame.type)};
}

void encode(const fe::Message& msg, Buffer& out) {
  std::visit([&](const auto& m) { m.encode(out); }, msg);
}
void encode(const be::Message& msg, Buffer& out) {
  std::visit([&](const auto& m) { m.encode(out); }, msg);
}

}  // namespace pgwire
