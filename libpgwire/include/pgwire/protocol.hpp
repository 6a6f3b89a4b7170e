// Constants of the PostgreSQL frontend/backend protocol 3.0 and 3.2: every
// type byte, request code and limit lives here and nowhere else.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgwire {

enum class Direction : uint8_t { kFrontend = 0, kBackend = 1 };
inline const char* direction_name(Direction d) { return d == Direction::kFrontend ? "F" : "B"; }

// Type bytes sent by the client.
enum class FrontendType : char {
  kBind = 'B',
  kClose = 'C',
  kCopyData = 'd',
  kCopyDone = 'c',
  kCopyFail = 'f',
  kDescribe = 'D',
  kExecute = 'E',
  kFlush = 'H',
  kFunctionCall = 'F',
  kParse = 'P',
  kPassword = 'p',  // PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse
  kQuery = 'Q',
  kSync = 'S',
  kTerminate = 'X',
};

// Type bytes sent by the server.
enum class BackendType : char {
  kAuthentication = 'R',
  kBackendKeyData = 'K',
  kBindComplete = '2',
  kCloseComplete = '3',
  kCommandComplete = 'C',
  kCopyData = 'd',
  kCopyDone = 'c',
  kCopyInResponse = 'G',
  kCopyOutResponse = 'H',
  kCopyBothResponse = 'W',
  kDataRow = 'D',
  kEmptyQueryResponse = 'I',
  kErrorResponse = 'E',
  kFunctionCallResponse = 'V',
  kNegotiateProtocolVersion = 'v',
  kNoData = 'n',
  kNoticeResponse = 'N',
  kNotificationResponse = 'A',
  kParameterDescription = 't',
  kParameterStatus = 'S',
  kParseComplete = '1',
  kPortalSuspended = 's',
  kReadyForQuery = 'Z',
  kRowDescription = 'T',
};

// Codes of the untyped startup-phase packets.
inline constexpr uint32_t kProtocol30 = 196608;  // 3 << 16 | 0
inline constexpr uint32_t kProtocol32 = 196610;  // 3 << 16 | 2
inline constexpr uint32_t kCancelRequestCode = 80877102;
inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint8_t kTlsHandshakeByte = 0x16;  // first byte of a direct-TLS ClientHello

inline constexpr uint16_t protocol_major(uint32_t code) { return static_cast<uint16_t>(code >> 16); }
inline constexpr uint16_t protocol_minor(uint32_t code) { return static_cast<uint16_t>(code & 0xffff); }

// Authentication request sub-codes ('R').
enum class AuthCode : int32_t {
  kOk = 0,
  kKerberosV5 = 2,
  kCleartextPassword = 3,
  kMd5Password = 5,
  kGss = 7,
  kGssContinue = 8,
  kSspi = 9,
  kSasl = 10,
  kSaslContinue = 11,
  kSaslFinal = 12,
};

// Limits the server applies (src/include/libpq/libpq.h): PQ_SMALL_MESSAGE_LIMIT
// for the startup packet and the small control messages, PQ_LARGE_MESSAGE_LIMIT
// (MaxAllocSize - 1) for the rest.
inline constexpr uint32_t kMaxStartupPacket = 10000;
inline constexpr uint32_t kSmallMessageLimit = 10000;
inline constexpr uint32_t kLargeMessageLimit = 0x3fffffff - 1;
inline constexpr uint32_t kMinCancelKey = 4;
inline constexpr uint32_t kMaxCancelKey = 256;

// Largest length field a frontend message of this type may carry; 0 when the
// type byte is not a frontend message at all.
uint32_t frontend_max_length(uint8_t type);
// Same for backend messages (the server imposes no limit on itself; clients
// accept up to the allocation limit).
uint32_t backend_max_length(uint8_t type);

// Names for logs and traces: "Query", "ErrorResponse", ...; "Unknown" otherwise.
std::string_view frontend_type_name(uint8_t type);
std::string_view backend_type_name(uint8_t type);
std::string_view auth_code_name(int32_t code);

}  // namespace pgwire
