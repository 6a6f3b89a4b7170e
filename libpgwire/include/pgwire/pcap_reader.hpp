// Packet captures (pcap and pcapng, read with libpcap) as a stream of
// capture records: the PostgreSQL connections in the packets are put back
// together (tcp_reassembly.hpp), framed per direction, and come out as the
// SessionOpen / Frame / SessionClose records a pgproxy capture holds, so
// that everything that reads captures (MergedReader, CaptureDecoder,
// pgdump-log, pgreplay) reads packet captures the same way.
//
// Which connections are PostgreSQL: those to a server port of
// PcapOptions::ports, and any other whose client opens with a valid startup
// packet (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest). A
// connection seen without its SYN (the capture started after it) is joined
// at the first plausible message boundary of each direction; its frames are
// typed from there, which CaptureDecoder shows as a partial session.
//
// Damage: a hole in a direction that the peer acknowledged (the capture lost
// the packet), a packet cut by the snapshot length, a stream that cannot be
// framed, or early data beyond the buffering limit ends that session with a
// SessionClose ("capture data missing: ...") and a damage report (take_damage());
// the rest of that connection is not guessed at, and the other sessions go
// on. A file that ends inside a packet, or cannot be read, ends with an
// error from next() like a damaged capture file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/capture.hpp"
#include "pgwire/result.hpp"

namespace pgwire {

inline constexpr uint16_t kDefaultPostgresPort = 5432;

struct PcapOptions {
  // Server ports whose connections are PostgreSQL (the others only when
  // their first bytes are a startup packet).
  std::vector<uint16_t> ports{kDefaultPostgresPort};
  // Out-of-order bytes buffered per direction of a connection, and over all
  // connections: beyond either, the connection is damaged from its hole on
  // (counted in PcapStats::buffer_limit_hits).
  size_t max_buffered_per_direction = 1 << 20;
  size_t max_buffered_total = 64 << 20;
  // Store frontend 'p' frames (password, SASL, GSS) as header only, as pgproxy does by default.
  bool redact_secrets = true;
};

// What a packet capture held besides the sessions, for warnings and --stats.
struct PcapStats {
  uint64_t packets = 0;
  uint64_t tcp_packets = 0;
  uint64_t fragments = 0;  // IP fragments: not reassembled, their bytes are a hole
  uint64_t malformed = 0;  // packets whose headers could not be decoded
  uint64_t unsupported_link = 0;
  uint64_t sessions = 0;          // PostgreSQL connections found
  uint64_t partial_sessions = 0;  // joined after their start
  uint64_t encrypted_sessions = 0;
  uint64_t damaged_sessions = 0;
  uint64_t not_postgres = 0;  // connections to a PostgreSQL port whose client did not speak it
  uint64_t duplicate_segments = 0;
  uint64_t early_segments = 0;
  uint64_t buffer_limit_hits = 0;
  size_t peak_buffered = 0;  // out-of-order bytes held at once, all connections
};

// Whether the first bytes of a file are a pcap (any byte order, micro- or
// nanosecond) or pcapng magic. Needs 4 bytes.
bool is_packet_capture_magic(Bytes head);

class PcapReader {
 public:
  // "-" = stdin.
  static Result<std::unique_ptr<PcapReader>> open(const std::string& path, PcapOptions opts = {});
  // Reads `fd`, whose first bytes -- `prefix`, already read from it by the
  // caller to see what the file is -- come first.
  static Result<std::unique_ptr<PcapReader>> from_fd(int fd, bool owns_fd, std::string name, Bytes prefix,
                                                     PcapOptions opts = {});
  ~PcapReader();

  // The next record: true with `rec` filled (views valid until the next
  // call), false at the end, or the error that ended the file (kTruncated:
  // a packet cut off by the end of the file; kIo) after every record before
  // it. Records come in packet order; a record's ts_ns is the time of the
  // packet that completed it.
  Result<bool> next(CaptureRecord& rec);
  // Damage found since the last call (sessions ended by it): the file goes on.
  std::vector<Error> take_damage();

  const std::string& name() const;
  uint64_t input_offset() const;  // bytes of the file read so far
  const PcapStats& stats() const;
  // "pcap" or "pcapng", and the link type's name.
  std::string describe() const;

 private:
  PcapReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwire
