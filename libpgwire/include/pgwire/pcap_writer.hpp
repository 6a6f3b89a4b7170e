// Capture data as a classic pcap file (the libpcap format), for Wireshark and
// tshark: each session becomes a synthetic TCP connection over Ethernet and
// IPv4 or IPv6, with a three-way handshake, consistent sequence and
// acknowledgement numbers, correct checksums and a FIN exchange.
//
// Two layers: PcapWriter writes packets of TcpFlows (it knows TCP, nothing of
// captures); PcapExport turns capture records into them and decides what a
// capture cannot say (addresses of Unix-socket sessions, redacted frames, TLS
// that a proxy terminated; docs/pcap-export.md). Both stream: the writer
// builds each packet in place in one output buffer, so nothing is allocated
// per packet and a 1 GiB frame never sits in memory.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/capture.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/result.hpp"
#include "pgwire/tracker.hpp"

namespace pgwire {

// The largest TCP payload of one packet: an IPv4 packet's total length
// (20 bytes of IP header, 20 of TCP header, the payload) is 16 bits.
inline constexpr uint32_t kPcapMaxSegment = 65535 - 20 - 20;
// A receiver that has sent nothing for this many bytes sends a pure ACK, as
// a real one would long before: without it the sender's bytes in flight grow
// without bound (a long COPY FROM STDIN) and look like a broken connection.
inline constexpr uint32_t kPcapAckEvery = 256 << 10;

// An IPv4 or IPv6 address and a TCP port.
struct PcapEndpoint {
  bool ipv6 = false;
  std::array<uint8_t, 16> address{};  // network order; IPv4 in the first 4 bytes
  uint16_t port = 0;
  bool operator==(const PcapEndpoint&) const = default;
};

// "192.0.2.1:5432" or "[2001:db8::1]:5432", as pgproxy writes addresses
// (format_address). An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is read
// as the IPv4 address it stands for. nullopt for anything else: a Unix socket
// path, "[local]", "?".
std::optional<PcapEndpoint> parse_tcp_endpoint(std::string_view text);
// The endpoint as IPv6: an IPv4 address becomes ::ffff:a.b.c.d (RFC 4291 2.5.5.2).
PcapEndpoint to_ipv6(const PcapEndpoint& e);
// A.B.C.D:PORT or [V6]:PORT.
std::string format_endpoint(const PcapEndpoint& e);

// One synthetic TCP connection, its client the frontend. Both endpoints must
// be of the same family.
struct TcpFlow {
  uint64_t id = 0;  // tells flows apart (a session id)
  PcapEndpoint client, server;
  // Indexed by Direction: the client's (frontend) and the server's (backend)
  // next sequence number, and bytes sent that the peer has not acknowledged.
  uint32_t next_seq[2] = {0, 0};
  uint32_t unacked[2] = {0, 0};
  // The SYNs announced window scaling (set by PcapWriter::open).
  bool scaled = false;
};

struct PcapWriterOptions {
  // Nanosecond timestamps (magic 0xa1b23c4d), else microseconds (0xa1b2c3d4).
  bool nanosecond = true;
  uint32_t max_segment = kPcapMaxSegment;  // TCP payload bytes per packet, 1 to kPcapMaxSegment
  size_t buffer_size = 1 << 20;            // bytes buffered before a write(2)
};

class PcapWriter {
 public:
  // Creates (or truncates) `path` with mode 0600 (an existing regular file's
  // mode is set to it too) and writes the file header.
  static Result<std::unique_ptr<PcapWriter>> create(const std::string& path, PcapWriterOptions opts = {});
  // Writes to an open descriptor (stdout, a pipe); takes ownership if owns_fd.
  static Result<std::unique_ptr<PcapWriter>> from_fd(int fd, bool owns_fd, PcapWriterOptions opts = {});
  ~PcapWriter();

