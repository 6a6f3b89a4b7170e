// The expected bytes below were written by hand from the pcap file format
// (draft-ietf-opsawg-pcap), Ethernet II, IPv4 (RFC 791), IPv6 (RFC 8200) and
// TCP (RFC 9293); their checksums were summed by hand per RFC 1071 and the
// files checked by tshark 4.0 (-o ip.check_checksum:TRUE -o
// tcp.check_checksum:TRUE: every checksum "Good").
#include "pgwire/pcap_writer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_files.hpp"

#include <random>
#include <string>
#include <vector>

namespace pgwire {
namespace {

using ByteVec = std::vector<std::byte>;

ByteVec hex(std::string_view h) {
  std::string clean;
  for (char c : h) {
    if (c != ' ' && c != '\n') clean += c;
  }
  return from_hex(clean).value();
}

using test::TempDir;

ByteVec read_file(const std::string& path) {
  const std::string s = test::slurp(path);
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// What a test needs of a packet, read at the offsets the formats define.
struct Packet {
  uint32_t sec = 0, frac = 0;
  bool ipv6 = false;
  ByteVec src, dst;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  std::string payload;
};

uint32_t le32(const std::byte* p) {
  return std::to_integer<uint32_t>(p[0]) | (std::to_integer<uint32_t>(p[1]) << 8) |
         (std::to_integer<uint32_t>(p[2]) << 16) | (std::to_integer<uint32_t>(p[3]) << 24);
}

std::vector<Packet> packets_of(const ByteVec& file) {
  std::vector<Packet> out;
  size_t pos = 24;
  while (pos + 16 <= file.size()) {
    const std::byte* r = file.data() + pos;
    Packet p;
    p.sec = le32(r);
    p.frac = le32(r + 4);
    const uint32_t len = le32(r + 8);
    const std::byte* e = r + 16;
    p.ipv6 = load_be16(e + 12) == 0x86dd;
    const std::byte* ip = e + 14;
    const std::byte* tcp = ip + (p.ipv6 ? 40 : 20);
    p.src.assign(ip + (p.ipv6 ? 8 : 12), ip + (p.ipv6 ? 24 : 16));
    p.dst.assign(ip + (p.ipv6 ? 24 : 16), ip + (p.ipv6 ? 40 : 20));
    p.sport = load_be16(tcp);
    p.dport = load_be16(tcp + 2);
    p.seq = load_be32(tcp + 4);
    p.ack = load_be32(tcp + 8);
    p.flags = std::to_integer<uint8_t>(tcp[13]);
    const size_t tcp_len = (std::to_integer<size_t>(tcp[12]) >> 4) * 4;
    const std::byte* payload = tcp + tcp_len;
    p.payload.assign(reinterpret_cast<const char*>(payload), r + 16 + len - payload);
    out.push_back(p);
    pos += 16 + len;
  }
  EXPECT_EQ(pos, file.size());
  return out;
}

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;

// The file header: little-endian nanosecond magic, version 2.4, two reserved
// zero words, snaplen 262144, link type 1 (Ethernet).
constexpr std::string_view kNanoHeader = "4d3cb2a1 0200 0400 00000000 00000000 00000400 01000000";

TcpFlow v4_flow() {
  TcpFlow f;
  f.id = 1;
  f.client = parse_tcp_endpoint("192.0.2.1:40000").value();
  f.server = parse_tcp_endpoint("192.0.2.2:5432").value();
  f.next_seq[0] = 1000;
  f.next_seq[1] = 2000;
  return f;
}

constexpr int64_t kTs = 1700000000123456789;  // 2023-11-14T22:13:20.123456789Z

TEST(PcapChecksum, Rfc1071Example) {
  // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, whose complement is 220d.
  EXPECT_EQ(internet_checksum(hex("0001f203f4f5f6f7")), 0x220d);
  // An odd length is padded with a zero byte: 0001 + f203 + f4f5 + f600 = 1dcfa, folded dcfb -> 2304.
  EXPECT_EQ(internet_checksum(hex("0001f203f4f5f6")), 0x2304);
}

TEST(PcapChecksum, MatchesWordByWordSum) {
  // The definition, one 16-bit big-endian word at a time, against the
  // 64-bit native-order sum the writer uses, at every length and alignment.
  std::mt19937 rng(7);
  ByteVec data(300);
  for (auto& b : data) b = std::byte(rng() & 0xff);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; n + start <= data.size(); n += 7) {
      uint32_t sum = 0;
      for (size_t i = 0; i < n; i += 2) {
        const uint32_t hi = std::to_integer<uint32_t>(data[start + i]);
        const uint32_t lo = i + 1 < n ? std::to_integer<uint32_t>(data[start + i + 1]) : 0;
        sum += (hi << 8) | lo;
      }
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
      EXPECT_EQ(internet_checksum({data.data() + start, n}), static_cast<uint16_t>(~sum)) << start << " " << n;
    }
  }
}

TEST(PcapWriter, Ipv4DataPacket) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("a.pcap");
  auto w = PcapWriter::create(path).value();
  TcpFlow f = v4_flow();
  ASSERT_TRUE(w->data(f, kTs, Direction::kFrontend, hex("51 0000000d 53454c4543542031 00")));  // Query "SELECT 1"
  ASSERT_TRUE(w->finish());
  EXPECT_EQ(w->packets(), 1u);
  EXPECT_EQ(f.next_seq[0], 1014u);
  const ByteVec expected =
      hex(std::string(kNanoHeader) +
          // seconds 0x6553f100, nanoseconds 123456789 = 0x075bcd15, 68 bytes captured and on the wire
          "00f15365 15cd5b07 44000000 44000000"
          // Ethernet: to the server's MAC, from the client's, IPv4
          "020000000002 020000000001 0800"
          // IPv4: 45, length 54, id 0, DF, TTL 64, TCP, checksum b6be, 192.0.2.1 -> 192.0.2.2
          "4500 0036 0000 4000 4006 b6be c0000201 c0000202"
          // TCP: 40000 -> 5432, seq 1000, ack 2000, 5 words, PSH+ACK, window 65535, checksum 0087
          "9c40 1538 000003e8 000007d0 50 18 ffff 0087 0000"
          "51 0000000d 53454c4543542031 00");
  EXPECT_EQ(read_file(path), expected);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(PcapWriter, Ipv6HandshakeWithOptions) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("b.pcap");
  auto w = PcapWriter::create(path).value();
  TcpFlow f;
  f.client = parse_tcp_endpoint("[2001:db8::1]:40000").value();
  f.server = parse_tcp_endpoint("[2001:db8::2]:5432").value();
  f.next_seq[0] = 0x01020304;
  f.next_seq[1] = 0x0a0b0c0d;
  ASSERT_TRUE(w->open(f, kTs));
  ASSERT_TRUE(w->finish());
  const ByteVec expected = hex(std::string(kNanoHeader) +
                               // SYN: 82 bytes; IPv6 payload 28 (TCP header of 7 words), next header TCP, hop limit 64
                               "00f15365 15cd5b07 52000000 52000000 020000000002 020000000001 86dd"
                               "60000000 001c 06 40 20010db8000000000000000000000001 20010db8000000000000000000000002"
                               // seq 01020304, ack 0, SYN, checksum 7901; MSS 65495, NOP, window scale 7
                               "9c40 1538 01020304 00000000 70 02 ffff 7901 0000 0204ffd7 01 030307"
                               // SYN-ACK from the server: seq 0a0b0c0d, ack 01020305, checksum 62d8
                               "00f15365 15cd5b07 52000000 52000000 020000000001 020000000002 86dd"
                               "60000000 001c 06 40 20010db8000000000000000000000002 20010db8000000000000000000000001"
                               "1538 9c40 0a0b0c0d 01020305 70 12 ffff 62d8 0000 0204ffd7 01 030307"
                               // ACK: seq 01020305, ack 0a0b0c0e, checksum 88c7
                               "00f15365 15cd5b07 4a000000 4a000000 020000000002 020000000001 86dd"
                               "60000000 0014 06 40 20010db8000000000000000000000001 20010db8000000000000000000000002"
                               "9c40 1538 01020305 0a0b0c0e 50 10 ffff 88c7 0000");
  EXPECT_EQ(read_file(path), expected);
  EXPECT_EQ(f.next_seq[0], 0x01020305u);
  EXPECT_EQ(f.next_seq[1], 0x0a0b0c0eu);
}

