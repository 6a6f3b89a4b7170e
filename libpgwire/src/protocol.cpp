#include "pgwire/protocol.hpp"

#include <array>

namespace pgwire {
namespace {

constexpr uint32_t frontend_limit(uint8_t type) {
  switch (static_cast<FrontendType>(type)) {
    case FrontendType::kClose:
    case FrontendType::kDescribe:
    case FrontendType::kExecute:
    case FrontendType::kFlush:
    case FrontendType::kSync:
    case FrontendType::kTerminate:
    case FrontendType::kCopyDone:
    case FrontendType::kCopyFail: return kSmallMessageLimit;
    case FrontendType::kBind:
    case FrontendType::kCopyData:
    case FrontendType::kFunctionCall:
    case FrontendType::kParse:
    case FrontendType::kPassword:
    case FrontendType::kQuery: return kLargeMessageLimit;
  }
  return 0;
}

constexpr std::string_view backend_name(uint8_t type) {
  switch (static_cast<BackendType>(type)) {
    case BackendType::kAuthentication: return "Authentication";
    case BackendType::kBackendKeyData: return "BackendKeyData";
    case BackendType::kBindComplete: return "BindComplete";
    case BackendType::kCloseComplete: return "CloseComplete";
    case BackendType::kCommandComplete: return "CommandComplete";
    case BackendType::kCopyData: return "CopyData";
    case BackendType::kCopyDone: return "CopyDone";
    case BackendType::kCopyInResponse: return "CopyInResponse";
    case BackendType::kCopyOutResponse: return "CopyOutResponse";
    case BackendType::kCopyBothResponse: return "CopyBothResponse";
    case BackendType::kDataRow: return "DataRow";
    case BackendType::kEmptyQueryResponse: return "EmptyQueryResponse";
    case BackendType::kErrorResponse: return "ErrorResponse";
    case BackendType::kFunctionCallResponse: return "FunctionCallResponse";
    case BackendType::kNegotiateProtocolVersion: return "NegotiateProtocolVersion";
    case BackendType::kNoData: return "NoData";
    case BackendType::kNoticeResponse: return "NoticeResponse";
    case BackendType::kNotificationResponse: return "NotificationResponse";
    case BackendType::kParameterDescription: return "ParameterDescription";
    case BackendType::kParameterStatus: return "ParameterStatus";
    case BackendType::kParseComplete: return "ParseComplete";
    case BackendType::kPortalSuspended: return "PortalSuspended";
    case BackendType::kReadyForQuery: return "ReadyForQuery";
    case BackendType::kRowDescription: return "RowDescription";
  }
  return "Unknown";
}

// The framer looks the limit up for every frame: tables, not a switch and a
// string comparison.
template <class Limit>
constexpr std::array<uint32_t, 256> limits_table(Limit limit) {
  std::array<uint32_t, 256> t{};
  for (size_t i = 0; i < t.size(); ++i) t[i] = limit(static_cast<uint8_t>(i));
  return t;
}
constexpr auto kFrontendLimits = limits_table(frontend_limit);
constexpr auto kBackendLimits =
    limits_table([](uint8_t type) { return backend_name(type) == "Unknown" ? 0 : kLargeMessageLimit; });

}  // namespace

uint32_t frontend_max_length(uint8_t type) { return kFrontendLimits[type]; }
uint32_t backend_max_length(uint8_t type) { return kBackendLimits[type]; }
std::string_view backend_type_name(uint8_t type) { return backend_name(type); }

std::string_view frontend_type_name(uint8_t type) {
  switch (static_cast<FrontendType>(type)) {
    case FrontendType::kBind: return "Bind";
    case FrontendType::kClose: return "Close";
    case FrontendType::kCopyData: return "CopyData";
    case FrontendType::kCopyDone: return "CopyDone";
    case FrontendType::kCopyFail: return "CopyFail";
    case FrontendType::kDescribe: return "Describe";
    case FrontendType::kExecute: return "Execute";
    case FrontendType::kFlush: return "Flush";
    case FrontendType::kFunctionCall: return "FunctionCall";
    case FrontendType::kParse: return "Parse";
    case FrontendType::kPassword: return "PasswordMessage";
    case FrontendType::kQuery: return "Query";
    case FrontendType::kSync: return "Sync";
    case FrontendType::kTerminate: return "Terminate";
  }
  return "Unknown";
}

std::string_view auth_code_name(int32_t code) {
  switch (static_cast<AuthCode>(code)) {
    case AuthCode::kOk: return "AuthenticationOk";
    case AuthCode::kKerberosV5: return "AuthenticationKerberosV5";
    case AuthCode::kCleartextPassword: return "AuthenticationCleartextPassword";
    case AuthCode::kMd5Password: return "AuthenticationMD5Password";
    case AuthCode::kGss: return "AuthenticationGSS";
    case AuthCode::kGssContinue: return "AuthenticationGSSContinue";
    case AuthCode::kSspi: return "AuthenticationSSPI";
    case AuthCode::kSasl: return "AuthenticationSASL";
    case AuthCode::kSaslContinue: return "AuthenticationSASLContinue";
    case AuthCode::kSaslFinal: return "AuthenticationSASLFinal";
  }
  return "AuthenticationUnknown";
}

}  // namespace pgwire
