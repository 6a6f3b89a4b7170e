#include "pgwire/trace.hpp"

#include <fmt/format.h>

#include <type_traits>

namespace pgwire {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  struct Lead {
    unsigned char mask, bits;  // (b0 & mask) == bits identifies the lead byte
    size_t length;
    uint32_t min;  // smallest code point of this length: anything less is overlong
  };
  static constexpr Lead kLeads[] = {{0xe0, 0xc0, 2, 0x80}, {0xf0, 0xe0, 3, 0x800}, {0xf8, 0xf0, 4, 0x10000}};
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  const Lead* lead = nullptr;
  for (const Lead& l : kLeads)
    if ((b0 & l.mask) == l.bits) lead = &l;
  if (lead == nullptr) return 0;
  const size_t n = lead->length;
  const uint32_t min = lead->min;
  uint32_t cp = b0 & static_cast<unsigned char>(~lead->mask);
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  // C1 controls and the Unicode line/paragraph separators would break the
  // one-line promise in some viewers: escape them byte by byte.
  if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) return 0;
  return n;
}

void append_hex_byte(std::string& out, unsigned char c) { out += fmt::format("\\x{:02x}", c); }

// Escapes `s` for a one-line trace; quote == 0 means no quotes around it.
void append_escaped(std::string& out, std::string_view s, char quote) {
  if (quote != 0) out.push_back(quote);
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\' || (quote != 0 && c == static_cast<unsigned char>(quote))) {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (size_t n = c < 0x20 || c == 0x7f ? 0 : utf8_sequence(s, i); n == 0) {  // control or not UTF-8
      append_hex_byte(out, c);
    } else {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    ++i;
  }
  if (quote != 0) out.push_back(quote);
}

// Formats one message into `out`; the ones that hide volatile data look at opts.
class Tracer {
 public:
  Tracer(std::string& out, const TraceOptions& opts) : out_(out), hide_(opts.hide_volatile) {}

  // ---- field helpers
  void name(std::string_view n) { out_.append(n); }
  void str(std::string_view s) {
    out_.push_back(' ');
    append_escaped(out_, s, '"');
  }
  void text(Bytes b) {  // bytes that are usually text, format unknown
    out_.push_back(' ');
    append_escaped(out_, as_string_view(b), '\'');
  }
  void blob(Bytes b) {  // bytes known to be binary
    out_ += " \\x";
    out_ += to_hex(b);
  }
  template <class Int>
  void num(Int v) {
    out_ += fmt::format(" {}", v);
  }
  void chr(char c) {
    out_.push_back(' ');
    append_escaped(out_, std::string_view(&c, 1), 0);
  }
  void placeholder(std::string_view p) {
    out_.push_back(' ');
    out_.append(p);
  }
  void pid(int32_t p) {
    if (hide_) {
      placeholder("<pid>");
    } else {
      num(p);
    }
  }
  void key(Bytes k) {
    if (hide_) {
      placeholder("<key>");
    } else {
      blob(k);
    }
  }
  void token(Bytes t) {
    if (hide_) {
      placeholder("<token>");
    } else {
      blob(t);
    }
  }
  // A length-prefixed value: NULL as -1, otherwise the length and the bytes.
  void value(const Value& v, int16_t format) {
    if (!v) {
      num(-1);
      return;
    }
    num(v->size());
    if (format == 1) {
      blob(*v);
    } else {
      text(*v);
    }
  }
  void formats(const std::vector<int16_t>& f) {
    num(f.size());
    for (int16_t x : f) num(x);
  }
  // SCRAM messages are comma-separated attribute=value pairs; the nonce (r),
  // salt (s), client proof (p) and server signature (v) change every run.
  void scram(Bytes data) {
    if (!hide_) {
      text(data);
      return;
    }
    std::string_view s = as_string_view(data);
    std::string masked;
    for (size_t start = 0;;) {
      size_t comma = s.find(',', start);
      std::string_view attr = s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
      std::string_view placeholder_value;
      if (attr.size() >= 2 && attr[1] == '=') {
        switch (attr[0]) {
          case 'r': placeholder_value = "<nonce>"; break;
          case 's': placeholder_value = "<salt>"; break;
          case 'p': placeholder_value = "<proof>"; break;
          case 'v': placeholder_value = "<signature>"; break;
          default: break;
        }
      }
      if (placeholder_value.empty()) {
        masked.append(attr);
      } else {
        masked.append(attr.substr(0, 2));
        masked.append(placeholder_value);
      }
      if (comma == std::string_view::npos) break;
      masked.push_back(',');
      start = comma + 1;
    }
    text(as_bytes(masked));
  }

  // ---- shared
  template <char Type>
  void operator()(const EmptyMessage<Type>&) {
    name(backend_ ? backend_type_name(static_cast<uint8_t>(Type)) : frontend_type_name(static_cast<uint8_t>(Type)));
  }
  void operator()(const CopyData& m) {
    name("CopyData");
    text(m.data);
  }

  // ---- frontend
  void operator()(const fe::StartupMessage& m) {
    name("StartupMessage");
    out_ += fmt::format(" {}.{}", protocol_major(m.protocol), protocol_minor(m.protocol));
    for (const auto& [k, v] : m.params) {
      str(k);
      str(v);
    }
  }
  void operator()(const fe::SslRequest&) { name("SSLRequest"); }
  void operator()(const fe::GssEncRequest&) { name("GSSENCRequest"); }
  void operator()(const fe::CancelRequest& m) {
    name("CancelRequest");
    pid(m.process_id);
    key(m.secret_key);
  }
  void operator()(const fe::Query& m) {
    name("Query");
    str(m.sql);
  }
  void operator()(const fe::Parse& m) {
    name("Parse");
    str(m.statement);
    str(m.sql);
    num(m.param_types.size());
    for (uint32_t t : m.param_types) num(t);
  }
  void operator()(const fe::Bind& m) {
    name("Bind");
    str(m.portal);
    str(m.statement);
    formats(m.param_formats);
    num(m.params.size());
    for (size_t i = 0; i < m.params.size(); ++i) value(m.params[i], m.param_format(i));
    formats(m.result_formats);
  }
  void operator()(const fe::Describe& m) {
    name("Describe");
    chr(m.target);
    str(m.name);
  }
  void operator()(const fe::Close& m) {
    name("Close");
    chr(m.target);
    str(m.name);
  }
  void operator()(const fe::Execute& m) {
    name("Execute");
    str(m.portal);
    num(m.max_rows);
  }
  void operator()(const fe::CopyFail& m) {
    name("CopyFail");
    str(m.message);
  }
  void operator()(const fe::FunctionCall& m) {
    name("FunctionCall");
    num(m.function_oid);
    formats(m.arg_formats);
    num(m.args.size());
    for (size_t i = 0; i < m.args.size(); ++i) value(m.args[i], m.arg_format(i));
    num(m.result_format);
  }
  void operator()(const fe::PasswordMessage& m) {
    name("PasswordMessage");
    // "md5" + 32 hex digits depends on the per-connection salt.
    if (hide_ && m.password.size() == 35 && m.password.starts_with("md5")) {
      placeholder("<md5>");
    } else {
      str(m.password);
    }
  }
  void operator()(const fe::SaslInitialResponse& m) {
    name("SASLInitialResponse");
    str(m.mechanism);
    if (!m.data) {
      num(-1);
      return;
    }
    num(m.data->size());
    scram(*m.data);
  }
  void operator()(const fe::SaslResponse& m) {
    name("SASLResponse");
    scram(m.data);
  }
  void operator()(const fe::GssResponse& m) {
    name("GSSResponse");
    token(m.data);
  }

  // ---- backend
  void operator()(const be::Authentication& m) {
    name(auth_code_name(m.code));
    switch (static_cast<AuthCode>(m.code)) {
      case AuthCode::kMd5Password:
        if (hide_) {
          placeholder("<salt>");
        } else {
          blob(m.data);
        }
        break;
      case AuthCode::kGssContinue: token(m.data); break;
      case AuthCode::kSasl:
        for (std::string_view mech : m.mechanisms) str(mech);
        break;
      case AuthCode::kSaslContinue:
      case AuthCode::kSaslFinal: scram(m.data); break;
      default:
        if (!m.data.empty()) blob(m.data);  // only if built by hand: the decoder keeps none
        break;
    }
  }
  void operator()(const be::BackendKeyData& m) {
    name("BackendKeyData");
    pid(m.process_id);
    key(m.secret_key);
  }
  void operator()(const be::CommandComplete& m) {
    name("CommandComplete");
    str(m.tag);
  }
  template <char Type>
  void operator()(const be::CopyResponse<Type>& m) {
    name(backend_type_name(static_cast<uint8_t>(Type)));
    num(static_cast<int>(m.format));
    formats(m.column_formats);
  }
  void operator()(const be::DataRow& m) {
    name("DataRow");
    num(m.values.size());
    for (const Value& v : m.values) value(v, 0);  // the formats are in the RowDescription
  }
  template <char Type>
  void operator()(const be::FieldResponse<Type>& m) {
    name(Type == 'E' ? "ErrorResponse" : "NoticeResponse");
    for (const auto& [code, text_value] : m.fields) {
      chr(code);
      str(text_value);
    }
  }
  void operator()(const be::FunctionCallResponse& m) {
    name("FunctionCallResponse");
    value(m.result, 0);
  }
  void operator()(const be::NegotiateProtocolVersion& m) {
    name("NegotiateProtocolVersion");
    num(m.newest_minor);
    num(m.unrecognized_options.size());
    for (std::string_view o : m.unrecognized_options) str(o);
  }
  void operator()(const be::NotificationResponse& m) {
    name("NotificationResponse");
    pid(m.process_id);
    str(m.channel);
    str(m.payload);
  }
  void operator()(const be::ParameterDescription& m) {
    name("ParameterDescription");
    num(m.types.size());
    for (uint32_t t : m.types) num(t);
  }
  void operator()(const be::ParameterStatus& m) {
    name("ParameterStatus");
    str(m.name);
    str(m.value);
  }
  void operator()(const be::ReadyForQuery& m) {
    name("ReadyForQuery");
    chr(m.status);
  }
  void operator()(const be::RowDescription& m) {
    name("RowDescription");
    num(m.fields.size());
    for (const auto& f : m.fields) {
      str(f.name);
      num(f.table_oid);
      num(f.column);
      num(f.type_oid);
      num(f.type_size);
      num(f.type_modifier);
      num(f.format);
    }
  }
  void operator()(const be::EncryptionAnswer& m) {
    name("EncryptionAnswer");
    chr(m.answer);
  }

