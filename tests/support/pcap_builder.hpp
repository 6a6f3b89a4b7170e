// Test-only writer of packet captures, written from the pcap and pcapng
// specifications (draft-ietf-opsawg-pcap, draft-ietf-opsawg-pcapng) and the
// IPv4 / IPv6 / TCP header layouts of RFC 791, 8200 and 9293, independent of
// the library's reader: hand-made captures for the edge cases a real
// tcpdump rarely shows (reordering, loss, VLAN tags, SLL2, truncation).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgwire::test {

using PacketBytes = std::vector<std::byte>;

inline void put8(PacketBytes& b, uint32_t v) { b.push_back(static_cast<std::byte>(v & 0xff)); }
inline void put16be(PacketBytes& b, uint32_t v) {
  put8(b, v >> 8);
  put8(b, v);
}
inline void put32be(PacketBytes& b, uint32_t v) {
  put16be(b, v >> 16);
  put16be(b, v);
}
inline void put16le(PacketBytes& b, uint32_t v) {
  put8(b, v);
  put8(b, v >> 8);
}
inline void put32le(PacketBytes& b, uint32_t v) {
  put16le(b, v);
  put16le(b, v >> 16);
}
inline void append(PacketBytes& b, const PacketBytes& more) { b.insert(b.end(), more.begin(), more.end()); }

// An address and port; v6 when `v6`, else the first 4 bytes are IPv4.
struct Addr {
  std::array<uint8_t, 16> ip{};
  uint16_t port = 0;
  bool v6 = false;
};
inline Addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  Addr x;
  x.ip = {a, b, c, d};
  x.port = port;
  return x;
}
inline Addr v6_loopback(uint16_t port) {
  Addr x;
  x.ip[15] = 1;
  x.port = port;
  x.v6 = true;
  return x;
}

enum : uint8_t { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };

// RFC 9293 section 3.1: ports, seq, ack, data offset 5 (no options), flags,
// window, checksum (left 0: the reader does not check it), urgent pointer.
inline PacketBytes tcp_header(const Addr& src, const Addr& dst, uint32_t seq, uint32_t ack, uint8_t flags) {
  PacketBytes b;
  put16be(b, src.port);
  put16be(b, dst.port);
  put32be(b, seq);
  put32be(b, ack);
  put8(b, 5 << 4);
  put8(b, flags);
  put16be(b, 65535);
  put16be(b, 0);
  put16be(b, 0);
  return b;
}

