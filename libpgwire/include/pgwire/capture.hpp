// The capture file format (docs/capture-format.md): a header, then
// length-prefixed, checksummed records. Both reader and writer stream: the
// writer buffers and writes in large blocks, the reader holds one record at a
// time whatever the size of the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/result.hpp"

namespace pgwire {

inline constexpr uint16_t kCaptureVersionMajor = 1;
inline constexpr uint16_t kCaptureVersionMinor = 0;
// A record's payload never exceeds this; the writer splits larger frames.
inline constexpr uint32_t kMaxCaptureRecordPayload = 1 << 20;

enum class CaptureRecordType : uint16_t {
  kSessionOpen = 1,   // session id, time, client and server addresses
  kFrame = 2,         // session id, time, direction, frame (or piece) flags, raw bytes
  kSessionClose = 3,  // session id, time, reason
  kSessionMeta = 4,   // session id, time, key, value (e.g. "backend_key_data")
};

// Flags of a kFrame record.
enum CaptureFrameFlags : uint8_t {
  kFrameFirst = 1,     // the bytes start with the frame's header
  kFrameLast = 2,      // the bytes end the frame
  kFrameRedacted = 4,  // the body was left out (password / SASL); only the header is stored
};

// One record as read back. Views point into the reader's buffer and are valid
// until the next call to CaptureReader::next().
struct CaptureRecord {
  CaptureRecordType type = CaptureRecordType::kFrame;
  uint64_t file_offset = 0;  // where the record starts in the file
  uint64_t session_id = 0;
  int64_t ts_ns = 0;         // nanoseconds since the Unix epoch

  // kSessionOpen
  std::string_view client;
  std::string_view server;
  // kFrame
  Direction direction = Direction::kFrontend;
  uint8_t frame_flags = kFrameFirst | kFrameLast;
  FrameKind frame_kind = FrameKind::kTyped;
  Bytes data;  // raw bytes exactly as on the wire (header included when kFrameFirst)
  // kSessionClose
  std::string_view reason;
  // kSessionMeta
  std::string_view key;
  Bytes value;

  bool first() const { return frame_flags & kFrameFirst; }
  bool last() const { return frame_flags & kFrameLast; }
  bool redacted() const { return frame_flags & kFrameRedacted; }
};

struct CaptureWriterOptions {
  bool redact_secrets = true;     // store frontend 'p' frames (password, SASL, GSS) as header only
  size_t buffer_size = 1 << 20;   // bytes buffered before a write(2)
  uint32_t creator_pid = 0;       // informational, goes into the header
  std::string creator;            // e.g. "pgproxy 0.1.0"
};

class CaptureWriter {
 public:
  // Creates (or truncates) `path` with mode 0600 and writes the header.
  static Result<std::unique_ptr<CaptureWriter>> create(const std::string& path, CaptureWriterOptions opts = {});
  // Writes to an open descriptor (stdout, a pipe); takes ownership if owns_fd.
  static Result<std::unique_ptr<CaptureWriter>> from_fd(int fd, bool owns_fd, CaptureWriterOptions opts = {});
  ~CaptureWriter();

  Status session_open(uint64_t session_id, int64_t ts_ns, std::string_view client, std::string_view server);
  // A frame or a piece of one, as a Framer returned it. Frames larger than
  // kMaxCaptureRecordPayload are split into several records.
  Status frame(uint64_t session_id, int64_t ts_ns, Direction dir, const Frame& frame);
  Status session_close(uint64_t session_id, int64_t ts_ns, std::string_view reason);
  Status session_meta(uint64_t session_id, int64_t ts_ns, std::string_view key, Bytes value);
  // Appends an already encoded record (used by tests for unknown types).
  Status raw_record(uint16_t type, Bytes payload);

  Status flush();
  Status close();  // flush, then close the descriptor if owned
  uint64_t bytes_written() const;

 private:
  CaptureWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class CaptureReader {
 public:
  static Result<std::unique_ptr<CaptureReader>> open(const std::string& path);  // "-" = stdin
  static Result<std::unique_ptr<CaptureReader>> from_fd(int fd, bool owns_fd, std::string name);
  ~CaptureReader();

  // Reads the next record. Returns true with `rec` filled, false at the clean
  // end of the file, or an error (truncated tail, bad checksum, impossible
  // length) with its file offset. Every good record before the damage has
  // been returned first; a damaged record is never returned. Records of
  // unknown types are skipped (counted in skipped_records()).
  Result<bool> next(CaptureRecord& rec);

  uint16_t version_major() const;
  uint16_t version_minor() const;
  std::string_view creator() const;
  uint64_t offset() const;           // bytes consumed so far
  uint64_t skipped_records() const;
  const std::string& name() const;

 private:
  CaptureReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwire
