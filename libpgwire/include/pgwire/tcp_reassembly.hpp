// What a packet capture holds, turned back into TCP byte streams: the link
// layer and IP headers of one packet decoded down to its TCP segment
// (decode_packet), and one direction of a connection put back in order
// (TcpStream). No I/O: pcap_reader.cpp reads the file and drives these.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pgwire/bytes.hpp"

namespace pgwire {

// The link layers we decode, by their LINKTYPE_ value in the pcap and pcapng
// specifications (which is not always the DLT_ value of <pcap.h>: raw IP is
// LINKTYPE 101 but DLT 12 or 14 depending on the platform).
enum class LinkType : uint32_t {
  kNull = 0,         // BSD loopback: a 4-byte address family in host byte order
  kEthernet = 1,     // with any number of 802.1Q / 802.1ad tags
  kRaw = 101,        // an IPv4 or IPv6 header, nothing before it
  kLoop = 108,       // OpenBSD loopback: like kNull, family in network byte order
  kLinuxSll = 113,   // Linux "cooked" capture (tcpdump -i any before libpcap 1.10)
  kIpv4 = 228,       // raw IPv4
  kIpv6 = 229,       // raw IPv6
  kLinuxSll2 = 276,  // Linux cooked capture v2 (tcpdump -i any, libpcap 1.10 and later)
};

// TCP header flags.
enum TcpFlags : uint8_t {
  kTcpFin = 0x01,
  kTcpSyn = 0x02,
  kTcpRst = 0x04,
  kTcpPsh = 0x08,
  kTcpAck = 0x10,
};

// One endpoint: an IPv4 address is stored in the first 4 bytes of `addr`.
struct Endpoint {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;
  uint8_t family = 4;  // 4 or 6
  bool operator==(const Endpoint&) const = default;
  auto operator<=>(const Endpoint&) const = default;
};

// "127.0.0.1:5432", "[::1]:5432": as pgproxy writes addresses (net.hpp format_address).
std::string format_endpoint(const Endpoint& e);

// A TCP segment found in a packet. payload views the packet's bytes.
struct TcpSegment {
  Endpoint src;
  Endpoint dst;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  Bytes payload;  // the captured part of the payload (IP padding cut off)
  // Payload bytes the IP header announces beyond those captured: the packet
  // was cut by the snapshot length (or the file ends inside it).
  uint32_t missing = 0;
};

enum class PacketKind : uint8_t {
  kTcp,          // `segment` is filled
  kOther,        // not TCP over IP (ARP, UDP, ICMP...): nothing for us
  kFragment,     // an IP fragment: reassembly is not done (counted, reported)
  kUnsupported,  // a link type we do not decode
  kMalformed,    // headers cut off or impossible: `error` says what
};

struct DecodedPacket {
  PacketKind kind = PacketKind::kOther;
  TcpSegment segment;
  const char* error = "";  // kMalformed: a static description
};

// Decodes one captured packet of `link`: `data` is what was captured
// (caplen bytes), `wire_length` its length on the wire. Never reads past
// `data`.
DecodedPacket decode_packet(LinkType link, Bytes data, uint32_t wire_length);

// One direction of a TCP connection, put back in order, the way its receiver
// saw it: out-of-order segments wait until the bytes before them come,
// retransmitted or overlapping bytes are dropped (the first copy wins),
// sequence numbers wrap around. Stream offsets are 64-bit, counted from the
// first byte after the SYN (or from the first byte seen, for a connection
// joined after its start).
//
// In the common case -- the next segment in order -- accept() returns a view
// of the segment's own payload: no copy and no allocation. Only segments that
// come early are copied, and no more than max_buffered bytes of them.
class TcpStream {
 public:
  explicit TcpStream(size_t max_buffered = 256 << 10) : max_buffered_(max_buffered) {}

  // The first sequence number of the stream's data: ISN + 1 after a SYN, or
  // the sequence number of the first segment seen.
  void start(uint32_t first_seq);
  bool started() const { return started_; }

  enum class Accept : uint8_t {
    kOk,         // in_order (maybe empty) is ready; early data was buffered
    kOverLimit,  // buffering this early segment would exceed max_buffered: nothing buffered
  };
  // A segment with `payload` (and a FIN when `fin`). `in_order` gets the bytes
  // that follow on from what was delivered so far (a view of `payload`); after
  // them, drain pop_ready() for buffered bytes that now follow on too.
  Accept accept(uint32_t seq, Bytes payload, bool fin, Bytes& in_order);
  // The next buffered bytes that follow on from what was delivered, if any.
  // The view is valid until the next call to accept() or pop_ready().
  bool pop_ready(Bytes& out);

  // Bytes delivered so far: the stream offset of the next byte expected.
  uint64_t delivered() const { return next_off_; }
  uint32_t next_seq() const { return next_seq_; }
  // The peer acknowledged `ack`: true when that is beyond what was delivered,
  // i.e. the receiver had bytes that the capture does not (a lost packet).
  bool acked_beyond(uint32_t ack) const;
  // Early bytes waiting for a hole before them to be filled.
  bool has_hole() const { return !early_.empty(); }
  size_t buffered() const { return buffered_; }
  // The FIN was reached: every byte before it was delivered.
  bool finished() const { return finished_; }
  // Counters: segments that only repeated delivered bytes (retransmissions,
  // keep-alives), and segments that came early.
  uint64_t duplicates() const { return duplicates_; }
  uint64_t early_segments() const { return early_segments_; }

 private:
  void check_fin();
  // The parts of [start, start + data.size()) that no early entry holds:
  // their size, and with `insert` they become entries.
  size_t fill_early(uint64_t start, Bytes data, bool insert);
  size_t max_buffered_;
  bool started_ = false;
  bool finished_ = false;
  bool fin_known_ = false;
  uint32_t next_seq_ = 0;  // sequence number of stream offset next_off_
  uint64_t next_off_ = 0;
  uint64_t fin_off_ = 0;
  // Early bytes by stream offset; entries never overlap.
  std::map<uint64_t, std::vector<std::byte>> early_;
  size_t buffered_ = 0;
  std::vector<std::byte> popped_;  // the entry pop_ready() last returned
  uint64_t duplicates_ = 0;
  uint64_t early_segments_ = 0;
};

}  // namespace pgwire