// RFC 791: version 4, IHL 5, total length, identification, flags/fragment
// offset (DF unless told), TTL 64, protocol 6, header checksum, addresses.
inline PacketBytes ipv4_header(const Addr& src, const Addr& dst, size_t payload, uint16_t frag = 0x4000,
                               uint8_t proto = 6) {
  PacketBytes b;
  put8(b, 0x45);
  put8(b, 0);
  put16be(b, static_cast<uint32_t>(20 + payload));
  put16be(b, 0x1234);
  put16be(b, frag);
  put8(b, 64);
  put8(b, proto);
  put16be(b, 0);
  for (int i = 0; i < 4; ++i) put8(b, src.ip[i]);
  for (int i = 0; i < 4; ++i) put8(b, dst.ip[i]);
  uint32_t sum = 0;
  for (size_t i = 0; i < 20; i += 2)
    sum += (std::to_integer<uint32_t>(b[i]) << 8) | std::to_integer<uint32_t>(b[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  b[10] = static_cast<std::byte>((~sum >> 8) & 0xff);
  b[11] = static_cast<std::byte>(~sum & 0xff);
  return b;
}

// RFC 8200: version 6, traffic class and flow label 0, payload length, next header, hop limit, addresses.
inline PacketBytes ipv6_header(const Addr& src, const Addr& dst, size_t payload, uint8_t next = 6) {
  PacketBytes b;
  put32be(b, 0x60000000);
  put16be(b, static_cast<uint32_t>(payload));
  put8(b, next);
  put8(b, 64);
  for (uint8_t x : src.ip) put8(b, x);
  for (uint8_t x : dst.ip) put8(b, x);
  return b;
}

// An IP packet carrying one TCP segment.
inline PacketBytes ip_tcp(const Addr& src, const Addr& dst, uint32_t seq, uint32_t ack, uint8_t flags,
                          const PacketBytes& payload) {
  PacketBytes tcp = tcp_header(src, dst, seq, ack, flags);
  append(tcp, payload);
  PacketBytes ip = src.v6 ? ipv6_header(src, dst, tcp.size()) : ipv4_header(src, dst, tcp.size());
  append(ip, tcp);
  return ip;
}

// Link layers around an IP packet.
inline PacketBytes ethernet(const PacketBytes& ip, bool v6,
                            const std::vector<std::pair<uint16_t, uint16_t>>& tags = {}) {
  PacketBytes b;
  for (int i = 0; i < 6; ++i) put8(b, 0x02);  // destination MAC
  for (int i = 0; i < 6; ++i) put8(b, 0x04);  // source MAC
  for (auto [tpid, tci] : tags) {             // 802.1Q / 802.1ad: TPID, then tag control
    put16be(b, tpid);
    put16be(b, tci);
  }
  put16be(b, v6 ? 0x86dd : 0x0800);
  append(b, ip);
  while (b.size() < 60) put8(b, 0);  // minimum frame: padding after the IP packet
  return b;
}
// Linux cooked capture v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
inline PacketBytes sll(const PacketBytes& ip, bool v6) {
  PacketBytes b;
  put16be(b, 0);    // sent to us
  put16be(b, 772);  // ARPHRD_LOOPBACK
  put16be(b, 6);
  for (int i = 0; i < 8; ++i) put8(b, 0);
  put16be(b, v6 ? 0x86dd : 0x0800);
  append(b, ip);
  return b;
}
// Linux cooked capture v2: protocol, reserved, interface index, ARPHRD, packet type, address length, address.
inline PacketBytes sll2(const PacketBytes& ip, bool v6) {
  PacketBytes b;
  put16be(b, v6 ? 0x86dd : 0x0800);
  put16be(b, 0);
  put32be(b, 1);
  put16be(b, 772);
  put8(b, 0);
  put8(b, 6);
  for (int i = 0; i < 8; ++i) put8(b, 0);
  append(b, ip);
  return b;
}
// BSD loopback: the address family in the capturing host's byte order (here little-endian).
inline PacketBytes null_loopback(const PacketBytes& ip, bool v6) {
  PacketBytes b;
  put32le(b, v6 ? 30 : 2);  // AF_INET6 of Darwin, AF_INET
  append(b, ip);
  return b;
}

// A classic pcap file: little-endian, microsecond (or nanosecond) timestamps.
class PcapFile {
 public:
  explicit PcapFile(uint32_t linktype, bool nanos = false, uint32_t snaplen = 262144) : nanos_(nanos) {
    put32le(b_, nanos ? 0xa1b23c4d : 0xa1b2c3d4);
    put16le(b_, 2);
    put16le(b_, 4);
    put32le(b_, 0);  // thiszone
    put32le(b_, 0);  // sigfigs
    put32le(b_, snaplen);
    put32le(b_, linktype);
  }
  // A packet at ts_ns; only the first `caplen` bytes are written when given (snaplen).
  void packet(int64_t ts_ns, const PacketBytes& data, size_t caplen = SIZE_MAX) {
    const size_t incl = std::min(caplen, data.size());
    put32le(b_, static_cast<uint32_t>(ts_ns / 1000000000));
    put32le(b_, static_cast<uint32_t>(nanos_ ? ts_ns % 1000000000 : ts_ns % 1000000000 / 1000));
    put32le(b_, static_cast<uint32_t>(incl));
    put32le(b_, static_cast<uint32_t>(data.size()));
    b_.insert(b_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(incl));
  }
  const PacketBytes& bytes() const { return b_; }
  PacketBytes& bytes() { return b_; }

 private:
  PacketBytes b_;
  bool nanos_;
};

// A pcapng file: a section header, one interface (nanosecond timestamps), enhanced packet blocks.
class PcapngFile {
 public:
  explicit PcapngFile(uint16_t linktype) {
    PacketBytes shb;
    put32le(shb, 0x1a2b3c4d);  // byte-order magic
    put16le(shb, 1);
    put16le(shb, 0);
    put32le(shb, 0xffffffff);  // section length unknown
    put32le(shb, 0xffffffff);
    block(0x0a0d0d0a, shb);
    PacketBytes idb;
    put16le(idb, linktype);
    put16le(idb, 0);
    put32le(idb, 262144);
    put16le(idb, 9);  // if_tsresol
    put16le(idb, 1);
    put8(idb, 9);  // 10^-9
    put8(idb, 0);
    put8(idb, 0);
    put8(idb, 0);
    put16le(idb, 0);  // opt_endofopt
    put16le(idb, 0);
    block(1, idb);
  }
  void packet(int64_t ts_ns, const PacketBytes& data) {
    PacketBytes epb;
    put32le(epb, 0);  // interface 0
    const auto ts = static_cast<uint64_t>(ts_ns);
    put32le(epb, static_cast<uint32_t>(ts >> 32));
    put32le(epb, static_cast<uint32_t>(ts));
    put32le(epb, static_cast<uint32_t>(data.size()));
    put32le(epb, static_cast<uint32_t>(data.size()));
    append(epb, data);
    while (epb.size() % 4) put8(epb, 0);
    block(6, epb);
  }
  const PacketBytes& bytes() const { return b_; }

 private:
  void block(uint32_t type, const PacketBytes& body) {
    const auto total = static_cast<uint32_t>(12 + body.size());
    put32le(b_, type);
    put32le(b_, total);
    append(b_, body);
    put32le(b_, total);
  }
  PacketBytes b_;
};

// Both sides of one TCP connection, keeping their sequence numbers: each
// call returns the IP packet of one segment.
class TcpFlow {
 public:
  TcpFlow(Addr client, Addr server, uint32_t client_isn = 1000, uint32_t server_isn = 5000)
      : c_(client), s_(server), cseq_(client_isn), sseq_(server_isn) {}
  PacketBytes syn() { return ip_tcp(c_, s_, cseq_++, 0, SYN, {}); }
  PacketBytes syn_ack() { return ip_tcp(s_, c_, sseq_++, cseq_, SYN | ACK, {}); }
  PacketBytes ack() { return ip_tcp(c_, s_, cseq_, sseq_, ACK, {}); }
  // Data from the client (or server); the sequence number advances.
  PacketBytes client(const PacketBytes& data) {
    PacketBytes p = ip_tcp(c_, s_, cseq_, sseq_, PSH | ACK, data);
    cseq_ += static_cast<uint32_t>(data.size());
    return p;
  }
  PacketBytes server(const PacketBytes& data) {
    PacketBytes p = ip_tcp(s_, c_, sseq_, cseq_, PSH | ACK, data);
    sseq_ += static_cast<uint32_t>(data.size());
    return p;
  }
  // A segment at an explicit sequence number, nothing advanced (retransmissions, reordering).
  PacketBytes client_at(uint32_t seq, const PacketBytes& data, uint8_t flags = PSH | ACK) {
    return ip_tcp(c_, s_, seq, sseq_, flags, data);
  }
  PacketBytes server_at(uint32_t seq, const PacketBytes& data, uint8_t flags = PSH | ACK) {
    return ip_tcp(s_, c_, seq, cseq_, flags, data);
  }
  PacketBytes client_fin() { return ip_tcp(c_, s_, cseq_++, sseq_, FIN | ACK, {}); }
  PacketBytes server_fin() { return ip_tcp(s_, c_, sseq_++, cseq_, FIN | ACK, {}); }
  PacketBytes client_rst() { return ip_tcp(c_, s_, cseq_, sseq_, RST | ACK, {}); }
  uint32_t client_seq() const { return cseq_; }
  uint32_t server_seq() const { return sseq_; }
  void skip_client(uint32_t n) { cseq_ += n; }
  void skip_server(uint32_t n) { sseq_ += n; }
  const Addr& client_addr() const { return c_; }
  const Addr& server_addr() const { return s_; }

 private:
  Addr c_, s_;
  uint32_t cseq_, sseq_;
};

}  // namespace pgwire::test
