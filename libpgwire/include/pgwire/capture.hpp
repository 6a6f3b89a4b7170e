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
// The newest minor version this library reads and writes. Its writer writes
// 1.1 only for a file of a rotated set (CaptureWriterOptions::set_id), 1.0
// otherwise, so files outside sets stay readable by 1.0 readers byte for byte.
inline constexpr uint16_t kCaptureVersionMinor = 1;
// A record's payload never exceeds this; the writer splits larger frames.
inline constexpr uint32_t kMaxCaptureRecordPayload = 1 << 20;

// The 8 bytes every capture starts with; the CR LF exposes text-mode transfers.
inline constexpr char kCaptureMagic[8] = {'P', 'G', 'W', 'C', 'A', 'P', '\r', '\n'};
// Readers reject a payload_length (or header_length) above this as impossible.
// The margin over kMaxCaptureRecordPayload is room for later minor versions.
inline constexpr uint32_t kMaxCaptureReadLength = kMaxCaptureRecordPayload + (64 << 10);
inline constexpr size_t kCaptureFileHeaderFixedSize = 16;  // magic, major, minor, header_length
inline constexpr size_t kCaptureRecordHeaderSize = 8;      // payload_length, type, flags
inline constexpr size_t kCaptureRecordTrailerSize = 4;     // CRC-32
// A kFrame payload: session, ts, direction, flags, kind, data_length (23 bytes), then data.
inline constexpr uint32_t kCaptureFrameFixedSize = 23;
inline constexpr uint32_t kMaxCaptureFrameData = kMaxCaptureRecordPayload - kCaptureFrameFixedSize;
// Record flags: none defined in 1.0. A reader that does not know a set bit of
// this mask skips the record; unknown bits outside it are ignored.
inline constexpr uint16_t kCaptureRecordCriticalFlags = 0xff00;

// CRC-32 as in zlib and PNG (reflected polynomial 0xEDB88320, init and final
// xor 0xFFFFFFFF). Chains: crc32_ieee(b, crc32_ieee(a)) == crc32_ieee(a + b).
// Uses carry-less multiplication when the CPU has it (src/crc32.cpp).
uint32_t crc32_ieee(Bytes data, uint32_t crc = 0);
// The same CRC from tables only: what crc32_ieee falls back to, and its reference in tests.
uint32_t crc32_ieee_portable(Bytes data, uint32_t crc = 0);

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
  int64_t ts_ns = 0;  // nanoseconds since the Unix epoch

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

// Capture records encoded in memory, byte for byte as they go into the file
// (record header, payload, CRC-32), with nothing written anywhere: for a
// program that prepares records on one thread and writes them on another
// (pgproxy's event loop and its writer thread, CaptureWriter::append). The
// buffer keeps its capacity across clear(), so a reused one does not allocate.
class CaptureRecords {
 public:
  // redact_secrets: frontend 'p' frames (password, SASL, GSS) are stored as header only.
  explicit CaptureRecords(bool redact_secrets = true) : redact_secrets_(redact_secrets) {}

  // Each appends one record (frame: one per kMaxCaptureFrameData bytes); on
  // kTooLong (a string or value that does not fit its field) nothing is appended.
  Status session_open(uint64_t session_id, int64_t ts_ns, std::string_view client, std::string_view server);
  // A frame or a piece of one, as a Framer returned it.
  Status frame(uint64_t session_id, int64_t ts_ns, Direction dir, const Frame& frame);
  Status session_close(uint64_t session_id, int64_t ts_ns, std::string_view reason);
  Status session_meta(uint64_t session_id, int64_t ts_ns, std::string_view key, Bytes value);
  // A record of any type with a ready payload (tests: unknown types and flags).
  Status raw(uint16_t type, uint16_t flags, Bytes payload);

  Bytes bytes() const { return {buf_.data(), buf_.size()}; }
  size_t size() const { return buf_.size(); }
  bool empty() const { return buf_.empty(); }
  uint64_t count() const { return count_; }  // records
  size_t capacity() const { return buf_.capacity(); }
  bool redact_secrets() const { return redact_secrets_; }
  void clear() {
    buf_.clear();
    count_ = 0;
  }
  // Appends records encoded by another CaptureRecords.
  void append(const CaptureRecords& other) {
    buf_.insert(buf_.end(), other.buf_.begin(), other.buf_.end());
    count_ += other.count_;
  }
  // Gives the memory back (clear() keeps it).
  void release();
  void swap(CaptureRecords& other) noexcept;

 private:
  size_t begin_record(uint16_t type, uint16_t flags);
  void end_record(size_t start);
  void frame_record(uint64_t session_id, int64_t ts_ns, Direction dir, uint8_t flags, FrameKind kind, Bytes header,
                    Bytes body, size_t pos, size_t n);