  // Initial sequence numbers from flow.id, so that the same input gives the
  // same file: for a flow to open(), or one whose start was not seen (a
  // capture that begins mid-session), which has no handshake.
  static void seed(TcpFlow& flow);
  // The three-way handshake (SYN, SYN-ACK, ACK) at ts_ns, flow.next_seq being
  // the initial sequence numbers; the SYNs announce window scaling.
  Status open(TcpFlow& flow, int64_t ts_ns);
  // Payload sent by `from`, split at max_segment. Consecutive calls for the
  // same flow, direction and timestamp fill one segment, as one read of a
  // socket would (a proxy frames a read into records of one timestamp).
  Status data(TcpFlow& flow, int64_t ts_ns, Direction from, Bytes payload);
  // FIN from `closer`, FIN-ACK from its peer, ACK, all at ts_ns.
  Status close(TcpFlow& flow, int64_t ts_ns, Direction closer = Direction::kFrontend);

  // Errors: kIo from write(2), after which every call returns that error.
  Status flush();   // write(2) what is buffered
  Status finish();  // flush, then close the descriptor if owned
  uint64_t packets() const;
  uint64_t bytes_written() const;  // file header and packets so far, buffered ones included

 private:
  PcapWriter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The RFC 1071 Internet checksum of `data` (the one's complement of the one's
// complement sum of its 16-bit big-endian words), `sum` being the sum so far.
uint16_t internet_checksum(Bytes data, uint32_t sum = 0);

struct PcapExportOptions {
  // Decides whether a session goes into the file, once per session, when
  // its StartupMessage is seen (user and database known) or when it shows
  // that there is none (a partial session, a CancelRequest: user and
  // database empty). nullptr: every session.
  std::function<bool(const SessionInfo&)> select;
  // Only the packets of records in [since, until), as if the capture had
  // been taken then: a session opened before `since` gets no handshake, one
  // still open at `until` no FIN.
  std::optional<int64_t> since, until;
  // The server port of a session whose server address is not known (a Unix
  // socket without a .s.PGSQL.PORT name, a partial session).
  uint16_t default_server_port = 5432;
  // Called once per partial session (its start is not in the records), at
  // its first frame.
  std::function<void(uint64_t session_id, int64_t ts_ns)> partial;
};

struct PcapExportStats {
  uint64_t sessions = 0;             // sessions written (handshake or first packet)
  uint64_t partial_sessions = 0;     // of those, without their start
  uint64_t synthetic_addresses = 0;  // sessions with a made-up client or server address
  uint64_t redacted_frames = 0;      // password / SASL frames left out (only their header was captured)
  uint64_t tls_negotiations = 0;     // SSLRequest + 'S' pairs left out (the proxy terminated the TLS)
  uint64_t payload_bytes = 0;        // TCP payload written
};

// Capture records (in the order a MergedReader returns them) to a pcap file.
class PcapExport {
 public:
  PcapExport(PcapWriter& writer, PcapExportOptions opts);
  ~PcapExport();
  Status on_record(const CaptureRecord& rec);
  // The input ended: what a session still holds is written; sessions still
  // open get no FIN (they were open when the capture ended). Flushes.
  Status finish();
  const PcapExportStats& stats() const { return stats_; }

 private:
  struct Session;
  struct Held;
  Session& session(uint64_t id, int64_t ts_ns);
  Status on_frame(Session& s, const CaptureRecord& rec);
  void hold(Session& s, const CaptureRecord& rec);
  Status decide(Session& s, std::string_view user, std::string_view database);
  Status emit(Session& s, int64_t ts_ns, Direction dir, uint8_t flags, Bytes data);
  Status release_held(Session& s);
  bool in_window(int64_t ts_ns) const;
  void set_addresses(Session& s, std::string_view client, std::string_view server);

  PcapWriter& writer_;
  PcapExportOptions opts_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  PcapExportStats stats_;
};

}  // namespace pgwire
