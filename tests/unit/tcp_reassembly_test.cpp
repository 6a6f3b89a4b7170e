// decode_packet: link layers and IP headers down to the TCP segment, on
// packet bytes written by hand from the header layouts (RFC 791, 8200, 9293,
// IEEE 802.1Q, the LINKTYPE_ registry); TcpStream: one direction put back in
// order as its receiver saw it.
#include "pgwire/tcp_reassembly.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;

ByteVec hex(std::string_view h) {
  ByteVec out;
  int hi = -1;
  for (char c : h) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::byte>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

std::string text(Bytes b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
Bytes view(const ByteVec& v) { return {v.data(), v.size()}; }

// IPv4 127.0.0.1:40000 -> 127.0.0.1:5432, seq 0x01020304, ack 0x0a0b0c0d,
// PSH|ACK, payload "hi": total length 20 + 20 + 2 = 42.
constexpr std::string_view kIpv4Tcp =
    "45 00 00 2a 12 34 40 00 40 06 00 00 7f 00 00 01 7f 00 00 01"  // IPv4, DF, TTL 64, TCP
    "9c 40 15 38 01 02 03 04 0a 0b 0c 0d 50 18 ff ff 00 00 00 00"  // ports 40000 -> 5432, offset 5
    "68 69";                                                       // "hi"

void expect_hi_segment(const DecodedPacket& p) {
  ASSERT_EQ(p.kind, PacketKind::kTcp) << p.error;
  EXPECT_EQ(format_endpoint(p.segment.src), "127.0.0.1:40000");
  EXPECT_EQ(format_endpoint(p.segment.dst), "127.0.0.1:5432");
  EXPECT_EQ(p.segment.seq, 0x01020304u);
  EXPECT_EQ(p.segment.ack, 0x0a0b0c0du);
  EXPECT_EQ(p.segment.flags, kTcpPsh | kTcpAck);
  EXPECT_EQ(text(p.segment.payload), "hi");
  EXPECT_EQ(p.segment.missing, 0u);
}

TEST(DecodePacket, EthernetIpv4WithPaddingCutOff) {
  // Destination and source MAC, type 0800, the packet, then Ethernet padding to 60 bytes.
  ByteVec frame = hex(std::string("02 02 02 02 02 02 04 04 04 04 04 04 08 00") + std::string(kIpv4Tcp) + "00 00 00 00");
  expect_hi_segment(decode_packet(LinkType::kEthernet, view(frame), 60));
}

TEST(DecodePacket, EthernetWithQinQTags) {
  // An 802.1ad outer tag (88a8, VLAN 100) and an 802.1Q inner one (8100, VLAN 200).
  ByteVec frame =
      hex(std::string("02 02 02 02 02 02 04 04 04 04 04 04 88 a8 00 64 81 00 00 c8 08 00") + std::string(kIpv4Tcp));
  expect_hi_segment(decode_packet(LinkType::kEthernet, view(frame), 64));
}

TEST(DecodePacket, LinuxCookedV1AndV2) {
  ByteVec sll = hex(std::string("00 00 03 04 00 06 00 00 00 00 00 00 00 00 08 00") + std::string(kIpv4Tcp));
  expect_hi_segment(decode_packet(LinkType::kLinuxSll, view(sll), 58));
  ByteVec sll2 =
      hex(std::string("08 00 00 00 00 00 00 01 03 04 00 06 00 00 00 00 00 00 00 00") + std::string(kIpv4Tcp));
  expect_hi_segment(decode_packet(LinkType::kLinuxSll2, view(sll2), 62));
}

TEST(DecodePacket, BsdLoopbackInEitherByteOrderAndRaw) {
  ByteVec little = hex(std::string("02 00 00 00") + std::string(kIpv4Tcp));
  expect_hi_segment(decode_packet(LinkType::kNull, view(little), 46));
  ByteVec big = hex(std::string("00 00 00 02") + std::string(kIpv4Tcp));
  expect_hi_segment(decode_packet(LinkType::kNull, view(big), 46));
  expect_hi_segment(decode_packet(LinkType::kLoop, view(big), 46));
  ByteVec raw = hex(kIpv4Tcp);
  expect_hi_segment(decode_packet(LinkType::kRaw, view(raw), 42));
  expect_hi_segment(decode_packet(LinkType::kIpv4, view(raw), 42));
}

TEST(DecodePacket, Ipv6WithExtensionHeaders) {
  // IPv6 ::1 -> ::1, next header 0 (hop-by-hop, 8 bytes), then 60 (destination
  // options, 8 bytes), then TCP. Payload length 8 + 8 + 20 + 2 = 38.
  ByteVec raw =
      hex("60 00 00 00 00 26 00 40"
          "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01"
          "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01"
          "3c 00 01 04 00 00 00 00"  // hop-by-hop: next 60, length 0 (8 bytes), PadN
          "06 00 01 04 00 00 00 00"  // destination options: next TCP
          "9c 40 15 38 00 00 00 01 00 00 00 02 50 18 ff ff 00 00 00 00 6f 6b");
  DecodedPacket p = decode_packet(LinkType::kRaw, view(raw), static_cast<uint32_t>(raw.size()));
  ASSERT_EQ(p.kind, PacketKind::kTcp) << p.error;
  EXPECT_EQ(format_endpoint(p.segment.src), "[::1]:40000");
  EXPECT_EQ(format_endpoint(p.segment.dst), "[::1]:5432");
  EXPECT_EQ(text(p.segment.payload), "ok");
}

TEST(DecodePacket, FragmentsOtherProtocolsAndDamage) {
  // More-fragments set: not decoded as TCP.
  ByteVec frag =
      hex("45 00 00 2a 12 34 20 00 40 06 00 00 7f 00 00 01 7f 00 00 01"
          "9c 40 15 38 01 02 03 04 0a 0b 0c 0d 50 18 ff ff 00 00 00 00 68 69");
  EXPECT_EQ(decode_packet(LinkType::kRaw, view(frag), 42).kind, PacketKind::kFragment);
  // UDP (protocol 17).
  ByteVec udp = hex("45 00 00 1c 00 00 40 00 40 11 00 00 7f 00 00 01 7f 00 00 01 00 35 00 35 00 08 00 00");
  EXPECT_EQ(decode_packet(LinkType::kRaw, view(udp), 28).kind, PacketKind::kOther);
  // ARP over Ethernet.
  ByteVec arp = hex("ff ff ff ff ff ff 04 04 04 04 04 04 08 06 00 01");
  EXPECT_EQ(decode_packet(LinkType::kEthernet, view(arp), 60).kind, PacketKind::kOther);
  // The TCP header cut off by the snapshot length.
  ByteVec cut = hex("45 00 00 2a 12 34 40 00 40 06 00 00 7f 00 00 01 7f 00 00 01 9c 40 15 38");
  EXPECT_EQ(decode_packet(LinkType::kRaw, view(cut), 42).kind, PacketKind::kMalformed);
  // The payload cut: the segment is there, with the bytes it lacks counted.
  ByteVec short_payload = hex(std::string(kIpv4Tcp).substr(0, std::string(kIpv4Tcp).size() - 3));
  DecodedPacket p = decode_packet(LinkType::kRaw, view(short_payload), 42);
  ASSERT_EQ(p.kind, PacketKind::kTcp);
  EXPECT_EQ(text(p.segment.payload), "h");
  EXPECT_EQ(p.segment.missing, 1u);
  // Empty input and a header length below the minimum.
  EXPECT_EQ(decode_packet(LinkType::kEthernet, {}, 0).kind, PacketKind::kMalformed);
  ByteVec bad_ihl = hex("44 00 00 2a 12 34 40 00 40 06 00 00 7f 00 00 01 7f 00 00 01");
  EXPECT_EQ(decode_packet(LinkType::kRaw, view(bad_ihl), 20).kind, PacketKind::kMalformed);
}

// Feeds segments and collects what comes out in order.
struct Collector {
  TcpStream stream{64};
  std::string got;
  TcpStream::Accept add(uint32_t seq, std::string_view data, bool fin = false) {
    Bytes in_order;
    TcpStream::Accept a =
        stream.accept(seq, {reinterpret_cast<const std::byte*>(data.data()), data.size()}, fin, in_order);
    got += text(in_order);
    Bytes more;
    while (stream.pop_ready(more)) got += text(more);
    return a;
  }
};

TEST(TcpStream, InOrderIsAViewOfThePayload) {
  TcpStream s;
  s.start(100);
  const std::string data = "abcdef";
  Bytes in_order;
  ASSERT_EQ(s.accept(100, as_bytes(data), false, in_order), TcpStream::Accept::kOk);
  EXPECT_EQ(static_cast<const void*>(in_order.data()), static_cast<const void*>(data.data()));
  EXPECT_EQ(in_order.size(), 6u);
  EXPECT_EQ(s.delivered(), 6u);
  EXPECT_FALSE(s.has_hole());
}

TEST(TcpStream, ReorderedSegmentsComeOutInOrder) {
  Collector c;
  c.stream.start(1000);
  c.add(1006, "ghi");
  c.add(1003, "def");
  EXPECT_EQ(c.got, "");
  EXPECT_TRUE(c.stream.has_hole());
  c.add(1000, "abc");
  EXPECT_EQ(c.got, "abcdefghi");
  EXPECT_FALSE(c.stream.has_hole());
  EXPECT_EQ(c.stream.early_segments(), 2u);
}

TEST(TcpStream, RetransmissionsAndOverlapsFirstCopyWins) {
  Collector c;
  c.stream.start(0);
  c.add(0, "abcd");
  c.add(0, "abcd");  // retransmitted
  c.add(2, "XXef");  // overlaps: the first two bytes were delivered already
  EXPECT_EQ(c.got, "abcdef");
  EXPECT_EQ(c.stream.duplicates(), 1u);
  // Early bytes are kept against a later copy that overlaps them.
  c.add(8, "ij");
  c.add(6, "ghYY");  // "YY" at 8..9 lose against "ij", which came first
  EXPECT_EQ(c.got, "abcdefghij");
  // A keep-alive: one old byte below the next sequence number.
  c.add(9, "j");
  EXPECT_EQ(c.got, "abcdefghij");
}

TEST(TcpStream, SequenceNumbersWrapAround) {
  Collector c;
  c.stream.start(0xfffffffc);
  c.add(0xfffffffc, "abcd");
  c.add(2, "gh");  // after the wrap, early
  c.add(0, "ef");
  EXPECT_EQ(c.got, "abcdefgh");
  EXPECT_EQ(c.stream.delivered(), 8u);
  EXPECT_EQ(c.stream.next_seq(), 4u);
}

TEST(TcpStream, FinAndAcknowledgements) {
  Collector c;
  c.stream.start(10);
  c.add(14, "", true);  // the FIN comes before the data it follows
  EXPECT_FALSE(c.stream.finished());
  EXPECT_FALSE(c.stream.acked_beyond(10));
  EXPECT_TRUE(c.stream.acked_beyond(14));  // the peer has bytes the capture does not
  c.add(10, "abcd");
  EXPECT_TRUE(c.stream.finished());
  EXPECT_FALSE(c.stream.acked_beyond(15));  // the FIN's own sequence number
  EXPECT_TRUE(c.stream.acked_beyond(16));
}

TEST(TcpStream, BufferingIsBounded) {
  Collector c;  // 64 bytes at most
  c.stream.start(0);
  EXPECT_EQ(c.add(10, std::string(60, 'x')), TcpStream::Accept::kOk);
  EXPECT_EQ(c.add(100, std::string(10, 'y')), TcpStream::Accept::kOverLimit);
  EXPECT_EQ(c.stream.buffered(), 60u);
  // What is in order is never refused.
  EXPECT_EQ(c.add(0, std::string(10, 'a')), TcpStream::Accept::kOk);
  EXPECT_EQ(c.got.size(), 70u);
  EXPECT_EQ(c.stream.buffered(), 0u);
}

}  // namespace
}  // namespace pgwire
