#include "pgwire/tcp_reassembly.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace pgwire {

namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;   // 802.1Q
constexpr uint16_t kEtherQinQ = 0x88a8;   // 802.1ad
constexpr uint16_t kEtherQinQ2 = 0x9100;  // pre-standard QinQ
constexpr uint8_t kIpProtoTcp = 6;

uint8_t u8(Bytes b, size_t at) { return std::to_integer<uint8_t>(b[at]); }

DecodedPacket malformed(const char* why) {
  DecodedPacket p;
  p.kind = PacketKind::kMalformed;
  p.error = why;
  return p;
}

DecodedPacket of_kind(PacketKind k) {
  DecodedPacket p;
  p.kind = k;
  return p;
}

// The TCP header and payload of an IP packet whose addresses are in `out`.
// `announced` is the payload length the IP header gives (TCP header included).
DecodedPacket decode_tcp(Bytes data, size_t announced, DecodedPacket out) {
  if (data.size() < 20) return malformed("TCP header cut off (snapshot length too small?)");
  const size_t header = static_cast<size_t>(u8(data, 12) >> 4) * 4;
  if (header < 20) return malformed("TCP data offset below 5");
  if (data.size() < header) return malformed("TCP options cut off (snapshot length too small?)");
  if (announced < header) return malformed("IP payload length shorter than the TCP header");
  TcpSegment& s = out.segment;
  s.src.port = load_be16(data.data());
  s.dst.port = load_be16(data.data() + 2);
  s.seq = load_be32(data.data() + 4);
  s.ack = load_be32(data.data() + 8);
  s.flags = u8(data, 13);
  const size_t payload = announced - header;
  const size_t captured = std::min(payload, data.size() - header);
  s.payload = data.subspan(header, captured);
  s.missing = static_cast<uint32_t>(payload - captured);
  out.kind = PacketKind::kTcp;
  return out;
}

DecodedPacket decode_ipv4(Bytes data) {
  if (data.size() < 20) return malformed("IPv4 header cut off");
  if ((u8(data, 0) >> 4) != 4) return malformed("IPv4 header with another version");
  const size_t ihl = static_cast<size_t>(u8(data, 0) & 0x0fu) * 4;
  if (ihl < 20) return malformed("IPv4 header length below 20");
  if (data.size() < ihl) return malformed("IPv4 options cut off");
  size_t total = load_be16(data.data() + 2);
  // 0 is what a capture of TCP segmentation offload shows: the packet is as
  // long as what was captured.
  if (total == 0) total = data.size();
  if (total < ihl) return malformed("IPv4 total length below its header length");
  const uint16_t frag = load_be16(data.data() + 6);
  if ((frag & 0x3fff) != 0) return of_kind(PacketKind::kFragment);  // MF set or offset non-zero
  if (u8(data, 9) != kIpProtoTcp) return of_kind(PacketKind::kOther);
  DecodedPacket out;
  out.segment.src.family = out.segment.dst.family = 4;
  std::memcpy(out.segment.src.addr.data(), data.data() + 12, 4);
  std::memcpy(out.segment.dst.addr.data(), data.data() + 16, 4);
  // Bytes past `total` are link-layer padding (Ethernet pads to 60 bytes).
  return decode_tcp(data.subspan(ihl, std::min(data.size(), total) - ihl), total - ihl, out);
}

DecodedPacket decode_ipv6(Bytes data) {
  if (data.size() < 40) return malformed("IPv6 header cut off");
  if ((u8(data, 0) >> 4) != 6) return malformed("IPv6 header with another version");
  size_t payload = load_be16(data.data() + 4);
  if (payload == 0) payload = data.size() - 40;  // a jumbogram, or offload: as captured
  DecodedPacket out;
  out.segment.src.family = out.segment.dst.family = 6;
  std::memcpy(out.segment.src.addr.data(), data.data() + 8, 16);
  std::memcpy(out.segment.dst.addr.data(), data.data() + 24, 16);
  uint8_t next = u8(data, 6);
  size_t at = 40;
  size_t end = 40 + payload;  // where the IP payload ends on the wire
  // Extension headers, at most a handful: a loop bounded by the bytes.
  for (;;) {
    switch (next) {
      case kIpProtoTcp: {
        Bytes rest = data.subspan(at, std::min(data.size(), end) - std::min(at, std::min(data.size(), end)));
        if (at > end) return malformed("IPv6 extension headers longer than the payload");
        return decode_tcp(rest, end - at, out);
      }
      case 0:     // hop-by-hop options
      case 43:    // routing
      case 60:    // destination options
      case 51: {  // authentication header: its length is in 4-byte units
        if (data.size() < at + 2) return malformed("IPv6 extension header cut off");
        const size_t len = next == 51 ? (size_t{u8(data, at + 1)} + 2) * 4 : (size_t{u8(data, at + 1)} + 1) * 8;
        if (data.size() < at + len) return malformed("IPv6 extension header cut off");
        next = u8(data, at);
        at += len;
        break;
      }
      case 44: {  // fragment
        if (data.size() < at + 8) return malformed("IPv6 fragment header cut off");
        const uint16_t off_m = load_be16(data.data() + at + 2);
        // Offset 0 without "more fragments" is an atomic fragment: the whole packet.
        if (off_m != 0) return of_kind(PacketKind::kFragment);
        next = u8(data, at);
        at += 8;
        break;
      }
      default: return of_kind(PacketKind::kOther);  // 59 (no next header), ESP, UDP, ICMPv6...
    }
    if (at > end) return malformed("IPv6 extension headers longer than the payload");
  }
}

DecodedPacket decode_ip(Bytes data) {
  if (data.empty()) return malformed("IP header missing");
  switch (u8(data, 0) >> 4) {
    case 4: return decode_ipv4(data);
    case 6: return decode_ipv6(data);
    default: return of_kind(PacketKind::kOther);
  }
}

DecodedPacket decode_ethertype(uint16_t type, Bytes data) {
  switch (type) {
    case kEtherIpv4: return decode_ipv4(data);
    case kEtherIpv6: return decode_ipv6(data);
    default: return of_kind(PacketKind::kOther);
  }
}

// BSD loopback: the address family, whose value for IPv6 differs between
// systems (10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 Darwin).
DecodedPacket decode_family(uint32_t family, Bytes data) {
  switch (family) {
    case 2: return decode_ipv4(data);
    case 10:
    case 24:
    case 28:
    case 30: return decode_ipv6(data);
    default: return of_kind(PacketKind::kOther);
  }
}

}  // namespace

std::string format_endpoint(const Endpoint& e) {
  char host[INET6_ADDRSTRLEN] = {};
  if (e.family == 4) {
    inet_ntop(AF_INET, e.addr.data(), host, sizeof host);
    return fmt::format("{}:{}", host, e.port);
  }
  inet_ntop(AF_INET6, e.addr.data(), host, sizeof host);
  return fmt::format("[{}]:{}", host, e.port);
}

DecodedPacket decode_packet(LinkType link, Bytes data, uint32_t /*wire_length*/) {
  switch (link) {
    case LinkType::kEthernet: {
      if (data.size() < 14) return malformed("Ethernet header cut off");
      uint16_t type = load_be16(data.data() + 12);
      size_t at = 14;
      // 802.1Q and QinQ tags: 2 bytes of tag control, then the next type.
      while (type == kEtherVlan || type == kEtherQinQ || type == kEtherQinQ2) {
        if (data.size() < at + 4) return malformed("802.1Q tag cut off");
        type = load_be16(data.data() + at + 2);
        at += 4;
      }
      return decode_ethertype(type, data.subspan(at));
    }
    case LinkType::kLinuxSll:
      if (data.size() < 16) return malformed("Linux cooked (SLL) header cut off");
      return decode_ethertype(load_be16(data.data() + 14), data.subspan(16));
    case LinkType::kLinuxSll2:
      if (data.size() < 20) return malformed("Linux cooked (SLL2) header cut off");
      return decode_ethertype(load_be16(data.data()), data.subspan(20));
    case LinkType::kNull: {
      if (data.size() < 4) return malformed("loopback header cut off");
      // Host byte order of the machine that captured: small values tell which.
      uint32_t family = 0;
      std::memcpy(&family, data.data(), 4);
      const uint32_t be = load_be32(data.data());
      const uint32_t le = __builtin_bswap32(be);
      family = (le & 0xffff0000u) == 0 ? le : be;
      return decode_family(family, data.subspan(4));
    }
    case LinkType::kLoop:
      if (data.size() < 4) return malformed("loopback header cut off");
      return decode_family(load_be32(data.data()), data.subspan(4));
    case LinkType::kRaw: return decode_ip(data);
    case LinkType::kIpv4: return decode_ipv4(data);
    case LinkType::kIpv6: return decode_ipv6(data);
  }
  return of_kind(PacketKind::kUnsupported);
}

// ---------------------------------------------------------------------------
// TcpStream

void TcpStream::start(uint32_t first_seq) {
  started_ = true;
  next_seq_ = first_seq;
}

bool TcpStream::acked_beyond(uint32_t ack) const {
  if (!started_) return false;
  const uint32_t expected = next_seq_ + (finished_ ? 1 : 0);  // a FIN takes a sequence number
  return static_cast<int32_t>(ack - expected) > 0;
}

void TcpStream::check_fin() {
  if (fin_known_ && !finished_ && next_off_ >= fin_off_) finished_ = true;
}

TcpStream::Accept TcpStream::accept(uint32_t seq, Bytes payload, bool fin, Bytes& in_order) {
  in_order = {};
  if (!started_) start(seq);
  // Where the segment starts relative to what was delivered: sequence
  // numbers are compared modulo 2^32, so a stream may wrap around any number
  // of times; offsets before the stream's start are cut off.
  const int64_t rel = static_cast<int32_t>(seq - next_seq_);
  int64_t off = static_cast<int64_t>(next_off_) + rel;
  Bytes data = payload;
  if (off < 0) {
    const auto cut = static_cast<size_t>(std::min<int64_t>(-off, static_cast<int64_t>(data.size())));
    data = data.subspan(cut);
    off += static_cast<int64_t>(cut);
  }
  const auto start = static_cast<uint64_t>(off);
  const uint64_t end = start + data.size();
  if (fin && !fin_known_) {
    fin_known_ = true;
    fin_off_ = end;
  }
  if (end <= next_off_) {
    if (!payload.empty()) ++duplicates_;  // a retransmission, or a keep-alive's one byte
    check_fin();
    return Accept::kOk;
  }
  if (start <= next_off_) {
    Bytes fresh = data.subspan(static_cast<size_t>(next_off_ - start));
    // Bytes that came early already hold part of this range: theirs win
    // (first copy), so the fresh bytes stop where they start and what is
    // past them waits its turn like any early data.
    if (!early_.empty() && early_.begin()->first < next_off_ + fresh.size()) {
      const auto keep = static_cast<size_t>(early_.begin()->first - next_off_);
      Bytes rest = fresh.subspan(keep);
      fresh = fresh.first(keep);
      next_off_ += keep;
      next_seq_ += static_cast<uint32_t>(keep);
      in_order = fresh;
      // Bounded by one segment: buffered whatever the limit, or bytes would be lost.
      buffered_ += fill_early(next_off_, rest, true);
      check_fin();
      return Accept::kOk;
    }
    next_off_ += fresh.size();
    next_seq_ += static_cast<uint32_t>(fresh.size());
    in_order = fresh;
    check_fin();
    return Accept::kOk;
  }

  // Early: keep the parts that no earlier copy holds.
  if (data.empty()) return Accept::kOk;  // a FIN (or an ACK) ahead of the data it follows
  ++early_segments_;
  const size_t fresh_bytes = fill_early(start, data, false);
  if (fresh_bytes == 0) {
    ++duplicates_;
    return Accept::kOk;
  }
  if (buffered_ + fresh_bytes > max_buffered_) return Accept::kOverLimit;
  buffered_ += fill_early(start, data, true);
  return Accept::kOk;
}

size_t TcpStream::fill_early(uint64_t start, Bytes data, bool insert) {
  const uint64_t end = start + data.size();
  size_t fresh = 0;
  uint64_t at = start;
  auto it = early_.upper_bound(start);
  if (it != early_.begin()) --it;
  while (at < end) {
    while (it != early_.end() && it->first + it->second.size() <= at) ++it;
    if (it != early_.end() && it->first <= at) {
      at = std::min(end, it->first + it->second.size());
      continue;
    }
    const uint64_t upto = it == early_.end() ? end : std::min(it->first, end);
    if (insert) {
      const auto from = static_cast<std::ptrdiff_t>(at - start);
      const auto to = static_cast<std::ptrdiff_t>(upto - start);
      it = early_.emplace_hint(it, at, std::vector<std::byte>(data.begin() + from, data.begin() + to));
      ++it;
    }
    fresh += static_cast<size_t>(upto - at);
    at = upto;
  }
  return fresh;
}

bool TcpStream::pop_ready(Bytes& out) {
  while (!early_.empty()) {
    auto it = early_.begin();
    if (it->first > next_off_) return false;
    popped_.swap(it->second);
    const uint64_t at = it->first;
    early_.erase(it);
    buffered_ -= popped_.size();
    const uint64_t skip = next_off_ - at;
    if (skip >= popped_.size()) continue;  // wholly delivered already
    out = Bytes{popped_.data(), popped_.size()}.subspan(static_cast<size_t>(skip));
    next_off_ += out.size();
    next_seq_ += static_cast<uint32_t>(out.size());
    check_fin();
    return true;
  }
  return false;
}

}  // namespace pgwire
