// A deliberately tiny, independent splitter of recorded PostgreSQL streams into messages, used to
// check the recordings and the relay. It does not use libpgwire: the corpus must be verifiable
// without the code it is meant to test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recording.hpp"

namespace pgwire::test::scan {

constexpr uint32_t kProtocol30 = 196608;
constexpr uint32_t kCancelCode = 80877102;
constexpr uint32_t kSslCode = 80877103;
constexpr uint32_t kGssEncCode = 80877104;

struct Message {
  char type = 0;      // 0 for an untyped startup-phase packet (see code), 'N'/'S' for SSL answers
  uint32_t code = 0;  // untyped packets: the request code
  std::string body;   // after the length word (after the code for untyped packets)
  size_t chunk = 0;   // index in Recording::chunks of the chunk holding the message's last byte
};

struct Stream {
  std::vector<Message> messages;
  std::string error;    // empty when the stream split cleanly
  size_t leftover = 0;  // bytes after the last complete message
};

inline uint32_t be32(std::string_view s, size_t at) {
  return (uint32_t{static_cast<unsigned char>(s[at])} << 24) | (uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
         (uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) | uint32_t{static_cast<unsigned char>(s[at + 3])};
}

// Splits both directions of one connection. The frontend starts with untyped packets (SSLRequest,
// GSSENCRequest, CancelRequest, StartupMessage); each SSL/GSS request takes one answer byte from
// the backend stream before the backend's typed messages start.
inline std::pair<Stream, Stream> split_connection(const Recording& rec, int conn) {
  std::string bytes[2];
  std::vector<std::pair<size_t, size_t>> ends[2];  // (cumulative end offset, chunk index)
  for (size_t i = 0; i < rec.chunks.size(); ++i) {
    const Chunk& c = rec.chunks[i];
    if (c.conn != conn) continue;
    int side = c.dir == 'F' ? 0 : 1;
    for (std::byte b : c.bytes) bytes[side].push_back(static_cast<char>(b));
    ends[side].emplace_back(bytes[side].size(), i);
  }
  auto chunk_of = [&](int side, size_t end) {
    for (const auto& [e, index] : ends[side]) {
      if (e >= end) return index;
    }
    return size_t{0};
  };
  Stream fe;
  Stream be;
  size_t fpos = 0;
  size_t bpos = 0;
  const std::string& f = bytes[0];
  const std::string& b = bytes[1];
  // Startup phase.
  while (true) {
    if (f.size() - fpos < 8) {
      fe.error = "frontend ends inside the startup phase";
      break;
    }
    uint32_t len = be32(f, fpos);
    if (len < 8 || f.size() - fpos < len) {
      fe.error = "bad startup packet length";
      break;
    }
    Message m;
    m.code = be32(f, fpos + 4);
    m.body = f.substr(fpos + 8, len - 8);
    fpos += len;
    m.chunk = chunk_of(0, fpos);
    fe.messages.push_back(m);
    if (m.code == kSslCode || m.code == kGssEncCode) {
      if (bpos >= b.size()) {
        be.error = "no answer to SSL/GSS request";
        break;
      }
      Message answer;
      answer.type = b[bpos++];
      answer.chunk = chunk_of(1, bpos);
      be.messages.push_back(answer);
      if (answer.type != 'N') {
        be.error = "encryption accepted: cannot follow";
        break;
      }
      continue;
    }
    break;  // StartupMessage or CancelRequest: typed messages (if any) follow
  }
  auto typed = [&](const std::string& s, size_t pos, int side, Stream& out) {
    if (!out.error.empty()) return;
    while (s.size() - pos >= 5) {
      uint32_t len = be32(s, pos + 1);
      if (len < 4) {
        out.error = "message length below 4";
        return;
      }
      if (s.size() - pos - 1 < len) break;
      Message m;
      m.type = s[pos];
      m.body = s.substr(pos + 5, len - 4);
      pos += 1 + len;
      m.chunk = chunk_of(side, pos);
      out.messages.push_back(m);
    }
    out.leftover = s.size() - pos;
  };
  if (fe.error.empty()) typed(f, fpos, 0, fe);
  typed(b, bpos, 1, be);
  return {fe, be};
}

inline size_t count(const Stream& s, char type) {
  size_t n = 0;
  for (const auto& m : s.messages) n += m.type == type ? 1 : 0;
  return n;
}

// The value of one field (e.g. 'C' for the SQLSTATE) of an ErrorResponse/NoticeResponse body.
inline std::string error_field(const std::string& body, char field) {
  size_t pos = 0;
  while (pos < body.size() && body[pos] != '\0') {
    char f = body[pos++];
    size_t end = body.find('\0', pos);
    if (end == std::string::npos) return {};
    if (f == field) return body.substr(pos, end - pos);
    pos = end + 1;
  }
  return {};
}

inline std::vector<std::string> sqlstates(const Stream& backend) {
  std::vector<std::string> codes;
  for (const auto& m : backend.messages) {
    if (m.type == 'E') codes.push_back(error_field(m.body, 'C'));
  }
  return codes;
}

}  // namespace pgwire::test::scan
