// The capture file format: see docs/capture-format.md, which this follows
// section by section.
#include "pgwire/capture.hpp"

#include "pgwire/system.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <system_error>

namespace pgwire {

namespace {

constexpr uint16_t kTypeSessionOpen = static_cast<uint16_t>(CaptureRecordType::kSessionOpen);
constexpr uint16_t kTypeFrame = static_cast<uint16_t>(CaptureRecordType::kFrame);
constexpr uint16_t kTypeSessionClose = static_cast<uint16_t>(CaptureRecordType::kSessionClose);
constexpr uint16_t kTypeSessionMeta = static_cast<uint16_t>(CaptureRecordType::kSessionMeta);

// header_length in version 1.0 without the creator: created_ns, pid, creator_length, header_crc.
constexpr uint32_t kMinHeaderLength = 8 + 4 + 2 + 4;
// Appended by version 1.1 after the creator: set_id, set_index.
constexpr uint32_t kSetFieldsLength = 8 + 4;
constexpr size_t kMaxString = 0xffff;  // a u16-prefixed string
// The reader's buffer never grows beyond this: the largest header or record.
constexpr size_t kMaxReadBuffer = kCaptureFileHeaderFixedSize + kMaxCaptureReadLength;
constexpr size_t kInitialReadBuffer = 64 << 10;

// For descriptors someone made non-blocking: wait instead of failing with EAGAIN.
bool wait_ready(int fd, short events) {
  pollfd p{fd, events, 0};
  for (;;) {
    if (::poll(&p, 1, -1) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

void put_u8(std::vector<std::byte>& out, uint8_t v) { out.push_back(std::byte(v)); }
void put_u16(std::vector<std::byte>& out, uint16_t v) {
  size_t at = out.size();
  out.resize(at + 2);
  store_be16(out.data() + at, v);
}
void put_u32(std::vector<std::byte>& out, uint32_t v) {
  size_t at = out.size();
  out.resize(at + 4);
  store_be32(out.data() + at, v);
}
void put_u64(std::vector<std::byte>& out, uint64_t v) {
  size_t at = out.size();
  out.resize(at + 8);
  store_be64(out.data() + at, v);
}
void put_bytes(std::vector<std::byte>& out, Bytes b) { out.insert(out.end(), b.begin(), b.end()); }
void put_string16(std::vector<std::byte>& out, std::string_view s) {
  put_u16(out, static_cast<uint16_t>(s.size()));
  put_bytes(out, as_bytes(s));
}

}  // namespace

// ---------------------------------------------------------------------------
// CaptureRecords: records encoded in memory

// Records are encoded in place at the end of the buffer: begin_record leaves
// room for the record header, end_record fills it in and appends the CRC.
size_t CaptureRecords::begin_record(uint16_t type, uint16_t flags) {
  size_t start = buf_.size();
  put_u32(buf_, 0);
  put_u16(buf_, type);
  put_u16(buf_, flags);
  return start;
}

void CaptureRecords::end_record(size_t start) {
  size_t payload = buf_.size() - start - kCaptureRecordHeaderSize;
  store_be32(buf_.data() + start, static_cast<uint32_t>(payload));
  put_u32(buf_, crc32_ieee({buf_.data() + start, buf_.size() - start}));
  ++count_;
}

// One kFrame record carrying bytes [pos, pos + n) of header + body.
void CaptureRecords::frame_record(uint64_t session_id, int64_t ts_ns, Direction dir, uint8_t flags, FrameKind kind,
                                  Bytes header, Bytes body, size_t pos, size_t n) {
  size_t start = begin_record(kTypeFrame, 0);
  put_u64(buf_, session_id);
  put_u64(buf_, static_cast<uint64_t>(ts_ns));
  put_u8(buf_, static_cast<uint8_t>(dir));
  put_u8(buf_, flags);
  put_u8(buf_, static_cast<uint8_t>(kind));
  put_u32(buf_, static_cast<uint32_t>(n));
  size_t end = pos + n;
  if (pos < header.size()) {
    size_t h = std::min(end, header.size());
    put_bytes(buf_, header.subspan(pos, h - pos));
    pos = h;
  }
  if (pos < end) put_bytes(buf_, body.subspan(pos - header.size(), end - pos));
  end_record(start);
}

Status CaptureRecords::session_open(uint64_t session_id, int64_t ts_ns, std::string_view client,
                                    std::string_view server) {
  if (client.size() > kMaxString || server.size() > kMaxString) {
    return Error{Errc::kTooLong, 0, "session address longer than 65535 bytes"};
  }
  size_t start = begin_record(kTypeSessionOpen, 0);
  put_u64(buf_, session_id);
  put_u64(buf_, static_cast<uint64_t>(ts_ns));
  put_string16(buf_, client);
  put_string16(buf_, server);
  end_record(start);
  return {};
}

Status CaptureRecords::frame(uint64_t session_id, int64_t ts_ns, Direction dir, const Frame& f) {
  Buffer& header = frame_header_;
  header.clear();
  if (f.first) f.append_header(header);

  if (redact_secrets_ && dir == Direction::kFrontend && f.kind == FrameKind::kTyped &&
      f.type == static_cast<uint8_t>(FrontendType::kPassword)) {
    // The header alone, once; later pieces of the same frame are dropped whole.
    if (f.first) {
      frame_record(session_id, ts_ns, dir, kFrameFirst | kFrameLast | kFrameRedacted, f.kind, header.view(), {}, 0,
                   header.size());
    }
    return {};
  }

  const size_t total = header.size() + f.body.size();
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(total - pos, kMaxCaptureFrameData);
    uint8_t flags = 0;
    if (pos == 0 && f.first) flags |= kFrameFirst;
    if (pos + n == total && f.last) flags |= kFrameLast;
    frame_record(session_id, ts_ns, dir, flags, f.kind, header.view(), f.body, pos, n);
    pos += n;
  } while (pos < total);
  return {};
}

Status CaptureRecords::session_close(uint64_t session_id, int64_t ts_ns, std::string_view reason) {
  if (reason.size() > kMaxString) return Error{Errc::kTooLong, 0, "close reason longer than 65535 bytes"};
  size_t start = begin_record(kTypeSessionClose, 0);
  put_u64(buf_, session_id);
  put_u64(buf_, static_cast<uint64_t>(ts_ns));
  put_string16(buf_, reason);
  end_record(start);
  return {};
}

Status CaptureRecords::session_meta(uint64_t session_id, int64_t ts_ns, std::string_view key, Bytes value) {
  if (key.size() > kMaxString) return Error{Errc::kTooLong, 0, "meta key longer than 65535 bytes"};
  const size_t payload = 8 + 8 + 2 + key.size() + 4 + value.size();
  if (payload > kMaxCaptureRecordPayload) {
    return Error{Errc::kTooLong, 0, fmt::format("meta value of {} bytes does not fit in one record", value.size())};
  }
  size_t start = begin_record(kTypeSessionMeta, 0);
  put_u64(buf_, session_id);
  put_u64(buf_, static_cast<uint64_t>(ts_ns));
  put_string16(buf_, key);
  put_u32(buf_, static_cast<uint32_t>(value.size()));
  put_bytes(buf_, value);
  end_record(start);
  return {};
}

Status CaptureRecords::raw(uint16_t type, uint16_t flags, Bytes payload) {
  if (payload.size() > kMaxCaptureRecordPayload) {
    return Error{Errc::kTooLong, 0, fmt::format("record payload of {} bytes", payload.size())};
  }
  size_t start = begin_record(type, flags);
  put_bytes(buf_, payload);
  end_record(start);
  return {};
}

void CaptureRecords::release() {
  std::vector<std::byte>().swap(buf_);
  count_ = 0;
}

void CaptureRecords::swap(CaptureRecords& other) noexcept {
  buf_.swap(other.buf_);
  std::swap(count_, other.count_);
  std::swap(redact_secrets_, other.redact_secrets_);
}

uint64_t count_whole_records(Bytes records, size_t n) {
  n = std::min(n, records.size());
  uint64_t count = 0;
  size_t pos = 0;
  while (n - pos >= kCaptureRecordHeaderSize) {
    const uint64_t size =
        kCaptureRecordHeaderSize + uint64_t{load_be32(records.data() + pos)} + kCaptureRecordTrailerSize;
    if (size > n - pos) break;
    pos += size;
    ++count;
  }
  return count;
}

// ---------------------------------------------------------------------------
// CaptureWriter

struct CaptureWriter::Impl {
  int fd = -1;
  bool owns_fd = false;
  bool closed = false;
  CaptureWriterOptions opts;
  CaptureRecords pending;  // encoded records not yet written
  uint64_t accepted = 0;   // bytes of header and records so far
  uint64_t flushed = 0;    // of which handed to write(2)
  uint64_t records_accepted = 0;
  uint64_t records_written = 0;
  std::optional<Error> failed;  // sticky I/O error

  Status check_usable() const {
    if (failed) return *failed;
    if (closed) return Error{Errc::kIo, accepted, "capture writer is closed"};
    return {};
  }

  // write(2) of all of `data`; on failure the writer is failed and `*done`
  // says how much went out.
  Status write_all(Bytes data, size_t* done) {
    const WriteResult w = write_fully(fd, data.data(), data.size());
    *done = w.written;
    flushed += w.written;
    if (w.err == 0) return {};
    failed = Error{Errc::kIo, flushed, "write capture: " + errno_text(w.err)};
    return *failed;
  }

  // Writes encoded records; counts the ones that went out whole.
  Status write_records(Bytes records, uint64_t count) {
    size_t done = 0;
    Status st = write_all(records, &done);
    records_written += st ? count : count_whole_records(records, done);
    return st;
  }

  Status write_pending() {
    Status st = write_records(pending.bytes(), pending.count());
    pending.clear();
    return st;
  }

  // Encodes records into `pending` with `encode`, accounts for them, writes
  // when the buffer is full. An encoding error (kTooLong: nothing was added)
  // carries the file offset the record would have had.
  template <class Encode>
  Status add(Encode&& encode) {
    if (Status s = check_usable(); !s) return s;
    const size_t bytes_before = pending.size();
    const uint64_t count_before = pending.count();
    if (Status s = encode(pending); !s) return Error{s.error().code, accepted, s.error().message};
    accepted += pending.size() - bytes_before;
    records_accepted += pending.count() - count_before;
    if (pending.size() >= opts.buffer_size) return write_pending();
    return {};
  }
};

Result<std::unique_ptr<CaptureWriter>> CaptureWriter::create(const std::string& path, CaptureWriterOptions opts) {
  const int fd = open_private(path, O_TRUNC);
  if (fd < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", path, errno_text(errno))};
  return from_fd(fd, true, std::move(opts));
}

Result<std::unique_ptr<CaptureWriter>> CaptureWriter::from_fd(int fd, bool owns_fd, CaptureWriterOptions opts) {
  if (fd < 0) return Error{Errc::kIo, 0, "invalid file descriptor"};
  if (opts.set_id == 0 && opts.set_index != 0) {
    return Error{Errc::kBadValue, 0, fmt::format("set_index {} without a set_id", opts.set_index)};
  }
  std::unique_ptr<CaptureWriter> w(new CaptureWriter());
  w->impl_ = std::make_unique<Impl>();
  Impl& m = *w->impl_;
  m.fd = fd;
  m.owns_fd = owns_fd;
  m.opts = std::move(opts);
  m.pending = CaptureRecords(m.opts.redact_secrets);
  if (m.opts.creator.size() > kMaxString) m.opts.creator.resize(kMaxString);

  const std::string& creator = m.opts.creator;
  // Version 1.1 only for a file of a set: any other file stays 1.0, the same
  // bytes as before sets existed.
  const bool in_set = m.opts.set_id != 0;
  std::vector<std::byte> header;
  for (char c : kCaptureMagic) put_u8(header, static_cast<uint8_t>(c));
  put_u16(header, kCaptureVersionMajor);
  put_u16(header, in_set ? 1 : 0);
  put_u32(header, kMinHeaderLength + static_cast<uint32_t>(creator.size()) + (in_set ? kSetFieldsLength : 0));
  put_u64(header, static_cast<uint64_t>(m.opts.created_ns != 0 ? m.opts.created_ns : realtime_ns()));
  put_u32(header, m.opts.creator_pid);
  put_string16(header, creator);
  if (in_set) {
    put_u64(header, m.opts.set_id);
    put_u32(header, m.opts.set_index);
  }
  put_u32(header, crc32_ieee({header.data(), header.size()}));
  m.accepted = header.size();
  // Out at once: a reader on a pipe sees the header, and a bad descriptor shows now.
  size_t done = 0;
  if (Status s = m.write_all({header.data(), header.size()}, &done); !s) return s.error();
  return w;
}

CaptureWriter::~CaptureWriter() {
  if (!impl_) return;
  if (!impl_->closed) (void)close();
}

Status CaptureWriter::session_open(uint64_t session_id, int64_t ts_ns, std::string_view client,
                                   std::string_view server) {
  return impl_->add([&](CaptureRecords& r) { return r.session_open(session_id, ts_ns, client, server); });
}

Status CaptureWriter::frame(uint64_t session_id, int64_t ts_ns, Direction dir, const Frame& f) {
  return impl_->add([&](CaptureRecords& r) { return r.frame(session_id, ts_ns, dir, f); });
}

Status CaptureWriter::session_close(uint64_t session_id, int64_t ts_ns, std::string_view reason) {
  return impl_->add([&](CaptureRecords& r) { return r.session_close(session_id, ts_ns, reason); });
}

Status CaptureWriter::session_meta(uint64_t session_id, int64_t ts_ns, std::string_view key, Bytes value) {
  return impl_->add([&](CaptureRecords& r) { return r.session_meta(session_id, ts_ns, key, value); });
}

Status CaptureWriter::raw_record(uint16_t type, Bytes payload) { return raw_record(type, 0, payload); }

Status CaptureWriter::raw_record(uint16_t type, uint16_t flags, Bytes payload) {
  return impl_->add([&](CaptureRecords& r) { return r.raw(type, flags, payload); });
}

Status CaptureWriter::append(const CaptureRecords& records) {
  Impl& m = *impl_;
  if (Status s = m.check_usable(); !s) return s;
  if (records.empty()) return {};
  m.accepted += records.size();
  m.records_accepted += records.count();
  if (m.pending.size() + records.size() < m.opts.buffer_size) {
    // Small: into the buffer, copied once more, written with what follows.
    m.pending.append(records);
    return {};
  }
  // Large: what is buffered first, then these straight from the caller's memory.
  if (Status s = m.write_pending(); !s) return s;
  return m.write_records(records.bytes(), records.count());
}

Status CaptureWriter::flush() {
  Impl& m = *impl_;
  if (Status s = m.check_usable(); !s) return s;
  return m.write_pending();
}

Status CaptureWriter::close() {
  Impl& m = *impl_;
  if (m.closed) return m.failed ? Status(*m.failed) : Status();
  Status s = m.failed ? Status(*m.failed) : m.write_pending();
  m.closed = true;
  if (m.owns_fd && m.fd >= 0) {
    // Not retried on EINTR: on Linux the descriptor is released either way.
    if (::close(m.fd) != 0 && s) {
      m.failed = Error{Errc::kIo, m.flushed, "close capture: " + errno_text(errno)};
      s = *m.failed;
    }
  }
  m.fd = -1;
  return s;
}

uint64_t CaptureWriter::bytes_written() const { return impl_->accepted; }
bool CaptureWriter::failed() const { return impl_->failed.has_value(); }
uint64_t CaptureWriter::records_accepted() const { return impl_->records_accepted; }
uint64_t CaptureWriter::records_written() const { return impl_->records_written; }

// ---------------------------------------------------------------------------
// CaptureReader

struct CaptureReader::Impl {
  int fd = -1;
  bool owns_fd = false;
  std::string name;
  // buf[begin, end) holds bytes read but not consumed; buf[begin] is at file
  // offset `consumed`.
  std::vector<std::byte> buf;
  size_t begin = 0;
  size_t end = 0;
  uint64_t consumed = 0;
  uint64_t skipped = 0;
  std::optional<Error> failed;  // sticky

  uint16_t major = 0;
  uint16_t minor = 0;
  int64_t created_ns = 0;
  uint32_t creator_pid = 0;
  std::string creator;
  uint64_t set_id = 0;
  uint32_t set_index = 0;

  // A zstd-compressed input, recognised by its frame magic: fill() gets the
  // decompressed bytes, reading the file into `in` and decompressing one
  // buffer at a time (ZSTD_DStream), so memory stays bounded by the buffers
  // and the frame's window (at most 2^kMaxZstdWindowLog bytes).
  struct Zstd {
    ZSTD_DStream* ds = nullptr;
    std::vector<std::byte> in;  // compressed bytes read; [inb.pos, inb.size) not decompressed yet
    ZSTD_inBuffer inb{nullptr, 0, 0};
    size_t hint = 0;        // the last ZSTD_decompressStream result: 0 once a frame is whole
    bool more_out = false;  // the last call filled the output: more may be waiting inside
    bool eof = false;       // the file ended
    ~Zstd() { ZSTD_freeDStream(ds); }
  };
  std::unique_ptr<Zstd> zstd;
  uint64_t raw_read = 0;  // bytes read from the descriptor
  // The first bytes, read by whoever opened the file to see what it is
  // (MergedReader, on a pipe): read_raw() gives them back first.
  std::vector<std::byte> prefix;
  size_t prefix_used = 0;

  ~Impl() {
    if (owns_fd && fd >= 0) ::close(fd);
  }

  size_t available() const { return end - begin; }
  const std::byte* data() const { return buf.data() + begin; }
  void consume(size_t n) {
    begin += n;
    consumed += n;
  }

  Error fail(Errc code, uint64_t offset, std::string message) { return fail(Error{code, offset, std::move(message)}); }
  Error fail(Error e) {
    failed = located(std::move(e));
    return *failed;
  }
  // The offsets of a compressed file are offsets in its decompressed bytes: said in every error.
  Error located(Error e) const {
    if (zstd) e.message += " (" + name + " is zstd-compressed: the offset is in the decompressed data)";
    return e;
  }

  // One read(2) of at most `room` bytes; *got = 0 at the end of the file.
  // Errors have no offset yet: fill() gives them one.
  Status read_raw(std::byte* dst, size_t room, size_t* got) {
    if (prefix_used < prefix.size()) {
      const size_t n = std::min(room, prefix.size() - prefix_used);
      std::copy_n(prefix.begin() + static_cast<std::ptrdiff_t>(prefix_used), n, dst);
      prefix_used += n;
      raw_read += n;
      *got = n;
      return {};
    }
    for (;;) {
      ssize_t n = ::read(fd, dst, room);
      if (n >= 0) {
        *got = static_cast<size_t>(n);
        raw_read += static_cast<uint64_t>(n);
        return {};
      }
      int err = errno;
      if (err == EINTR) continue;
      if ((err == EAGAIN || err == EWOULDBLOCK) && wait_ready(fd, POLLIN)) continue;
      return Error{Errc::kIo, 0, fmt::format("read {}: {}", name, errno_text(err))};
    }
  }

  // Looks at the first bytes: a zstd frame magic makes this a compressed
  // input. Whatever was read is kept, in `in` or in `buf`.
  Status detect_compression() {
    static constexpr std::byte kZstdMagic[4] = {std::byte{0x28}, std::byte{0xb5}, std::byte{0x2f}, std::byte{0xfd}};
    std::byte head[4];
    size_t have = 0;
    while (have < sizeof head) {
      size_t n = 0;
      if (Status s = read_raw(head + have, sizeof head - have, &n); !s) return s;
      if (n == 0) break;
      have += n;
    }
    if (have < sizeof head || std::memcmp(head, kZstdMagic, sizeof head) != 0) {
      std::copy_n(head, have, buf.begin());
      end = have;
      return {};
    }
    zstd = std::make_unique<Zstd>();
    zstd->ds = ZSTD_createDStream();
    if (zstd->ds == nullptr) return Error{Errc::kIo, 0, "cannot allocate a zstd decompression context"};
    const size_t r = ZSTD_DCtx_setParameter(zstd->ds, ZSTD_d_windowLogMax, kMaxZstdWindowLog);
    if (ZSTD_isError(r)) return Error{Errc::kIo, 0, fmt::format("zstd: {}", ZSTD_getErrorName(r))};
    zstd->in.resize(std::max(ZSTD_DStreamInSize(), sizeof head));
    std::copy_n(head, sizeof head, zstd->in.begin());
    zstd->inb = {zstd->in.data(), sizeof head, 0};
    return {};
  }

  // At most `room` bytes of the capture: the file's, or decompressed ones;
  // *got = 0 at the end. A compressed file that ends inside a zstd frame is
  // truncated, whatever the capture's records say.
  Status read_input(std::byte* dst, size_t room, size_t* got) {
    if (!zstd) return read_raw(dst, room, got);
    Zstd& z = *zstd;
    for (;;) {
      if (z.inb.pos == z.inb.size && !z.more_out) {
        // Called again without input, the decoder would begin a new frame:
        // only when the file ends is it known whether the last one was whole.
        if (z.eof) {
          if (z.hint != 0) {
            return Error{Errc::kTruncated, 0, "the zstd data ends inside a frame: the compressed file is cut off"};
          }
          *got = 0;
          return {};
        }
        size_t n = 0;
        if (Status s = read_raw(z.in.data(), z.in.size(), &n); !s) return s;
        if (n == 0) {
          z.eof = true;
          continue;
        }
        z.inb = {z.in.data(), n, 0};
      }
      ZSTD_outBuffer out{dst, room, 0};
      const size_t r = ZSTD_decompressStream(z.ds, &out, &z.inb);
      if (ZSTD_isError(r)) {
        return Error{Errc::kBadValue, 0, fmt::format("the zstd data is damaged: {}", ZSTD_getErrorName(r))};
      }
      z.hint = r;
      z.more_out = r != 0 && out.pos == out.size;
      if (out.pos > 0) {
        *got = out.pos;
        return {};
      }
    }
  }

  // Bytes of the file itself used so far: for a compressed one, the
  // compressed bytes the decoder took.
  uint64_t input_offset() const { return zstd ? raw_read - (zstd->inb.size - zstd->inb.pos) : consumed; }

  // Reads until at least `want` (<= kMaxReadBuffer) bytes are available or
  // the input ends; the caller compares available() with what it needs.
  Status fill(size_t want) {
    if (available() >= want) return {};
    if (begin + want > buf.size()) {
      std::copy(buf.begin() + static_cast<ptrdiff_t>(begin), buf.begin() + static_cast<ptrdiff_t>(end), buf.begin());
      end -= begin;
      begin = 0;
      if (want > buf.size()) buf.resize(std::min(kMaxReadBuffer, std::max(want, buf.size() * 2)));
    }
    while (available() < want) {
      size_t n = 0;
      if (Status s = read_input(buf.data() + end, buf.size() - end, &n); !s) {
        // An operating-system error where reading stopped; bad compressed
        // data where the capture stops being readable: the record it cuts.
        Error e = s.error();
        e.offset = e.code == Errc::kIo ? consumed + available() : consumed;
        return e;
      }
      if (n == 0) break;  // end of input
      end += n;
    }
    return {};
  }

  Status read_header();
  // Decodes a record's payload: true when filled in, false when the record
  // is of a kind this reader does not know (skip it), or a bad-length error.
  Result<bool> decode(uint16_t type, Bytes payload, CaptureRecord& rec) const;
  // The fast path for a Frame payload whose fields all fit: fills `rec` (or
  // sets *known = false for a direction or kind from a newer writer) and
  // returns true. Returns false, leaving `rec` alone, for a payload too short,
  // which decode() then reports.
  static inline bool decode_frame(Bytes payload, uint64_t at, CaptureRecord& rec, bool* known);
};

namespace {

// Bounds-checked reading of one payload; the first failure sticks and names
// the field that did not fit.
class PayloadCursor {
 public:
  explicit PayloadCursor(Bytes p) : p_(p) {}
  uint8_t u8(const char* what) {
    Bytes b = take(1, what);
    return b.empty() ? 0 : std::to_integer<uint8_t>(b[0]);
  }
  uint16_t u16(const char* what) {
    Bytes b = take(2, what);
    return b.empty() ? 0 : load_be16(b.data());
  }
  uint32_t u32(const char* what) {
    Bytes b = take(4, what);
    return b.empty() ? 0 : load_be32(b.data());
  }
  uint64_t u64(const char* what) {
    Bytes b = take(8, what);
    return b.empty() ? 0 : load_be64(b.data());
  }
  Bytes take(size_t n, const char* what) {
    if (!missing_.empty()) return {};
    if (p_.size() - pos_ < n) {
      missing_ = fmt::format("{} needs {} bytes, {} left in the payload", what, n, p_.size() - pos_);
      return {};
    }
    Bytes b = p_.subspan(pos_, n);
    pos_ += n;
    return b;
  }
  std::string_view string16(const char* what) { return as_string_view(take(u16(what), what)); }
  bool ok() const { return missing_.empty(); }
  const std::string& missing() const { return missing_; }

 private:
  Bytes p_;
  size_t pos_ = 0;
  std::string missing_;
};

}  // namespace

Result<bool> CaptureReader::Impl::decode(uint16_t type, Bytes payload, CaptureRecord& rec) const {
  PayloadCursor c(payload);
  rec.session_id = c.u64("session_id");
  rec.ts_ns = static_cast<int64_t>(c.u64("ts_ns"));
  const char* type_name = "";
  switch (type) {
    case kTypeSessionOpen:
      type_name = "SessionOpen";
      rec.client = c.string16("client");
      rec.server = c.string16("server");
      break;
    case kTypeFrame: {
      type_name = "Frame";
      uint8_t dir = c.u8("direction");
      rec.frame_flags = c.u8("frame_flags");
      uint8_t kind = c.u8("frame_kind");
      rec.data = c.take(c.u32("data_length"), "data");
      if (c.ok() && (dir > 1 || kind > static_cast<uint8_t>(FrameKind::kOpaque))) return false;  // from a newer writer
      rec.direction = static_cast<Direction>(dir);
      rec.frame_kind = static_cast<FrameKind>(kind);
      break;
    }
    case kTypeSessionClose:
      type_name = "SessionClose";
      rec.reason = c.string16("reason");
      break;
    case kTypeSessionMeta:
      type_name = "SessionMeta";
      rec.key = c.string16("key");
      rec.value = c.take(c.u32("value_length"), "value");
      break;
    default: return false;
  }
  // Bytes after the known fields are fields of a newer minor version: ignored.
  if (!c.ok()) return Error{Errc::kBadLength, rec.file_offset, fmt::format("{} record: {}", type_name, c.missing())};
  rec.type = static_cast<CaptureRecordType>(type);
  return true;
}

inline bool CaptureReader::Impl::decode_frame(Bytes payload, uint64_t at, CaptureRecord& rec, bool* known) {
  if (payload.size() < kCaptureFrameFixedSize) return false;
  const std::byte* p = payload.data();
  const uint32_t data_length = load_be32(p + 19);
  if (data_length > payload.size() - kCaptureFrameFixedSize) return false;
  const uint8_t dir = std::to_integer<uint8_t>(p[16]);
  const uint8_t kind = std::to_integer<uint8_t>(p[18]);
  if (dir > 1 || kind > static_cast<uint8_t>(FrameKind::kOpaque)) {  // from a newer writer
    *known = false;
    return true;
  }
  // Every field is set, as decode() sets them on a fresh record, one by one:
  // assigning a fresh CaptureRecord{} copied all 144 bytes twice.
  rec.type = CaptureRecordType::kFrame;
  rec.file_offset = at;
  rec.session_id = load_be64(p);
  rec.ts_ns = static_cast<int64_t>(load_be64(p + 8));
  rec.client = {};
  rec.server = {};
  rec.direction = static_cast<Direction>(dir);
  rec.frame_flags = std::to_integer<uint8_t>(p[17]);
  rec.frame_kind = static_cast<FrameKind>(kind);
  rec.data = payload.subspan(kCaptureFrameFixedSize, data_length);
  rec.reason = {};
  rec.key = {};
  rec.value = {};
  *known = true;
  return true;
}

Status CaptureReader::Impl::read_header() {
  if (Status s = fill(kCaptureFileHeaderFixedSize); !s) return s;
  const std::byte* p = data();
  const size_t have = available();
  const std::string_view start(reinterpret_cast<const char*>(p), have);
  if (!start.starts_with(std::string_view(kCaptureMagic, sizeof kCaptureMagic))) {
    std::string hint;
    if (start.starts_with("PGWCAP\n") || start.starts_with("PGWCAP\r\r\n")) {
      hint = " (line endings were converted: was the file transferred in text mode?)";
    }
    return Error{Errc::kBadMagic, 0, fmt::format("{} is not a pgwire capture{}", name, hint)};
  }
  if (have < kCaptureFileHeaderFixedSize) {
    return Error{Errc::kTruncated, 0, fmt::format("file header cut off after {} bytes", have)};
  }
  major = load_be16(p + 8);
  minor = load_be16(p + 10);
  if (major != kCaptureVersionMajor) {
    return Error{
        Errc::kUnsupported, 8,
        fmt::format("capture format version {}.{}; this reader implements {}.x", major, minor, kCaptureVersionMajor)};
  }
  const uint32_t header_length = load_be32(p + 12);
  if (header_length < kMinHeaderLength || header_length > kMaxCaptureReadLength) {
    return Error{Errc::kBadLength, 12, fmt::format("header length {} is impossible", header_length)};
  }
  const size_t total = kCaptureFileHeaderFixedSize + header_length;
  if (Status s = fill(total); !s) return s;
  if (available() < total) {
    return Error{Errc::kTruncated, 0, fmt::format("file header cut off: {} of {} bytes", available(), total)};
  }
  p = data();
  const uint32_t stored = load_be32(p + total - 4);
  const uint32_t computed = crc32_ieee({p, total - 4});
  if (stored != computed) {
    return Error{Errc::kBadChecksum, 0, fmt::format("file header checksum {:08x}, computed {:08x}", stored, computed)};
  }
  created_ns = static_cast<int64_t>(load_be64(p + 16));
  creator_pid = load_be32(p + 24);
  const uint16_t creator_length = load_be16(p + 28);
  if (kMinHeaderLength + creator_length > header_length) {
    return Error{Errc::kBadLength, 28,
                 fmt::format("creator length {} overflows the header of {} bytes", creator_length, header_length)};
  }
  creator.assign(reinterpret_cast<const char*>(p + 30), creator_length);
  if (minor >= 1) {
    // Every minor version from 1.1 on has the set fields after the creator.
    if (kMinHeaderLength + creator_length + kSetFieldsLength > header_length) {
      return Error{Errc::kBadLength, 12,
                   fmt::format("header length {} leaves no room for the set fields of version 1.{} after a creator of "
                               "{} bytes",
                               header_length, minor, creator_length)};
    }
    set_id = load_be64(p + 30 + creator_length);
    set_index = load_be32(p + 38 + creator_length);
  }
  consume(total);  // fields of newer minor versions included
  return {};
}

Result<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path) {
  if (path == "-") return from_fd(STDIN_FILENO, false, "<stdin>");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", path, errno_text(errno))};
  return from_fd(fd, true, path);
}

Result<std::unique_ptr<CaptureReader>> CaptureReader::from_fd(int fd, bool owns_fd, std::string name) {
  return from_fd(fd, owns_fd, std::move(name), {});
}

Result<std::unique_ptr<CaptureReader>> CaptureReader::from_fd(int fd, bool owns_fd, std::string name, Bytes prefix) {
  if (fd < 0) return Error{Errc::kIo, 0, "invalid file descriptor"};
  std::unique_ptr<CaptureReader> r(new CaptureReader());
  r->impl_ = std::make_unique<Impl>();
  Impl& m = *r->impl_;
  m.fd = fd;
  m.owns_fd = owns_fd;
  m.name = std::move(name);
  m.prefix.assign(prefix.begin(), prefix.end());
  m.buf.resize(kInitialReadBuffer);
  if (Status s = m.detect_compression(); !s) return m.located(s.error());
  if (Status s = m.read_header(); !s) return m.located(s.error());
  return r;
}

CaptureReader::~CaptureReader() = default;

Result<bool> CaptureReader::next(CaptureRecord& rec) {
  Impl& m = *impl_;
  if (m.failed) return *m.failed;
  for (;;) {
    const uint64_t at = m.consumed;
    // fill() only when the buffer does not already hold the whole record,
    // which for the small records of a typical capture is rare.
    if (m.available() < kCaptureRecordHeaderSize) {
      if (Status s = m.fill(kCaptureRecordHeaderSize); !s) return m.fail(s.error());
      if (m.available() == 0) return false;  // clean end, at a record boundary
      if (m.available() < kCaptureRecordHeaderSize) {
        return m.fail(Errc::kTruncated, at, fmt::format("record header cut off: {} of 8 bytes", m.available()));
      }
    }
    const uint32_t length = load_be32(m.data());
    const uint16_t type = load_be16(m.data() + 4);
    const uint16_t flags = load_be16(m.data() + 6);
    if (length > kMaxCaptureReadLength) {
      return m.fail(Errc::kTooLong, at,
                    fmt::format("record payload length {} is impossible (limit {})", length, kMaxCaptureReadLength));
    }
    const size_t total = kCaptureRecordHeaderSize + length + kCaptureRecordTrailerSize;
    if (m.available() < total) {
      if (Status s = m.fill(total); !s) return m.fail(s.error());
      if (m.available() < total) {
        return m.fail(Errc::kTruncated, at, fmt::format("record cut off: {} of {} bytes", m.available(), total));
      }
    }
    const std::byte* p = m.data();
    const uint32_t stored = load_be32(p + kCaptureRecordHeaderSize + length);
    const uint32_t computed = crc32_ieee({p, kCaptureRecordHeaderSize + length});
    if (stored != computed) {
      return m.fail(Errc::kBadChecksum, at, fmt::format("record checksum {:08x}, computed {:08x}", stored, computed));
    }
    bool known = false;
    if ((flags & kCaptureRecordCriticalFlags) == 0) {  // no critical flag is known in 1.0
      const Bytes payload{p + kCaptureRecordHeaderSize, length};
      if (type == kTypeFrame && m.decode_frame(payload, at, rec, &known)) {
        // the common case, decoded straight into rec
      } else {
        CaptureRecord decoded;
        decoded.file_offset = at;
        Result<bool> k = m.decode(type, payload, decoded);
        if (!k) return m.fail(k.error());  // not consumed: offset() stays at the bad record
        known = *k;
        if (known) rec = decoded;
      }
    }
    // The views handed out stay valid: the bytes only move in the next fill().
    m.consume(total);
    if (known) return true;
    ++m.skipped;
  }
}

uint16_t CaptureReader::version_major() const { return impl_->major; }
uint16_t CaptureReader::version_minor() const { return impl_->minor; }
std::string_view CaptureReader::creator() const { return impl_->creator; }
int64_t CaptureReader::created_ns() const { return impl_->created_ns; }
uint32_t CaptureReader::creator_pid() const { return impl_->creator_pid; }
uint64_t CaptureReader::set_id() const { return impl_->set_id; }
uint32_t CaptureReader::set_index() const { return impl_->set_index; }
size_t CaptureReader::buffer_capacity() const { return impl_->buf.size(); }
uint64_t CaptureReader::offset() const { return impl_->consumed; }
uint64_t CaptureReader::skipped_records() const { return impl_->skipped; }
bool CaptureReader::compressed() const { return impl_->zstd != nullptr; }
uint64_t CaptureReader::input_offset() const { return impl_->input_offset(); }
const std::string& CaptureReader::name() const { return impl_->name; }

}  // namespace pgwire