  void set_backend(bool b) { backend_ = b; }

 private:
  std::string& out_;
  bool hide_;
  bool backend_ = false;
};

std::string_view password_name(PasswordKind kind) {
  switch (kind) {
    case PasswordKind::kPassword: return "PasswordMessage";
    case PasswordKind::kSaslInitial: return "SASLInitialResponse";
    case PasswordKind::kSasl: return "SASLResponse";
    case PasswordKind::kGss: return "GSSResponse";
  }
  return "PasswordMessage";
}

// Name of what a frame would be, for lines about frames that cannot be decoded.
std::string_view frame_name(Direction dir, const Frame& f, PasswordKind kind) {
  if (f.kind == FrameKind::kStartup) {
    switch (f.startup_code()) {
      case kSslRequestCode: return "SSLRequest";
      case kGssEncRequestCode: return "GSSENCRequest";
      case kCancelRequestCode: return "CancelRequest";
      default: return "StartupMessage";
    }
  }
  if (f.kind == FrameKind::kAnswer) return "EncryptionAnswer";
  if (dir == Direction::kFrontend) {
    return f.type == static_cast<uint8_t>(FrontendType::kPassword) ? password_name(kind) : frontend_type_name(f.type);
  }
  return backend_type_name(f.type);
}

}  // namespace

std::string trace_quote(std::string_view s, char quote) {
  std::string out;
  append_escaped(out, s, quote);
  return out;
}

std::string trace_message(const fe::Message& msg, const TraceOptions& opts) {
  std::string out;
  Tracer t(out, opts);
  std::visit(t, msg);
  return out;
}

std::string trace_message(const be::Message& msg, const TraceOptions& opts) {
  std::string out;
  Tracer t(out, opts);
  t.set_backend(true);
  std::visit(t, msg);
  return out;
}

std::string trace_frame(Direction dir, const Frame& frame, PasswordKind password_kind, const TraceOptions& opts) {
  std::string out = direction_name(dir);
  if (frame.kind == FrameKind::kOpaque) {
    out += fmt::format(" <encrypted: {} bytes>", frame.body.size());
    return out;
  }
  out += fmt::format(" {} ", frame.kind == FrameKind::kAnswer ? 1u : frame.length);
  if (!frame.whole()) {
    out += frame_name(dir, frame, password_kind);
    out += fmt::format(" <partial: body bytes {}..{} of {}>", frame.body_offset,
                       uint64_t{frame.body_offset} + frame.body.size(), frame.body_length());
    return out;
  }
  auto undecodable = [&](const Error& e) {
    out += frame_name(dir, frame, password_kind);
    out += " <undecodable: ";
    append_escaped(out, e.describe(), 0);  // messages may quote raw bytes
    out += '>';
    return out;
  };
  if (dir == Direction::kFrontend) {
    Result<fe::Message> m = decode_frontend(frame, password_kind);
    if (!m) return undecodable(m.error());
    out += trace_message(*m, opts);
  } else {
    Result<be::Message> m = decode_backend(frame);
    if (!m) return undecodable(m.error());
    out += trace_message(*m, opts);
  }
  return out;
}

}  // namespace pgwire
