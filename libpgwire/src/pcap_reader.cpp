#include "pgwire/pcap_reader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include "pgwire/capture_merge.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/system.hpp"
#include "pgwire/tcp_reassembly.hpp"

namespace pgwire {

bool is_packet_capture_magic(Bytes head) {
  if (head.size() < 4) return false;
  const uint32_t m = load_be32(head.data());
  return m == 0xa1b2c3d4 || m == 0xd4c3b2a1 ||  // pcap, microseconds
         m == 0xa1b23c4d || m == 0x4d3cb2a1 ||  // pcap, nanoseconds
         m == 0x0a0d0d0a;                       // pcapng section header block
}

namespace {

// For descriptors someone made non-blocking: wait instead of failing with EAGAIN.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    if (::poll(&p, 1, -1) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// The file as libpcap reads it: a FILE over our descriptor (stdin and pipes
// included) that first gives back the bytes the caller read to recognise
// it, and counts what was read for offsets and progress.
struct Source {
  int fd = -1;
  bool owns_fd = false;
  std::vector<std::byte> prefix;
  size_t prefix_used = 0;
  uint64_t position = 0;  // bytes handed to stdio so far
  std::string name;
};

ssize_t source_read(void* cookie, char* buf, size_t size) {
  auto* s = static_cast<Source*>(cookie);
  if (s->prefix_used < s->prefix.size()) {
    const size_t n = std::min(size, s->prefix.size() - s->prefix_used);
    std::memcpy(buf, s->prefix.data() + s->prefix_used, n);
    s->prefix_used += n;
    s->position += n;
    return static_cast<ssize_t>(n);
  }
  for (;;) {
    const ssize_t n = ::read(s->fd, buf, size);
    if (n >= 0) {
      s->position += static_cast<uint64_t>(n);
      return n;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_readable(s->fd)) continue;
    return -1;
  }
}

// Only ftell: stdio asks for the position (offset 0 from the current one)
// and subtracts what it buffered.
int source_seek(void* cookie, off64_t* offset, int whence) {
  auto* s = static_cast<Source*>(cookie);
  if (whence == SEEK_CUR && *offset == 0) {
    *offset = static_cast<off64_t>(s->position);
    return 0;
  }
  errno = ESPIPE;
  return -1;
}

int source_close(void* cookie) {
  auto* s = static_cast<Source*>(cookie);
  if (s->owns_fd && s->fd >= 0) ::close(s->fd);
  delete s;
  return 0;
}

std::optional<LinkType> link_type_of(int dlt) {
  switch (dlt) {
    case DLT_NULL: return LinkType::kNull;
    case DLT_EN10MB: return LinkType::kEthernet;
    case DLT_RAW: return LinkType::kRaw;
    case DLT_LOOP: return LinkType::kLoop;
    case DLT_LINUX_SLL: return LinkType::kLinuxSll;
    case DLT_LINUX_SLL2: return LinkType::kLinuxSll2;
    case DLT_IPV4: return LinkType::kIpv4;
    case DLT_IPV6: return LinkType::kIpv6;
    default: return std::nullopt;
  }
}

struct FlowKey {
  Endpoint lo, hi;
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const {
    // FNV-1a over both endpoints: cheap, and the tuples of one capture differ mostly in ports.
    uint64_t h = 1469598103934665603ULL;
    auto mix = [&h](const Endpoint& e) {
      for (uint8_t b : e.addr) h = (h ^ b) * 1099511628211ULL;
      h = (h ^ e.port) * 1099511628211ULL;
      h = (h ^ e.family) * 1099511628211ULL;
    };
    mix(k.lo);
    mix(k.hi);
    return static_cast<size_t>(h);
  }
};

// A plausible boundary to join a direction that started before the capture:
// the bytes start with a message of a type this direction sends and a length
// it allows, and the messages after it chain up to the end of the bytes (the
// last one may go on beyond). At least one message must be whole, or a
// segment that only starts a large message could be taken for one.
bool plausible_boundary(Direction dir, Bytes b) {
  size_t at = 0;
  size_t whole = 0;
  while (at < b.size()) {
    if (b.size() - at < 5) return whole > 0;
    const uint8_t type = std::to_integer<uint8_t>(b[at]);
    const uint32_t length = load_be32(b.data() + at + 1);
    const uint32_t max = dir == Direction::kFrontend ? frontend_max_length(type) : backend_max_length(type);
    if (max == 0 || length < 4 || length > max) return false;
    const uint64_t end = at + 1 + uint64_t{length};
    if (end > b.size()) return whole > 0;
    ++whole;
    at = static_cast<size_t>(end);
  }
  return whole > 0;
}

// The first 8 bytes of a connection: a startup packet PostgreSQL accepts?
bool valid_startup(const std::byte* head) {
  const uint32_t length = load_be32(head);
  const uint32_t code = load_be32(head + 4);
  if (length < 8 || length > kMaxStartupPacket) return false;
  if (code == kSslRequestCode || code == kGssEncRequestCode) return length == 8;
  if (code == kCancelRequestCode) return length >= 8 + 4 + kMinCancelKey && length <= 8 + 4 + kMaxCancelKey;
  // Protocol 3.x: any minor version (clients "grease" with unknown ones).
  return protocol_major(code) == 3;
}

const char* side_name(Direction d) { return d == Direction::kFrontend ? "client" : "server"; }

}  // namespace

struct PcapReader::Impl {
  enum class State : uint8_t {
    kWaitStartup,  // the connection's start is in the capture: its first client bytes decide
    kPostgres,     // a session, framed from its start
    kMidStream,    // a session joined after its start, at the first plausible boundary
    kIgnored,      // not PostgreSQL, encrypted, damaged or over: packets are dropped
  };

  struct Connection {
    explicit Connection(size_t max_buffered) : stream{TcpStream(max_buffered), TcpStream(max_buffered)} {}
    Endpoint client, server;
    std::string client_text, server_text;
    State state = State::kWaitStartup;
    bool syn_seen = false;
    uint32_t syn_seq = 0;
    TcpStream stream[2];
    ConnectionFramer framer;
    bool joined[2] = {false, false};
    uint64_t session = 0;  // 0 until the session is open
    int64_t open_ts = 0;
    std::byte head[8] = {};
    size_t head_have = 0;
    std::string fin_reason;  // from the first FIN
  };

  pcap_t* pcap = nullptr;
  FILE* file = nullptr;
  Source* source = nullptr;  // owned by `file`
  std::string name;
  PcapOptions opts;
  std::optional<LinkType> link;
  int dlt = 0;
  bool pcapng = false;

  std::unordered_map<FlowKey, std::unique_ptr<Connection>, FlowKeyHash> conns;
  uint64_t next_session = 1;
  size_t total_buffered = 0;
  PcapStats stats;

  // The packet being read.
  uint64_t packet_no = 0;
  uint64_t packet_offset = 0;  // file offset of its record
  uint64_t end_offset = 0;     // file offset after it
  int64_t ts = 0;

  // Records made and not yet returned; their storage is reused.
  std::vector<OwnedRecord> out;
  size_t out_head = 0;
  size_t out_size = 0;

  std::vector<Error> damage;
  std::optional<Error> failed;
  bool eof = false;

  ~Impl() {
    if (pcap) pcap_close(pcap);  // closes `file`, which frees `source`
  }

  bool is_postgres_port(uint16_t port) const {
    return std::find(opts.ports.begin(), opts.ports.end(), port) != opts.ports.end();
  }

  OwnedRecord& push(CaptureRecordType type, uint64_t session) {
    if (out_size == out.size()) out.emplace_back();
    OwnedRecord& r = out[out_size++];
    r.rec = CaptureRecord{};
    r.rec.type = type;
    r.rec.session_id = session;
    r.rec.ts_ns = ts;
    r.rec.file_offset = packet_offset;
    r.client.clear();
    r.server.clear();
    r.reason.clear();
    r.key.clear();
    r.data.clear();
    r.value.clear();
    return r;
  }

  void open_session(Connection& c) {
    c.session = next_session++;
    ++stats.sessions;
    OwnedRecord& r = push(CaptureRecordType::kSessionOpen, c.session);
    r.rec.ts_ns = c.open_ts;
    r.client = c.client_text;
    r.server = c.server_text;
  }

  void close_session(Connection& c, std::string_view reason) {
    if (c.session != 0) {
      OwnedRecord& r = push(CaptureRecordType::kSessionClose, c.session);
      r.reason.assign(reason);
    }
    drop(c);
  }

  // Nothing more is read of this connection; its buffers go.
  void drop(Connection& c) {
    c.state = State::kIgnored;
    for (TcpStream& s : c.stream) {
      total_buffered -= s.buffered();
      s = TcpStream(0);
    }
    c.framer = ConnectionFramer();
  }

  void emit_frame(Connection& c, Direction dir, const Frame& f) {
    const bool secret = opts.redact_secrets && dir == Direction::kFrontend && f.kind == FrameKind::kTyped &&
                        f.type == static_cast<uint8_t>(FrontendType::kPassword);
    if (secret && !f.first) return;  // the header alone was recorded with the first piece
    OwnedRecord& r = push(CaptureRecordType::kFrame, c.session);
    r.rec.direction = dir;
    r.rec.frame_kind = f.kind;
    r.rec.frame_flags = static_cast<uint8_t>((f.first ? kFrameFirst : 0) | (f.last ? kFrameLast : 0));
    // The header as it was on the wire (Frame::append_header), written here
    // into storage that is reused from record to record.
    if (f.first) {
      std::byte h[5];
      size_t n = 0;
      if (f.kind == FrameKind::kTyped || f.kind == FrameKind::kAnswer) h[n++] = static_cast<std::byte>(f.type);
      if (f.kind == FrameKind::kTyped || f.kind == FrameKind::kStartup) {
        store_be32(h + n, f.length);
        n += 4;
      }
      r.data.assign(h, h + n);
    }
    if (secret) {
      r.rec.frame_flags = kFrameFirst | kFrameLast | kFrameRedacted;
      return;
    }
    r.data.insert(r.data.end(), f.body.begin(), f.body.end());
  }

  // A session's data is missing from here: reported, and the session ends.
  void damaged(Connection& c, Direction dir, const std::string& what) {
    const int d = static_cast<int>(dir);
    if (c.state == State::kMidStream && !c.joined[d]) {
      // Still looking for a message boundary in this direction: what was
      // lost was going to be dropped anyway. The stream starts again at the
      // next segment.
      total_buffered -= c.stream[d].buffered();
      c.stream[d] = TcpStream(opts.max_buffered_per_direction);
      return;
    }
    if (c.session == 0) {
      // Before the startup packet decided anything: damage only where a
      // PostgreSQL connection was expected.
      if (is_postgres_port(c.server.port)) {
        damage.push_back(
            Error{Errc::kTruncated, packet_offset,
                  fmt::format("packet {}: connection {} -> {}: {} stream at offset {}: {}, before its "
                              "startup packet was whole; the connection is not read",
                              packet_no, c.client_text, c.server_text, side_name(dir), c.stream[d].delivered(), what)});
      }
      drop(c);
      return;
    }
    ++stats.damaged_sessions;
    damage.push_back(Error{Errc::kTruncated, packet_offset,
                           fmt::format("packet {}: session {} ({} -> {}): {} stream at offset {}: {}; the rest of the "
                                       "session is not read",
                                       packet_no, c.session, c.client_text, c.server_text, side_name(dir),
                                       c.stream[static_cast<int>(dir)].delivered(), what)});
    close_session(c, fmt::format("capture data missing: {} stream at offset {}: {}", side_name(dir),
                                 c.stream[static_cast<int>(dir)].delivered(), what));
  }

  void encrypted(Connection& c, std::string_view how) {
    ++stats.encrypted_sessions;
    close_session(c, fmt::format("encrypted: {}; the rest of the session is not readable and is skipped", how));
  }

  void not_postgres(Connection& c) {
    if (is_postgres_port(c.server.port)) ++stats.not_postgres;
    drop(c);
  }

  void feed_frames(Connection& c, Direction dir, Bytes in) {
    while (!in.empty() && c.state != State::kIgnored) {
      FrameResult r = c.framer.next(dir, in);
      if (r.failed()) {
        damaged(c, dir, fmt::format("cannot be framed: {}", r.error().describe()));
        return;
      }
      if (r.needs_more()) return;
      const Frame& f = r.frame();
      emit_frame(c, dir, f);
      if (f.kind == FrameKind::kAnswer && (f.type == 'S' || f.type == 'G')) {
        encrypted(c, f.type == 'S' ? "the server accepted the client's SSLRequest"
                                   : "the server accepted the client's GSSENCRequest");
        return;
      }
      if (f.kind == FrameKind::kOpaque) {
        encrypted(c, "the client opened with TLS (direct SSL)");
        return;
      }
    }
  }

  // In-order bytes of a direction.
  void deliver(Connection& c, Direction dir, Bytes bytes) {
    if (bytes.empty()) return;
    switch (c.state) {
      case State::kIgnored: return;
      case State::kWaitStartup: {
        if (dir == Direction::kBackend) {  // the server spoke first: not PostgreSQL
          not_postgres(c);
          return;
        }
        if (c.head_have == 0 && std::to_integer<uint8_t>(bytes[0]) == kTlsHandshakeByte) {
          if (!is_postgres_port(c.server.port)) {
            not_postgres(c);
            return;
          }
          c.state = State::kPostgres;
          open_session(c);
          feed_frames(c, dir, bytes);
          return;
        }
        const size_t take = std::min(sizeof c.head - c.head_have, bytes.size());
        std::memcpy(c.head + c.head_have, bytes.data(), take);
        c.head_have += take;
        bytes = bytes.subspan(take);
        if (c.head_have < sizeof c.head) return;
        if (!valid_startup(c.head)) {
          not_postgres(c);
          return;
        }
        c.state = State::kPostgres;
        open_session(c);
        feed_frames(c, dir, {c.head, sizeof c.head});
        feed_frames(c, dir, bytes);
        return;
      }
      case State::kMidStream: {
        const int d = static_cast<int>(dir);
        if (!c.joined[d]) {
          if (!plausible_boundary(dir, bytes)) return;  // not at a boundary: dropped, joined later
          c.joined[d] = true;
          (dir == Direction::kFrontend ? c.framer.frontend() : c.framer.backend()).join_mid_stream(FrameKind::kTyped);
          if (c.session == 0) {
            ++stats.partial_sessions;
            open_session(c);
          }
        }
        feed_frames(c, dir, bytes);
        return;
      }
      case State::kPostgres: feed_frames(c, dir, bytes); return;
    }
  }

  Connection* find_or_make(const TcpSegment& s, FlowKey& key) {
    const bool src_lo = s.src < s.dst;
    key = src_lo ? FlowKey{s.src, s.dst} : FlowKey{s.dst, s.src};
    const bool syn = s.flags & kTcpSyn, ack = s.flags & kTcpAck;
    auto it = conns.find(key);
    if (it != conns.end()) {
      Connection& c = *it->second;
      // A new SYN on the addresses of a connection: the old one is over
      // (its FIN or RST was not captured), unless this repeats its SYN.
      if (!(syn && !ack) || (c.syn_seen && c.syn_seq == s.seq)) return &c;
      if (c.state != State::kIgnored) close_session(c, "a new connection on the same addresses and ports");
      conns.erase(it);
    }
    auto c = std::make_unique<Connection>(opts.max_buffered_per_direction);
    if (syn && !ack) {
      c->client = s.src;
      c->server = s.dst;
      c->syn_seen = true;
      c->syn_seq = s.seq;
    } else if (syn && ack) {  // the SYN was not captured, the SYN-ACK was: the start is here
      c->client = s.dst;
      c->server = s.src;
      c->stream[0].start(s.ack);
    } else {
      // Joined after its start: only connections to a PostgreSQL port, and
      // only from a packet with data (the ACKs and FINs of connections that
      // ended are not worth an entry).
      if (s.payload.empty()) return nullptr;
      if (is_postgres_port(s.dst.port)) {
        c->client = s.src;
        c->server = s.dst;
      } else if (is_postgres_port(s.src.port)) {
        c->client = s.dst;
        c->server = s.src;
      } else {
        return nullptr;
      }
      c->state = State::kMidStream;
    }
    c->open_ts = ts;
    c->client_text = format_endpoint(c->client);
    c->server_text = format_endpoint(c->server);
    return conns.emplace(key, std::move(c)).first->second.get();
  }

  void on_segment(const TcpSegment& s) {
    ++stats.tcp_packets;
    FlowKey key;
    Connection* cp = find_or_make(s, key);
    if (!cp) return;
    Connection& c = *cp;
    const bool syn = s.flags & kTcpSyn, ack = s.flags & kTcpAck, fin = s.flags & kTcpFin, rst = s.flags & kTcpRst;
    const Direction dir = s.src == c.client ? Direction::kFrontend : Direction::kBackend;
    const Direction peer = dir == Direction::kFrontend ? Direction::kBackend : Direction::kFrontend;
    const int d = static_cast<int>(dir), p = static_cast<int>(peer);
    if (c.state == State::kIgnored) {
      if (rst || fin) conns.erase(key);
      return;
    }
    uint32_t seq = s.seq;
    if (syn) {
      ++seq;  // the SYN takes a sequence number; data on a SYN (TCP Fast Open) follows it
      if (!c.stream[d].started()) c.stream[d].start(seq);
    }
    // The peer has what the capture does not: a lost packet.
    if (ack && c.stream[p].acked_beyond(s.ack)) {
      damaged(c, peer,
              fmt::format("{} bytes the capture does not have (acknowledged by the {})",
                          static_cast<uint32_t>(s.ack - c.stream[p].next_seq()), side_name(dir)));
      if (c.state == State::kIgnored) return;
    }
    TcpStream& st = c.stream[d];
    const size_t before = st.buffered();
    Bytes in_order;
    if (st.accept(seq, s.payload, fin, in_order) == TcpStream::Accept::kOverLimit) {
      ++stats.buffer_limit_hits;
      damaged(c, dir,
              fmt::format("more than {} bytes out of order (the buffering limit)", opts.max_buffered_per_direction));
      return;
    }
    deliver(c, dir, in_order);
    Bytes more;
    while (c.state != State::kIgnored && st.pop_ready(more)) deliver(c, dir, more);
    if (c.state == State::kIgnored) return;
    total_buffered = total_buffered + st.buffered() - before;
    stats.peak_buffered = std::max(stats.peak_buffered, total_buffered);
    if (total_buffered > opts.max_buffered_total) {
      ++stats.buffer_limit_hits;
      damaged(c, dir,
              fmt::format("more than {} bytes out of order in all connections (the buffering limit)",
                          opts.max_buffered_total));
      return;
    }
    if (s.missing > 0) {
      damaged(c, dir, fmt::format("{} bytes of a packet not captured (snapshot length)", s.missing));
      return;
    }
    if (rst) {
      close_session(c, fmt::format("connection reset by the {}", side_name(dir)));
      conns.erase(key);
      return;
    }
    if (fin && st.finished() && c.fin_reason.empty()) {
      c.fin_reason = fmt::format("{} closed the connection", side_name(dir));
    }
    if (c.stream[0].finished() && c.stream[1].finished()) {
      close_session(c, c.fin_reason);
      conns.erase(key);
    }
  }

  void on_packet(const pcap_pkthdr& h, const u_char* bytes) {
    ++stats.packets;
    ts = static_cast<int64_t>(h.ts.tv_sec) * 1000000000 + static_cast<int64_t>(h.ts.tv_usec);
    if (!link) {
      ++stats.unsupported_link;
      return;
    }
    const DecodedPacket p =
        decode_packet(*link, {reinterpret_cast<const std::byte*>(bytes), static_cast<size_t>(h.caplen)}, h.len);
    switch (p.kind) {
      case PacketKind::kTcp: on_segment(p.segment); return;
      case PacketKind::kFragment: ++stats.fragments; return;
      case PacketKind::kMalformed: ++stats.malformed; return;
      case PacketKind::kUnsupported: ++stats.unsupported_link; return;
      case PacketKind::kOther: return;
    }
  }

  // At the end: a hole that was never filled is data the capture lost.
  void finish() {
    std::vector<Connection*> open;
    for (auto& [k, c] : conns) {
      if (c->state != State::kIgnored && c->session != 0) open.push_back(c.get());
    }
    std::sort(open.begin(), open.end(),
              [](const Connection* a, const Connection* b) { return a->session < b->session; });
    for (Connection* c : open) {
      for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
        if (c->state != State::kIgnored && c->stream[static_cast<int>(dir)].has_hole()) {
          damaged(*c, dir, "the capture ends with bytes after a hole that was never filled");
        }
      }
    }
  }

  // Reads packets until records are ready or the file ends.
  void fill() {
    while (out_head == out_size && !eof && !failed) {
      out_head = out_size = 0;
      pcap_pkthdr* h = nullptr;
      const u_char* bytes = nullptr;
      packet_offset = end_offset;
      const int r = pcap_next_ex(pcap, &h, &bytes);
      if (r == PCAP_ERROR_BREAK) {
        eof = true;
        finish();
        break;
      }
      if (r != 1) {
        // libpcap says why ("truncated dump file; tried to read 100 captured bytes, only got 40").
        const std::string why = pcap_geterr(pcap);
        const bool cut = why.find("truncated") != std::string::npos;
        failed = Error{cut ? Errc::kTruncated : Errc::kBadValue, packet_offset,
                       fmt::format("packet {}: {}", packet_no + 1, why)};
        finish();
        break;
      }
      ++packet_no;
      const long at = std::ftell(file);
      end_offset = at >= 0 ? static_cast<uint64_t>(at) : end_offset + 16 + h->caplen;
      on_packet(*h, bytes);
    }
  }
};

Result<std::unique_ptr<PcapReader>> PcapReader::open(const std::string& path, PcapOptions opts) {
  if (path == "-") return from_fd(STDIN_FILENO, false, "<stdin>", {}, std::move(opts));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", path, errno_text(errno))};
  return from_fd(fd, true, path, {}, std::move(opts));
}

Result<std::unique_ptr<PcapReader>> PcapReader::from_fd(int fd, bool owns_fd, std::string name, Bytes prefix,
                                                        PcapOptions opts) {
  auto* src = new Source;
  src->fd = fd;
  src->owns_fd = owns_fd;
  src->prefix.assign(prefix.begin(), prefix.end());
  src->name = name;
  FILE* f = fopencookie(src, "r", cookie_io_functions_t{source_read, nullptr, source_seek, source_close});
  if (f == nullptr) {
    const int err = errno;
    source_close(src);
    return Error{Errc::kIo, 0, fmt::format("{}: {}", name, errno_text(err))};
  }
  // Large reads: the packets of a capture are small and many.
  (void)std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (p == nullptr) {
    std::fclose(f);
    return Error{Errc::kBadValue, 0, fmt::format("{} is not a readable packet capture: {}", name, errbuf)};
  }
  std::unique_ptr<PcapReader> r(new PcapReader());
  r->impl_ = std::make_unique<Impl>();
  Impl& m = *r->impl_;
  m.pcap = p;
  m.file = f;
  m.source = src;
  m.name = std::move(name);
  m.opts = std::move(opts);
  m.dlt = pcap_datalink(p);
  m.link = link_type_of(m.dlt);
  // libpcap gives pcapng sections as version 1.0 (classic pcap files are 2.4).
  m.pcapng = pcap_major_version(p) == 1;
  const long at = std::ftell(f);
  m.end_offset = at >= 0 ? static_cast<uint64_t>(at) : 24;
  if (!m.link) {
    const char* dlt_name = pcap_datalink_val_to_name(m.dlt);
    return Error{Errc::kUnsupported, 0,
                 fmt::format("{}: link type {} ({}) is not one this reader decodes (Ethernet, Linux cooked SLL/SLL2, "
                             "BSD loopback, raw IP)",
                             m.name, m.dlt, dlt_name ? dlt_name : "unknown")};
  }
  return r;
}

PcapReader::~PcapReader() = default;

Result<bool> PcapReader::next(CaptureRecord& rec) {
  Impl& m = *impl_;
  m.fill();
  if (m.out_head < m.out_size) {
    rec = m.out[m.out_head++].view();
    return true;
  }
  if (m.failed) return *m.failed;
  return false;
}

std::vector<Error> PcapReader::take_damage() { return std::exchange(impl_->damage, {}); }

const std::string& PcapReader::name() const { return impl_->name; }

uint64_t PcapReader::input_offset() const { return impl_->source->position; }

const PcapStats& PcapReader::stats() const { return impl_->stats; }

std::string PcapReader::describe() const {
  const char* dlt_name = pcap_datalink_val_to_name(impl_->dlt);
  return fmt::format("{} ({})", impl_->pcapng ? "pcapng" : "pcap", dlt_name ? dlt_name : "?");
}

}  // namespace pgwire