  std::vector<std::byte> buf_;
  uint64_t count_ = 0;
  bool redact_secrets_ = true;
  Buffer frame_header_;  // reused: no allocation per frame
};

// How many whole records the first `n` bytes of `records` (encoded records,
// as CaptureRecords holds them) contain.
uint64_t count_whole_records(Bytes records, size_t n);

struct CaptureWriterOptions {
  bool redact_secrets = true;    // store frontend 'p' frames (password, SASL, GSS) as header only
  size_t buffer_size = 1 << 20;  // bytes buffered before a write(2)
  uint32_t creator_pid = 0;      // informational, goes into the header
  std::string creator;           // e.g. "pgproxy 0.1.0"; cut to 65535 bytes
  int64_t created_ns = 0;        // header creation time; 0 = now
  // A rotated set (docs/capture-format.md section 3.2): the random non-zero id
  // shared by every file of one writer's set, and this file's place in it (0
  // for the first file, +1 per rotation). With set_id 0 (not part of a set)
  // the header is version 1.0 and set_index must be 0.
  uint64_t set_id = 0;
  uint32_t set_index = 0;
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
  Status raw_record(uint16_t type, uint16_t flags, Bytes payload);
  // Appends records encoded elsewhere (their redaction was decided there).
  Status append(const CaptureRecords& records);

  // Errors: kTooLong when a string or value does not fit its field (nothing
  // is written, the writer stays usable); kIo from write(2), after which every
  // call returns that error. The destructor flushes but cannot report: call
  // close() to learn whether everything reached the file.
  Status flush();                     // write(2) what is buffered; no fsync
  Status close();                     // flush, then close the descriptor if owned
  uint64_t bytes_written() const;     // header and records so far, buffered ones included
  bool failed() const;                // a write failed: every later call fails too
  uint64_t records_accepted() const;  // records so far, buffered ones included
  // Records wholly handed to write(2). After an I/O error, records_accepted()
  // - records_written() is exactly what did not reach the file.
  uint64_t records_written() const;

 private:
  CaptureWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The largest zstd window a CaptureReader decompresses with (2^27 = 128 MiB,
// zstd's own default limit): a frame that needs more (zstd --long=31) is
// refused as damaged rather than allowed to take that much memory.
inline constexpr int kMaxZstdWindowLog = 27;

class CaptureReader {
 public:
  // Reads a capture file, or a capture compressed with zstd (any number of
  // concatenated frames), recognised by the zstd frame magic 28 B5 2F FD at
  // its start, not by its name: on a pipe and on stdin too. A compressed
  // capture is decompressed as it is read, one buffer at a time. Its offsets
  // (records, errors) are offsets in the decompressed data, and errors say so.
  static Result<std::unique_ptr<CaptureReader>> open(const std::string& path);  // "-" = stdin
  static Result<std::unique_ptr<CaptureReader>> from_fd(int fd, bool owns_fd, std::string name);
  // The same, for a descriptor whose first bytes (`prefix`) the caller has
  // already read to see what the file is (a pipe cannot be rewound).
  static Result<std::unique_ptr<CaptureReader>> from_fd(int fd, bool owns_fd, std::string name, Bytes prefix);
  ~CaptureReader();

  // Reads the next record. Returns true with `rec` filled, false at the clean
  // end of the file, or an error (truncated tail, bad checksum, impossible
  // length; for a compressed file also kTruncated for zstd data cut inside a
  // frame, kBadValue for damaged zstd data, both at the start of the record
  // they make unreadable) with its file offset. Every good record before the damage has
  // been returned first; a damaged record is never returned. Records of
  // unknown types are skipped (counted in skipped_records()).
  Result<bool> next(CaptureRecord& rec);

  uint16_t version_major() const;
  uint16_t version_minor() const;
  std::string_view creator() const;
  int64_t created_ns() const;
  uint32_t creator_pid() const;
  // The rotated set the file belongs to (header version 1.1): 0 and 0 for a
  // file that is not part of a set, and for every 1.0 file.
  uint64_t set_id() const;
  uint32_t set_index() const;
  // Size of the read buffer: grows to the largest record read, never beyond
  // kCaptureFileHeaderFixedSize + kMaxCaptureReadLength.
  size_t buffer_capacity() const;
  uint64_t offset() const;  // bytes consumed so far; after an error, where the bad record starts
  uint64_t skipped_records() const;
  bool compressed() const;  // zstd
  // Bytes of the file itself used so far: offset() for an uncompressed file,
  // the compressed bytes decompressed so far for a compressed one (progress).
  uint64_t input_offset() const;
  const std::string& name() const;

 private:
  CaptureReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwire
