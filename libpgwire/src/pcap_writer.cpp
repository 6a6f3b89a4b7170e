#include "pgwire/pcap_writer.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "pgwire/messages.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/system.hpp"

namespace pgwire {

namespace {

// pcap file header (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html),
// written little-endian: readers tell the byte order from the magic.
constexpr uint32_t kMagicMicro = 0xa1b2c3d4;
constexpr uint32_t kMagicNano = 0xa1b23c4d;
constexpr uint32_t kLinkTypeEthernet = 1;
constexpr uint32_t kSnapLen = 262144;
constexpr size_t kFileHeaderSize = 24;
constexpr size_t kRecordHeaderSize = 16;
constexpr size_t kEthernetSize = 14;
constexpr size_t kIpv4Size = 20;
constexpr size_t kIpv6Size = 40;
constexpr size_t kTcpSize = 20;
// SYN options: the maximum segment size (kind 2, length 4: max_segment, the
// largest segment sent; without it Wireshark adds a note to every SYN), then
// NOP and window scale (kind 3, length 3, shift), the NOP keeping the header
// a multiple of 4 bytes.
constexpr size_t kSynOptionsSize = 8;
constexpr uint8_t kWindowShift = 7;  // 65535 << 7: an 8 MiB window, far above kPcapAckEvery
constexpr size_t kMaxHeaders = kRecordHeaderSize + kEthernetSize + kIpv6Size + kTcpSize + kSynOptionsSize;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;

// Locally administered unicast MAC addresses (bit 1 of the first byte set):
// Ethernet is only there because every tool reads it.
constexpr uint8_t kClientMac[6] = {0x02, 0, 0, 0, 0, 0x01};
constexpr uint8_t kServerMac[6] = {0x02, 0, 0, 0, 0, 0x02};

void put_le32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte((v >> (8 * i)) & 0xff);
}

// The one's complement sum of `n` bytes as 16-bit big-endian words, folded
// to 16 bits. Added as native 64-bit words with end-around carry, which
// gives the same sum in native byte order (RFC 1071 section 2 (B)), swapped
// at the end on a little-endian machine.
uint32_t ones_sum(const std::byte* p, size_t n) {
  uint64_t acc = 0;
  auto add = [&acc](uint64_t v) {
    acc += v;
    acc += acc < v ? 1 : 0;
  };
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    add(v);
  }
  for (; n >= 2; p += 2, n -= 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    add(v);
  }
  if (n == 1) {
    // The odd last byte is the high half of a word padded with a zero.
    const std::byte pad[2] = {*p, std::byte{0}};
    uint16_t v;
    std::memcpy(&v, pad, 2);
    add(v);
  }
  uint64_t folded = (acc & 0xffffffff) + (acc >> 32);
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  auto sum = static_cast<uint16_t>(folded);
  if constexpr (std::endian::native == std::endian::little) sum = static_cast<uint16_t>((sum >> 8) | (sum << 8));
  return sum;
}

uint16_t fold_complement(uint32_t sum) {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Bytes of startup-phase frames a session may hold (PcapExport::Session::held).
constexpr size_t kMaxHeldBytes = 64 << 10;

constexpr int idx(Direction d) { return static_cast<int>(d); }
constexpr Direction peer(Direction d) { return d == Direction::kFrontend ? Direction::kBackend : Direction::kFrontend; }

}  // namespace

uint16_t internet_checksum(Bytes data, uint32_t sum) {
  return fold_complement(sum + ones_sum(data.data(), data.size()));
}

std::optional<PcapEndpoint> parse_tcp_endpoint(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= text.size() || text.size() - colon - 1 > 5) return std::nullopt;
  uint32_t port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  char buf[64];
  if (host.empty() || host.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  PcapEndpoint e;
  e.port = static_cast<uint16_t>(port);
  if (!bracketed && inet_pton(AF_INET, buf, e.address.data()) == 1) return e;
  if (!bracketed || inet_pton(AF_INET6, buf, e.address.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(e.address.data(), kMappedPrefix, 12) == 0) {
    std::memmove(e.address.data(), e.address.data() + 12, 4);
    std::fill(e.address.begin() + 4, e.address.end(), 0);
    return e;
  }
  e.ipv6 = true;
  return e;
}

PcapEndpoint to_ipv6(const PcapEndpoint& e) {
  if (e.ipv6) return e;
  PcapEndpoint v6;
  v6.ipv6 = true;
  v6.port = e.port;
  v6.address[10] = 0xff;
  v6.address[11] = 0xff;
  std::memcpy(v6.address.data() + 12, e.address.data(), 4);
  return v6;
}

std::string format_endpoint(const PcapEndpoint& e) {
  char host[INET6_ADDRSTRLEN] = {};
  inet_ntop(e.ipv6 ? AF_INET6 : AF_INET, e.address.data(), host, sizeof host);
  return e.ipv6 ? fmt::format("[{}]:{}", host, e.port) : fmt::format("{}:{}", host, e.port);
}

// ---------------------------------------------------------------------------

struct PcapWriter::Impl {
  int fd = -1;
  bool owns_fd = false;
  PcapWriterOptions opts;
  std::unique_ptr<std::byte[]> buf;
  size_t used = 0;
  uint64_t flushed = 0;
  uint64_t packets = 0;
  std::optional<Error> failed;

  // The data segment being filled: the last packet in `buf`, its lengths and
  // checksums not written yet.
  struct Segment {
    bool open = false;
    const TcpFlow* flow = nullptr;
    uint64_t flow_id = 0;
    Direction dir = Direction::kFrontend;
    int64_t ts_ns = 0;
    size_t start = 0;    // of its pcap record header in buf
    size_t headers = 0;  // pcap record header through TCP header
    uint32_t payload = 0;
    bool ipv6 = false;
  } seg;

  ~Impl() {
    if (owns_fd && fd >= 0) ::close(fd);
  }

  Status write_all(const std::byte* p, size_t size) {
    const WriteResult w = write_fully(fd, p, size);
    flushed += w.written;
    if (w.err == 0) return {};
    failed = Error{Errc::kIo, flushed, "write pcap: " + errno_text(w.err)};
    return *failed;
  }

  Status write_buffer() {
    Status st = write_all(buf.get(), used);
    used = 0;
    return st;
  }

  // Fills in the lengths and checksums of the packet at `start`.
  void finish_packet(size_t start, size_t headers, uint32_t payload, bool ipv6) {
    std::byte* rec = buf.get() + start;
    const auto captured = static_cast<uint32_t>(headers - kRecordHeaderSize + payload);
    put_le32(rec + 8, captured);
    put_le32(rec + 12, captured);
    std::byte* ip = rec + kRecordHeaderSize + kEthernetSize;
    std::byte* tcp = ip + (ipv6 ? kIpv6Size : kIpv4Size);
    const size_t tcp_length = (rec + headers - tcp) + payload;
    uint32_t pseudo;
    if (ipv6) {
      store_be16(ip + 4, static_cast<uint16_t>(tcp_length));
      // Source and destination, the upper-layer length and next header (RFC 8200 section 8.1).
      pseudo = ones_sum(ip + 8, 32) + static_cast<uint32_t>(tcp_length) + 6;
    } else {
      store_be16(ip + 2, static_cast<uint16_t>(kIpv4Size + tcp_length));
      store_be16(ip + 10, internet_checksum({ip, kIpv4Size}));
      // Source, destination, zero, protocol, TCP length (RFC 9293 section 3.1).
      pseudo = ones_sum(ip + 12, 8) + 6 + static_cast<uint32_t>(tcp_length);
    }
    store_be16(tcp + 16, internet_checksum({tcp, tcp_length}, pseudo));
  }

  void end_segment() {
    if (!seg.open) return;
    finish_packet(seg.start, seg.headers, seg.payload, seg.ipv6);
    seg.open = false;
  }

  // Writes every header of a packet from `from` to the end of buf, lengths
  // and checksums left zero; returns the size of the headers.
  size_t put_headers(const TcpFlow& flow, int64_t ts_ns, Direction from, uint8_t flags) {
    std::byte* p = buf.get() + used;
    const bool ipv6 = flow.client.ipv6;
    const bool syn = (flags & kSyn) != 0;
    const size_t tcp_size = kTcpSize + (syn ? kSynOptionsSize : 0);
    const size_t headers = kRecordHeaderSize + kEthernetSize + (ipv6 ? kIpv6Size : kIpv4Size) + tcp_size;
    std::memset(p, 0, headers);

    const uint64_t ts = ts_ns < 0 ? 0 : static_cast<uint64_t>(ts_ns);
    put_le32(p, static_cast<uint32_t>(ts / 1000000000));
    put_le32(p + 4, static_cast<uint32_t>(opts.nanosecond ? ts % 1000000000 : ts % 1000000000 / 1000));
    p += kRecordHeaderSize;

    const bool fe = from == Direction::kFrontend;
    const PcapEndpoint& src = fe ? flow.client : flow.server;
    const PcapEndpoint& dst = fe ? flow.server : flow.client;
    std::memcpy(p, fe ? kServerMac : kClientMac, 6);
    std::memcpy(p + 6, fe ? kClientMac : kServerMac, 6);
    store_be16(p + 12, ipv6 ? 0x86dd : 0x0800);
    p += kEthernetSize;

    if (ipv6) {
      p[0] = std::byte{0x60};
      p[6] = std::byte{6};   // next header: TCP
      p[7] = std::byte{64};  // hop limit
      std::memcpy(p + 8, src.address.data(), 16);
      std::memcpy(p + 24, dst.address.data(), 16);
      p += kIpv6Size;
    } else {
      p[0] = std::byte{0x45};  // version 4, 5 words of header
      p[6] = std::byte{0x40};  // don't fragment; with it the identification may stay 0 (RFC 6864)
      p[8] = std::byte{64};    // TTL
      p[9] = std::byte{6};     // protocol: TCP
      std::memcpy(p + 12, src.address.data(), 4);
      std::memcpy(p + 16, dst.address.data(), 4);
      p += kIpv4Size;
    }

    store_be16(p, src.port);
    store_be16(p + 2, dst.port);
    store_be32(p + 4, flow.next_seq[idx(from)]);
    store_be32(p + 8, (flags & kAck) != 0 ? flow.next_seq[idx(peer(from))] : 0);
    p[12] = std::byte(static_cast<uint8_t>((tcp_size / 4) << 4));
    p[13] = std::byte{flags};
    store_be16(p + 14, 65535);  // scaled by 2^kWindowShift after the SYNs when they said so
    if (syn) {
      p[20] = std::byte{2};  // maximum segment size
      p[21] = std::byte{4};
      store_be16(p + 22, static_cast<uint16_t>(opts.max_segment));
      p[24] = std::byte{1};  // NOP
      p[25] = std::byte{3};  // window scale
      p[26] = std::byte{3};
      p[27] = std::byte{kWindowShift};
    }
    return headers;
  }

  // Begins a packet: ends the open segment, writes the buffer out if full.
  Status begin() {
    if (failed) return *failed;
    end_segment();
    if (used >= opts.buffer_size) return write_buffer();
    return {};
  }

  // A packet without payload.
  Status control(TcpFlow& flow, int64_t ts_ns, Direction from, uint8_t flags) {
    if (Status st = begin(); !st) return st;
    const size_t start = used;
    const size_t headers = put_headers(flow, ts_ns, from, flags);
    used += headers;
    finish_packet(start, headers, 0, flow.client.ipv6);
    ++packets;
    if ((flags & kAck) != 0) flow.unacked[idx(peer(from))] = 0;
    return {};
  }
};

Result<std::unique_ptr<PcapWriter>> PcapWriter::create(const std::string& path, PcapWriterOptions opts) {
  const int fd = open_private(path, O_TRUNC);
  if (fd < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", path, errno_text(errno))};
  return from_fd(fd, true, opts);
}

Result<std::unique_ptr<PcapWriter>> PcapWriter::from_fd(int fd, bool owns_fd, PcapWriterOptions opts) {
  if (fd < 0) return Error{Errc::kIo, 0, "invalid file descriptor"};
  if (opts.max_segment == 0 || opts.max_segment > kPcapMaxSegment) {
    if (owns_fd) ::close(fd);
    return Error{Errc::kBadValue, 0,
                 fmt::format("max_segment {} is not within 1..{}", opts.max_segment, kPcapMaxSegment)};
  }
  std::unique_ptr<PcapWriter> w(new PcapWriter());
  w->impl_ = std::make_unique<Impl>();
  Impl& m = *w->impl_;
  m.fd = fd;
  m.owns_fd = owns_fd;
  m.opts = opts;
  m.opts.buffer_size = std::max<size_t>(m.opts.buffer_size, 4096);
  // Room for one more packet of the largest size past buffer_size.
  m.buf = std::make_unique_for_overwrite<std::byte[]>(m.opts.buffer_size + kMaxHeaders + m.opts.max_segment);

  std::byte* h = m.buf.get();
  put_le32(h, m.opts.nanosecond ? kMagicNano : kMagicMicro);
  h[4] = std::byte{2};  // version 2.4
  h[5] = std::byte{0};
  h[6] = std::byte{4};
  h[7] = std::byte{0};
  put_le32(h + 8, 0);   // reserved (thiszone)
  put_le32(h + 12, 0);  // reserved (sigfigs)
  put_le32(h + 16, kSnapLen);
  put_le32(h + 20, kLinkTypeEthernet);
  m.used = kFileHeaderSize;
  return w;
}

PcapWriter::~PcapWriter() {
  if (impl_ && !impl_->failed) (void)flush();
}

void PcapWriter::seed(TcpFlow& flow) {
  const uint64_t isn = splitmix64(flow.id);
  flow.next_seq[idx(Direction::kFrontend)] = static_cast<uint32_t>(isn);
  flow.next_seq[idx(Direction::kBackend)] = static_cast<uint32_t>(isn >> 32);
  flow.unacked[0] = flow.unacked[1] = 0;
  flow.scaled = false;
}

Status PcapWriter::open(TcpFlow& flow, int64_t ts_ns) {
  Impl& m = *impl_;
  if (Status st = m.control(flow, ts_ns, Direction::kFrontend, kSyn); !st) return st;
  ++flow.next_seq[idx(Direction::kFrontend)];
  if (Status st = m.control(flow, ts_ns, Direction::kBackend, kSyn | kAck); !st) return st;
  ++flow.next_seq[idx(Direction::kBackend)];
  flow.scaled = true;
  return m.control(flow, ts_ns, Direction::kFrontend, kAck);
}

Status PcapWriter::data(TcpFlow& flow, int64_t ts_ns, Direction from, Bytes payload) {
  Impl& m = *impl_;
  if (m.failed) return *m.failed;
  const bool ipv6 = flow.client.ipv6;
  while (!payload.empty()) {
    Impl::Segment& seg = m.seg;
    const bool same = seg.open && seg.flow == &flow && seg.flow_id == flow.id && seg.dir == from &&
                      seg.ts_ns == ts_ns && seg.payload < m.opts.max_segment;
    if (!same) {
      if (flow.unacked[idx(from)] >= kPcapAckEvery) {
        if (Status st = m.control(flow, ts_ns, peer(from), kAck); !st) return st;
      }
      if (Status st = m.begin(); !st) return st;
      seg.open = true;
      seg.flow = &flow;
      seg.flow_id = flow.id;
      seg.dir = from;
      seg.ts_ns = ts_ns;
      seg.start = m.used;
      seg.headers = m.put_headers(flow, ts_ns, from, kPsh | kAck);
      seg.payload = 0;
      seg.ipv6 = ipv6;
      m.used += seg.headers;
      ++m.packets;
      flow.unacked[idx(peer(from))] = 0;
    }
    const size_t n = std::min<size_t>(payload.size(), m.opts.max_segment - seg.payload);
    std::memcpy(m.buf.get() + m.used, payload.data(), n);
    m.used += n;
    seg.payload += static_cast<uint32_t>(n);
    flow.next_seq[idx(from)] += static_cast<uint32_t>(n);
    flow.unacked[idx(from)] += static_cast<uint32_t>(std::min<size_t>(n, kPcapAckEvery));
    payload = payload.subspan(n);
  }
  return {};
}

Status PcapWriter::close(TcpFlow& flow, int64_t ts_ns, Direction closer) {
  Impl& m = *impl_;
  if (Status st = m.control(flow, ts_ns, closer, kFin | kAck); !st) return st;
  ++flow.next_seq[idx(closer)];
  if (Status st = m.control(flow, ts_ns, peer(closer), kFin | kAck); !st) return st;
  ++flow.next_seq[idx(peer(closer))];
  return m.control(flow, ts_ns, closer, kAck);
}

Status PcapWriter::flush() {
  Impl& m = *impl_;
  if (m.failed) return *m.failed;
  m.end_segment();
  return m.write_buffer();
}

Status PcapWriter::finish() {
  Impl& m = *impl_;
  Status st = flush();
  if (m.owns_fd && m.fd >= 0) {
    if (::close(m.fd) != 0 && st) st = Error{Errc::kIo, m.flushed, "close pcap: " + errno_text(errno)};
    m.fd = -1;
  }
  if (!st && !m.failed) m.failed = st.error();
  return st;
}

uint64_t PcapWriter::packets() const { return impl_->packets; }
uint64_t PcapWriter::bytes_written() const { return impl_->flushed + impl_->used; }

// ---------------------------------------------------------------------------

struct PcapExport::Held {
  int64_t ts_ns = 0;
  Direction dir = Direction::kFrontend;
  uint8_t flags = 0;
  std::vector<std::byte> data;
};

struct PcapExport::Session {
  TcpFlow flow;
  std::string client;  // as the capture gave it, for the selection
  bool has_open = false;
  bool addressed = false;  // flow.client and flow.server are set
  int64_t open_ts = 0;
  // Selection: decided at the StartupMessage (or what shows there is none).
  bool decided = false;
  bool selected = false;
  // The packets have begun: handshake written, or a partial flow joined.
  bool connected = false;
  bool partial = false;
  // A frame of this direction began in the records (a session's start, or
  // the first whole frame of a partial one): bytes before it are skipped.
  bool started[2] = {false, false};
  // Emission of this direction has begun at a frame boundary in the time window.
  bool emitting[2] = {false, false};
  // The startup phase: frames held until the StartupMessage decides the
  // selection, or until the encryption answer shows whether the TLS
  // negotiation stays (it goes when the proxy terminated the TLS).
  std::vector<Held> held;
  size_t held_bytes = 0;
  bool encryption_requested = false;
  char encryption_answer = 0;
};

PcapExport::PcapExport(PcapWriter& writer, PcapExportOptions opts) : writer_(writer), opts_(std::move(opts)) {}
PcapExport::~PcapExport() = default;

bool PcapExport::in_window(int64_t ts_ns) const {
  return (!opts_.since || ts_ns >= *opts_.since) && (!opts_.until || ts_ns < *opts_.until);
}

void PcapExport::set_addresses(Session& s, std::string_view client, std::string_view server) {
  std::optional<PcapEndpoint> c = parse_tcp_endpoint(client);
  std::optional<PcapEndpoint> srv = parse_tcp_endpoint(server);
  if (!c || !srv) ++stats_.synthetic_addresses;
  if (!srv) {
    // A Unix socket: PostgreSQL names it .s.PGSQL.PORT after its TCP port.
    uint16_t port = opts_.default_server_port;
    constexpr std::string_view kSocketName = ".s.PGSQL.";
    if (const size_t at = server.rfind(kSocketName); at != std::string_view::npos) {
      std::string_view digits = server.substr(at + kSocketName.size());
      uint32_t n = 0;
      bool ok = !digits.empty() && digits.size() <= 5;
      for (char ch : digits) {
        ok = ok && ch >= '0' && ch <= '9';
        n = n * 10 + static_cast<uint32_t>(ch - '0');
      }
      if (ok && n > 0 && n <= 65535) port = static_cast<uint16_t>(n);
    }
    srv.emplace();
    srv->address = {127, 0, 0, 1};
    srv->port = port;
  }
  if (!c) {
    // 127.0.0.2 and up, ports 1024 to 65535: session ids 1..64511 on
    // 127.0.0.2, the next 64512 on 127.0.0.3, and so on, so sessions never
    // share an address and port (RFC 1122: all of 127/8 is loopback).
    const uint64_t id = s.flow.id;
    const uint32_t host = 0x7f000002u + static_cast<uint32_t>((id / 64512) % 0xfffffd);
    c.emplace();
    c->address = {static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16), static_cast<uint8_t>(host >> 8),
                  static_cast<uint8_t>(host)};
    c->port = static_cast<uint16_t>(1024 + id % 64512);
  }
  if (c->ipv6 != srv->ipv6) {
    c = to_ipv6(*c);
    srv = to_ipv6(*srv);
  }
  s.flow.client = *c;
  s.flow.server = *srv;
  s.addressed = true;
}

PcapExport::Session& PcapExport::session(uint64_t id, int64_t ts_ns) {
  auto& slot = sessions_[id];
  if (!slot) {
    slot = std::make_unique<Session>();
    slot->flow.id = id;
    slot->open_ts = ts_ns;
    if (!opts_.select) {
      slot->decided = true;
      slot->selected = true;
    }
  }
  return *slot;
}

Status PcapExport::on_record(const CaptureRecord& rec) {
  switch (rec.type) {
    case CaptureRecordType::kSessionOpen: {
      auto it = sessions_.find(rec.session_id);
      if (it != sessions_.end() && (it->second->has_open || it->second->connected)) return {};
      Session& s = session(rec.session_id, rec.ts_ns);
      s.has_open = true;
      s.open_ts = rec.ts_ns;
      s.client = std::string(rec.client);
      set_addresses(s, rec.client, rec.server);
      return {};
    }
    case CaptureRecordType::kSessionMeta: {
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end() || rec.key != kMetaClientTls) return {};
      Session& s = *it->second;
      // The proxy terminated the client's TLS: the records that follow are
      // the decrypted stream. Its SSLRequest and 'S' would make Wireshark
      // read them as TLS, so they go.
      if (s.encryption_requested && s.encryption_answer == 'S') {
        s.held.clear();
        s.held_bytes = 0;
        s.encryption_requested = false;
        s.encryption_answer = 0;
        ++stats_.tls_negotiations;
      }
      return {};
    }
    case CaptureRecordType::kSessionClose: {
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end()) return {};
      Session& s = *it->second;
      Status st;
      if (!s.decided) st = decide(s, {}, {});
      if (st && s.selected) st = release_held(s);
      if (st && s.selected && s.connected && in_window(rec.ts_ns)) st = writer_.close(s.flow, rec.ts_ns);
      sessions_.erase(it);
      return st;
    }
    case CaptureRecordType::kFrame: return on_frame(session(rec.session_id, rec.ts_ns), rec);
  }
  return {};
}

Status PcapExport::on_frame(Session& s, const CaptureRecord& rec) {
  const int d = idx(rec.direction);
  if (!s.started[d]) {
    // The first record of a direction: where its stream starts (as in CaptureDecoder::start_direction).
    if (!rec.first()) {
      s.partial = true;
      return {};  // the rest of a frame that began before the records
    }
    if (rec.direction == Direction::kFrontend && rec.frame_kind != FrameKind::kStartup) {
      const bool tls_hello = !rec.data.empty() && std::to_integer<uint8_t>(rec.data[0]) == kTlsHandshakeByte;
      if (rec.frame_kind == FrameKind::kTyped || !tls_hello) s.partial = true;
    }
    if (rec.direction == Direction::kBackend && rec.frame_kind == FrameKind::kAnswer && !s.encryption_requested) {
      return {};  // the answer to an encryption request not in the records
    }
    s.started[d] = true;
  }
  if (rec.redacted()) {
    // Only the header was captured: the frame is left out whole, since
    // its header announces a body that is not there.
    ++stats_.redacted_frames;
    return {};
  }
  if (s.encryption_requested) {
    if (rec.direction == Direction::kBackend && rec.frame_kind == FrameKind::kAnswer) {
      s.encryption_answer = static_cast<char>(rec.data.empty() ? 0 : std::to_integer<uint8_t>(rec.data[0]));
      if (s.encryption_answer == 'S') {
        hold(s, rec);
        return {};
      }
    }
    // Anything else ends the wait: the negotiation stays in the stream.
    s.encryption_requested = false;
    s.encryption_answer = 0;
    if (s.decided) {
      if (Status st = release_held(s); !st) return st;
    }
  }
  // Held frames are the startup phase's few small packets; a capture that
  // has more there (a client that repeats its SSLRequest without end) gets
  // its session decided without the StartupMessage rather than held.
  if (!s.decided && s.held_bytes > kMaxHeldBytes) {
    if (Status st = decide(s, {}, {}); !st) return st;
  }
  if (!s.decided) {
    if (rec.direction == Direction::kFrontend && rec.frame_kind == FrameKind::kStartup && rec.first()) {
      const uint32_t code = rec.data.size() >= 8 ? load_be32(rec.data.data() + 4) : 0;
      if (code == kSslRequestCode || code == kGssEncRequestCode) {
        s.encryption_requested = true;
        hold(s, rec);
        return {};
      }
      if (protocol_major(code) == 3 && rec.first() && rec.last()) {
        auto startup = fe::StartupMessage::decode(rec.data.subspan(4), 0);
        if (startup) {
          if (Status st = decide(s, startup->param("user"), startup->param("database")); !st) return st;
        }
      }
    }
    if (!s.decided) {
      // Startup-phase traffic before the StartupMessage (an encryption
      // answer, a refused request) is held until it comes; anything else
      // shows there is none to wait for (a partial session).
      const bool startup_phase = rec.direction == Direction::kBackend ? rec.frame_kind == FrameKind::kAnswer
                                                                      : rec.frame_kind == FrameKind::kStartup;
      if (startup_phase) {
        hold(s, rec);
        return {};
      }
      if (Status st = decide(s, {}, {}); !st) return st;
    }
  } else if (rec.direction == Direction::kFrontend && rec.frame_kind == FrameKind::kStartup && rec.first() &&
             rec.data.size() >= 8) {
    const uint32_t code = load_be32(rec.data.data() + 4);
    if (code == kSslRequestCode || code == kGssEncRequestCode) {
      if (Status st = release_held(s); !st) return st;
      s.encryption_requested = true;
      hold(s, rec);
      return {};
    }
  }
  if (!s.selected) return {};
  if (Status st = release_held(s); !st) return st;
  return emit(s, rec.ts_ns, rec.direction, rec.frame_flags, rec.data);
}

void PcapExport::hold(Session& s, const CaptureRecord& rec) {
  s.held.push_back(Held{rec.ts_ns, rec.direction, rec.frame_flags, {rec.data.begin(), rec.data.end()}});
  s.held_bytes += rec.data.size();
}

Status PcapExport::decide(Session& s, std::string_view user, std::string_view database) {
  s.decided = true;
  if (!opts_.select) {
    s.selected = true;
    return {};
  }
  SessionInfo info;
  info.session_id = s.flow.id;
  info.client = s.client;
  info.user = std::string(user);
  info.database = std::string(database);
  info.partial = s.partial;
  s.selected = opts_.select(info);
  if (!s.selected) {
    s.held.clear();
    s.held.shrink_to_fit();
    s.held_bytes = 0;
  }
  return {};
}

Status PcapExport::release_held(Session& s) {
  if (s.held.empty()) return {};
  std::vector<Held> held;
  held.swap(s.held);
  s.held_bytes = 0;
  for (const Held& h : held) {
    if (Status st = emit(s, h.ts_ns, h.dir, h.flags, {h.data.data(), h.data.size()}); !st) return st;
  }
  return {};
}

Status PcapExport::emit(Session& s, int64_t ts_ns, Direction dir, uint8_t flags, Bytes data) {
  if (!in_window(ts_ns)) return {};
  const int d = idx(dir);
  if (!s.emitting[d]) {
    if ((flags & kFrameFirst) == 0) return {};  // the window begins inside this frame
    s.emitting[d] = true;
  }
  if (!s.connected) {
    s.connected = true;
    ++stats_.sessions;
    if (!s.addressed) set_addresses(s, {}, {});
    PcapWriter::seed(s.flow);
    if (s.has_open && in_window(s.open_ts)) {
      if (Status st = writer_.open(s.flow, s.open_ts); !st) return st;
    }
    if (!s.has_open || s.partial) {
      ++stats_.partial_sessions;
      if (opts_.partial) opts_.partial(s.flow.id, ts_ns);
    }
  }
  stats_.payload_bytes += data.size();
  return writer_.data(s.flow, ts_ns, dir, data);
}

Status PcapExport::finish() {
  // In session order, so the output does not depend on hashing.
  std::vector<uint64_t> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    Session& s = *sessions_[id];
    if (!s.decided) {
      if (Status st = decide(s, {}, {}); !st) return st;
    }
    if (s.selected) {
      if (Status st = release_held(s); !st) return st;
    }
  }
  sessions_.clear();
  return writer_.flush();
}

}  // namespace pgwire