TEST(PcapWriter, MicrosecondMagicAndTimestamps) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("c.pcap");
  PcapWriterOptions opts;
  opts.nanosecond = false;
  auto w = PcapWriter::create(path, opts).value();
  TcpFlow f = v4_flow();
  ASSERT_TRUE(w->data(f, kTs, Direction::kBackend, hex("5a 00000005 49")));
  ASSERT_TRUE(w->finish());
  const ByteVec file = read_file(path);
  EXPECT_EQ(ByteVec(file.begin(), file.begin() + 4), hex("d4c3b2a1"));
  auto p = packets_of(file);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].sec, 1700000000u);
  EXPECT_EQ(p[0].frac, 123456u);
  EXPECT_EQ(p[0].sport, 5432);
  EXPECT_EQ(p[0].seq, 2000u);
  EXPECT_EQ(p[0].ack, 1000u);
}

TEST(PcapWriter, SplitsAtMaxSegmentAndFillsOneSegmentPerRead) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("d.pcap");
  PcapWriterOptions opts;
  opts.max_segment = 40;
  auto w = PcapWriter::create(path, opts).value();
  TcpFlow f = v4_flow();
  const std::string big(100, 'x');
  ASSERT_TRUE(w->data(f, kTs, Direction::kFrontend, as_bytes(big)));
  // Same flow, direction and time: the open 20-byte segment takes 20 more.
  ASSERT_TRUE(w->data(f, kTs, Direction::kFrontend, as_bytes(std::string(30, 'y'))));
  // Another time: a segment of its own.
  ASSERT_TRUE(w->data(f, kTs + 1, Direction::kFrontend, as_bytes(std::string_view("z"))));
  ASSERT_TRUE(w->finish());
  auto p = packets_of(read_file(path));
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].payload, std::string(40, 'x'));
  EXPECT_EQ(p[1].seq, 1040u);
  EXPECT_EQ(p[2].payload, std::string(20, 'x') + std::string(20, 'y'));
  EXPECT_EQ(p[2].seq, 1080u);
  EXPECT_EQ(p[3].payload, std::string(10, 'y'));
  EXPECT_EQ(p[3].seq, 1120u);
  EXPECT_EQ(p[4].payload, "z");
  EXPECT_EQ(p[4].seq, 1130u);
  for (const Packet& x : p) {
    EXPECT_EQ(x.flags, kPsh | kAck);
    EXPECT_EQ(x.ack, 2000u);
  }
}

TEST(PcapWriter, ReceiverAcknowledgesLongOneWayStreams) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("e.pcap");
  auto w = PcapWriter::create(path).value();
  TcpFlow f = v4_flow();
  const std::string chunk(kPcapAckEvery + 1000, 'c');
  ASSERT_TRUE(w->data(f, kTs, Direction::kFrontend, as_bytes(chunk)));
  ASSERT_TRUE(w->data(f, kTs + 1, Direction::kFrontend, as_bytes(chunk)));
  ASSERT_TRUE(w->finish());
  auto p = packets_of(read_file(path));
  int acks = 0;
  for (const Packet& x : p) {
    if (x.sport != 5432) continue;
    ++acks;
    EXPECT_EQ(x.flags, kAck);
    EXPECT_TRUE(x.payload.empty());
    EXPECT_EQ(x.seq, 2000u);
    EXPECT_GE(x.ack - 1000, kPcapAckEvery);
  }
  EXPECT_GE(acks, 1);
  EXPECT_LE(acks, 2);
}

TEST(PcapWriter, CloseIsFinFinAck) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("f.pcap");
  auto w = PcapWriter::create(path).value();
  TcpFlow f = v4_flow();
  ASSERT_TRUE(w->close(f, kTs));
  ASSERT_TRUE(w->finish());
  auto p = packets_of(read_file(path));
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].flags, kFin | kAck);
  EXPECT_EQ(p[0].seq, 1000u);
  EXPECT_EQ(p[0].ack, 2000u);
  EXPECT_EQ(p[1].flags, kFin | kAck);
  EXPECT_EQ(p[1].seq, 2000u);
  EXPECT_EQ(p[1].ack, 1001u);
  EXPECT_EQ(p[2].flags, kAck);
  EXPECT_EQ(p[2].seq, 1001u);
  EXPECT_EQ(p[2].ack, 2001u);
}

TEST(PcapWriter, CreateSetsModeOfExistingFile) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("g.pcap");
  test::spit(path, "old");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto w = PcapWriter::create(path).value();
  ASSERT_TRUE(w->finish());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read_file(path).size(), 24u);
}

TEST(PcapEndpoint, Parse) {
  auto v4 = parse_tcp_endpoint("127.0.0.1:5433");
  ASSERT_TRUE(v4);
  EXPECT_FALSE(v4->ipv6);
  EXPECT_EQ(v4->port, 5433);
  EXPECT_EQ(format_endpoint(*v4), "127.0.0.1:5433");
  auto v6 = parse_tcp_endpoint("[::1]:40000");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(format_endpoint(*v6), "[::1]:40000");
  auto mapped = parse_tcp_endpoint("[::ffff:10.1.2.3]:7");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(format_endpoint(*mapped), "10.1.2.3:7");
  EXPECT_EQ(format_endpoint(to_ipv6(*mapped)), "[::ffff:10.1.2.3]:7");
  for (std::string_view bad : {"/tmp/.s.PGSQL.5432", "[local]", "?", "", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536",
                               "::1:5432", "[1.2.3.4]:5", "host:5432", "1.2.3.4:54x"}) {
    EXPECT_FALSE(parse_tcp_endpoint(bad)) << bad;
  }
}

// ---------------------------------------------------------------------------
// PcapExport: capture records in, packets out.

struct Records {
  std::vector<ByteVec> keep;  // the records' data
  std::vector<CaptureRecord> recs;
  std::vector<std::string> strings;

  std::string_view str(std::string s) {
    strings.reserve(64);
    strings.push_back(std::move(s));
    return strings.back();
  }
  void open(uint64_t sid, int64_t ts, std::string_view client, std::string_view server) {
    CaptureRecord r;
    r.type = CaptureRecordType::kSessionOpen;
    r.session_id = sid;
    r.ts_ns = ts;
    r.client = str(std::string(client));
    r.server = str(std::string(server));
    recs.push_back(r);
  }
  void frame(uint64_t sid, int64_t ts, Direction d, FrameKind kind, std::string_view hexbytes,
             uint8_t flags = kFrameFirst | kFrameLast) {
    keep.reserve(256);
    keep.push_back(hex(hexbytes));
    CaptureRecord r;
    r.type = CaptureRecordType::kFrame;
    r.session_id = sid;
    r.ts_ns = ts;
    r.direction = d;
    r.frame_kind = kind;
    r.frame_flags = flags;
    r.data = {keep.back().data(), keep.back().size()};
    recs.push_back(r);
  }
  void meta(uint64_t sid, int64_t ts, std::string_view key, std::string_view value) {
    CaptureRecord r;
    r.type = CaptureRecordType::kSessionMeta;
    r.session_id = sid;
    r.ts_ns = ts;
    r.key = str(std::string(key));
    r.value = as_bytes(str(std::string(value)));
    recs.push_back(r);
  }
  void close(uint64_t sid, int64_t ts) {
    CaptureRecord r;
    r.type = CaptureRecordType::kSessionClose;
    r.session_id = sid;
    r.ts_ns = ts;
    r.reason = "client closed";
    recs.push_back(r);
  }
};

constexpr std::string_view kSslRequest = "00000008 04d2162f";
// StartupMessage 3.0 user=u database=d.
constexpr std::string_view kStartup = "0000001b 00030000 7573657200 7500 6461746162617365 00 6400 00";
constexpr std::string_view kQuery = "51 00000009 73656c6300";  // Query "selc"
constexpr std::string_view kReady = "5a 00000005 49";

std::vector<Packet> export_records(const Records& in, PcapExportOptions opts, PcapExportStats* stats = nullptr) {
  TempDir dir("pcap_writer_test");
  const std::string path = dir.file("x.pcap");
  auto w = PcapWriter::create(path).value();
  PcapExport ex(*w, std::move(opts));
  for (const CaptureRecord& r : in.recs) EXPECT_TRUE(ex.on_record(r));
  EXPECT_TRUE(ex.finish());
  EXPECT_TRUE(w->finish());
  if (stats) *stats = ex.stats();
  return packets_of(read_file(path));
}

TEST(PcapExport, SessionWithTerminatedTlsAndRedactedPassword) {
  Records in;
  in.open(3, 100, "[2001:db8::7]:50000", "[2001:db8::8]:5433");
  in.frame(3, 110, Direction::kFrontend, FrameKind::kStartup, kSslRequest);
  in.frame(3, 120, Direction::kBackend, FrameKind::kAnswer, "53");
  in.meta(3, 130, "client_tls", "TLSv1.3 TLS_AES_256_GCM_SHA384");
  in.frame(3, 140, Direction::kFrontend, FrameKind::kStartup, kStartup);
  in.frame(3, 150, Direction::kBackend, FrameKind::kTyped, "52 0000000c 00000005 01020304");  // MD5, salt
  in.frame(3, 160, Direction::kFrontend, FrameKind::kTyped, "70 00000028", kFrameFirst | kFrameLast | kFrameRedacted);
  in.frame(3, 170, Direction::kBackend, FrameKind::kTyped, "52 00000008 00000000");
  in.frame(3, 180, Direction::kFrontend, FrameKind::kTyped, kQuery);
  in.close(3, 190);
  PcapExportStats stats;
  auto p = export_records(in, {}, &stats);
  // SYN, SYN-ACK, ACK; startup, AuthenticationMD5, AuthenticationOk, Query; FIN, FIN, ACK.
  ASSERT_EQ(p.size(), 10u);
  EXPECT_EQ(p[0].flags, kSyn);
  EXPECT_TRUE(p[0].ipv6);
  EXPECT_EQ(p[0].src, hex("20010db8000000000000000000000007"));
  EXPECT_EQ(p[0].sport, 50000);
  EXPECT_EQ(p[0].dport, 5433);
  EXPECT_EQ(p[3].payload, std::string(reinterpret_cast<const char*>(hex(kStartup).data()), hex(kStartup).size()));
  EXPECT_EQ(p[3].seq, p[0].seq + 1);
  EXPECT_EQ(p[5].payload.size(), 9u);  // AuthenticationOk: the password message is not there
  EXPECT_EQ(p[6].payload.substr(0, 1), "Q");
  EXPECT_EQ(p[6].seq, p[3].seq + 27);  // nothing of the password in the sequence space
  EXPECT_EQ(p[7].flags, kFin | kAck);
  EXPECT_EQ(stats.redacted_frames, 1u);
  EXPECT_EQ(stats.tls_negotiations, 1u);
  EXPECT_EQ(stats.synthetic_addresses, 0u);
}

TEST(PcapExport, RefusedEncryptionStaysAndUnixSocketsGetSyntheticAddresses) {
  Records in;
  in.open(70000, 100, "[local]", "/run/postgresql/.s.PGSQL.5439");
  in.frame(70000, 110, Direction::kFrontend, FrameKind::kStartup, kSslRequest);
  in.frame(70000, 120, Direction::kBackend, FrameKind::kAnswer, "4e");
  in.frame(70000, 140, Direction::kFrontend, FrameKind::kStartup, kStartup);
  in.frame(70000, 150, Direction::kBackend, FrameKind::kTyped, kReady);
  PcapExportStats stats;
  auto p = export_records(in, {}, &stats);
  ASSERT_EQ(p.size(), 7u);  // handshake, SSLRequest, 'N', startup, ReadyForQuery; no FIN: never closed
  EXPECT_FALSE(p[0].ipv6);
  // Session 70000 = 64512 + 5488: the second client address, port 1024 + 5488.
  EXPECT_EQ(p[0].src, hex("7f000003"));
  EXPECT_EQ(p[0].sport, 6512);
  EXPECT_EQ(p[0].dst, hex("7f000001"));
  EXPECT_EQ(p[0].dport, 5439);
  EXPECT_EQ(p[3].payload.size(), 8u);
  EXPECT_EQ(p[4].payload, "N");
  EXPECT_EQ(stats.synthetic_addresses, 1u);
  EXPECT_EQ(stats.tls_negotiations, 0u);
}

TEST(PcapExport, PartialSessionStartsAtItsFirstWholeFrame) {
  Records in;
  in.frame(5, 100, Direction::kBackend, FrameKind::kTyped, "000000", kFrameLast);  // the end of an earlier frame
  in.frame(5, 110, Direction::kFrontend, FrameKind::kTyped, kQuery);
  in.frame(5, 120, Direction::kBackend, FrameKind::kTyped, kReady);
  in.close(5, 130);
  PcapExportStats stats;
  std::vector<uint64_t> partial;
  PcapExportOptions opts;
  opts.partial = [&](uint64_t id, int64_t) { partial.push_back(id); };
  auto p = export_records(in, opts, &stats);
  ASSERT_EQ(p.size(), 5u);  // no handshake: Query, ReadyForQuery, FIN exchange
  EXPECT_EQ(p[0].flags, kPsh | kAck);
  EXPECT_EQ(p[0].dport, 5432);
  EXPECT_EQ(p[1].payload.size(), 6u);
  EXPECT_EQ(p[1].ack, p[0].seq + 10);
  EXPECT_EQ(partial, std::vector<uint64_t>{5});
  EXPECT_EQ(stats.partial_sessions, 1u);
}

TEST(PcapExport, SelectsByUserAndTime) {
  Records in;
  in.open(1, 100, "10.0.0.1:1000", "10.0.0.2:5432");
  in.frame(1, 110, Direction::kFrontend, FrameKind::kStartup, kStartup);
  in.frame(1, 120, Direction::kFrontend, FrameKind::kTyped, kQuery);
  in.open(2, 200, "10.0.0.1:1001", "10.0.0.2:5432");
  in.frame(2, 210, Direction::kFrontend, FrameKind::kTyped, kQuery);  // no startup: user unknown
  PcapExportOptions opts;
  std::vector<std::string> users;
  opts.select = [&](const SessionInfo& s) {
    users.push_back(s.user);
    return s.user == "u";
  };
  auto p = export_records(in, opts);
  ASSERT_EQ(p.size(), 5u);
  for (const Packet& x : p) EXPECT_TRUE(x.sport == 1000 || x.dport == 1000);
  EXPECT_EQ(users, (std::vector<std::string>{"u", ""}));

  PcapExportOptions window;
  window.since = 115;
  p = export_records(in, window);
  // Session 1 opened before the window: no handshake, no startup, its Query; session 2 whole.
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].sport, 1000);
  EXPECT_EQ(p[0].payload.substr(0, 1), "Q");
  EXPECT_EQ(p[1].flags, kSyn);
}

}  // namespace
}  // namespace pgwire
