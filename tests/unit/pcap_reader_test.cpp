// Packet captures read through MergedReader: hand-made pcap and pcapng files
// (pcap_builder.hpp, written from the specifications) with the PostgreSQL
// conversations of wire_builder.hpp, in every link layer we decode, and the
// edge cases a real tcpdump rarely shows: reordering, duplicates, a lost
// packet, a capture that starts mid-session, truncation, a flow that is not
// PostgreSQL, an encrypted session.
#include "pgwire/pcap_reader.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "pcap_builder.hpp"
#include "pgwire/capture_merge.hpp"
#include "pgwire/session_monitor.hpp"
#include "wire_builder.hpp"

namespace pgwire {
namespace {

using test::Addr;
using test::PacketBytes;
using test::PcapFile;
using test::PcapngFile;
using test::TcpFlow;
using test::W;

constexpr uint32_t kLinkEthernet = 1, kLinkRaw = 101, kLinkNull = 0, kLinkSll = 113, kLinkSll2 = 276;

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "pcap_test.XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const PacketBytes& bytes) const {
    std::string p = (path_ / name).string();
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    ::chmod(p.c_str(), 0600);
    return p;
  }

 private:
  std::filesystem::path path_;
};

PacketBytes bytes_of(const test::Wire& w) { return w.bytes(); }

// The messages of one short session, from the protocol documentation.
PacketBytes startup() { return bytes_of(W().startup({{"user", "alice"}, {"database", "shop"}})); }
PacketBytes auth_ok_ready() { return bytes_of(W().msg('R', W().i32(0)).msg('Z', W().byte('I'))); }
PacketBytes query(std::string_view sql) { return bytes_of(W().msg('Q', W().str(sql))); }
PacketBytes complete(std::string_view tag) { return bytes_of(W().msg('C', W().str(tag)).msg('Z', W().byte('I'))); }
PacketBytes terminate() { return bytes_of(W().msg('X', W())); }

// One session: handshake, startup, one query, terminate and close; each
// packet wrapped by `link`.
template <class Link>
std::vector<PacketBytes> session_packets(TcpFlow& f, Link link, std::string_view sql = "SELECT 1") {
  return {link(f.syn()),
          link(f.syn_ack()),
          link(f.ack()),
          link(f.client(startup())),
          link(f.server(auth_ok_ready())),
          link(f.client(query(sql))),
          link(f.server(complete("SELECT 1"))),
          link(f.client(terminate())),
          link(f.client_fin()),
          link(f.server_fin()),
          link(f.ack())};
}

struct Decoded {
  std::vector<std::string> records;     // "open 1 C S", "F 1 Q", "close 1 reason"
  std::vector<std::string> statements;  // "1 alice SELECT 1 -> SELECT 1" (partial: "1 ? ...")
  std::vector<std::string> damage;
  std::vector<std::string> open_errors;
  PcapStats stats;
  uint64_t partial = 0;
};

Decoded decode(const std::vector<std::string>& paths, PcapOptions opts = {}) {
  Decoded d;
  MergedReader reader;
  reader.set_pcap_options(std::move(opts));
  d.open_errors = reader.open(paths);
  CaptureDecoder::Callbacks cb;
  cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
    d.statements.push_back(std::to_string(s.session_id) + " " + (s.partial ? "?" : s.user) + " " + ev.sql + " -> " +
                           ev.tag);
  };
  CaptureDecoder decoder(TrackerOptions{}, cb);
  int64_t last = 0;
  while (const CaptureRecord* r = reader.next()) {
    switch (r->type) {
      case CaptureRecordType::kSessionOpen:
        d.records.push_back("open " + std::to_string(r->session_id) + " " + std::string(r->client) + " " +
                            std::string(r->server));
        break;
      case CaptureRecordType::kFrame: {
        std::string what;
        if (r->frame_kind == FrameKind::kStartup) {
          what = "startup";
        } else if (!r->data.empty()) {
          what = std::string(1, static_cast<char>(r->data[0]));
        }
        d.records.push_back(std::string(direction_name(r->direction)) + " " + std::to_string(r->session_id) + " " +
                            what);
        break;
      }
      case CaptureRecordType::kSessionClose:
        d.records.push_back("close " + std::to_string(r->session_id) + " " + std::string(r->reason));
        break;
      case CaptureRecordType::kSessionMeta: break;
    }
    last = r->ts_ns;
    decoder.on_record(*r);
  }
  decoder.finish(last);
  for (const auto& dmg : reader.damage()) d.damage.push_back(dmg.file + ": " + dmg.error.describe());
  d.stats = reader.pcap_stats();
  d.partial = decoder.partial_sessions();
  return d;
}

const Addr kClient = test::v4(10, 0, 0, 1, 40000);
const Addr kServer = test::v4(10, 0, 0, 2, 5432);

PacketBytes raw(const PacketBytes& ip) { return ip; }

const std::vector<std::string> kOneSessionRecords = {
    "open 1 10.0.0.1:40000 10.0.0.2:5432", "F 1 startup", "B 1 R", "B 1 Z", "F 1 Q", "B 1 C", "B 1 Z", "F 1 X",
    "close 1 client closed the connection"};

TEST(PcapReader, RecognisesTheMagics) {
  auto b = [](std::initializer_list<uint8_t> l) {
    std::vector<std::byte> v;
    for (uint8_t x : l) v.push_back(std::byte(x));
    return v;
  };
  for (auto m : {b({0xd4, 0xc3, 0xb2, 0xa1}), b({0xa1, 0xb2, 0xc3, 0xd4}), b({0x4d, 0x3c, 0xb2, 0xa1}),
                 b({0xa1, 0xb2, 0x3c, 0x4d}), b({0x0a, 0x0d, 0x0d, 0x0a})}) {
    EXPECT_TRUE(is_packet_capture_magic({m.data(), m.size()}));
  }
  auto pgwcap = b({'P', 'G', 'W', 'C'});
  EXPECT_FALSE(is_packet_capture_magic({pgwcap.data(), pgwcap.size()}));
  EXPECT_FALSE(is_packet_capture_magic({pgwcap.data(), 2}));
}

TEST(PcapReader, OneSessionOverEveryLinkLayer) {
  TempDir dir;
  struct Case {
    const char* name;
    uint32_t link;
    PacketBytes (*wrap)(const PacketBytes&);
  };
  const Case cases[] = {
      {"ethernet", kLinkEthernet, [](const PacketBytes& ip) { return test::ethernet(ip, false); }},
      {"vlan", kLinkEthernet,
       [](const PacketBytes& ip) {
         return test::ethernet(ip, false, {{0x88a8, 10}, {0x8100, 20}});
       }},
      {"sll", kLinkSll, [](const PacketBytes& ip) { return test::sll(ip, false); }},
      {"sll2", kLinkSll2, [](const PacketBytes& ip) { return test::sll2(ip, false); }},
      {"null", kLinkNull, [](const PacketBytes& ip) { return test::null_loopback(ip, false); }},
      {"raw", kLinkRaw, [](const PacketBytes& ip) { return ip; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TcpFlow f(kClient, kServer);
    PcapFile file(c.link);
    int64_t ts = 1'700'000'000'000'000'000;
    for (const PacketBytes& p : session_packets(f, c.wrap)) file.packet(ts += 1000, p);
    Decoded d = decode({dir.write(std::string(c.name) + ".pcap", file.bytes())});
    EXPECT_EQ(d.records, kOneSessionRecords);
    EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 1 -> SELECT 1"});
    EXPECT_TRUE(d.damage.empty()) << d.damage.front();
  }
}

TEST(PcapReader, PcapngAndIpv6AndNanosecondTimes) {
  TempDir dir;
  TcpFlow f(test::v6_loopback(40000), test::v6_loopback(5432));
  PcapngFile file(kLinkRaw);
  int64_t ts = 1'700'000'000'123'456'789;
  for (const PacketBytes& p : session_packets(f, raw)) file.packet(ts++, p);
  const std::string path = dir.write("v6.pcapng", file.bytes());
  MergedReader reader;
  ASSERT_TRUE(reader.open({path}).empty());
  const CaptureRecord* r = reader.next();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->type, CaptureRecordType::kSessionOpen);
  EXPECT_EQ(r->client, "[::1]:40000");
  EXPECT_EQ(r->server, "[::1]:5432");
  EXPECT_EQ(r->ts_ns, 1'700'000'000'123'456'789);  // the SYN's time, to the nanosecond
  Decoded d = decode({path});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 1 -> SELECT 1"});
}

TEST(PcapReader, ReorderedAndDuplicatedSegments) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  put(f.syn());
  put(f.syn_ack());
  put(f.ack());
  put(f.client(startup()));
  put(f.server(auth_ok_ready()));
  // The query in three segments: the last first, the middle one twice, then the first.
  const PacketBytes q = query("SELECT 'reordered'");
  const uint32_t at = f.client_seq();
  PacketBytes a(q.begin(), q.begin() + 3), b(q.begin() + 3, q.begin() + 10), c(q.begin() + 10, q.end());
  put(f.client_at(at + 10, c));
  put(f.client_at(at + 3, b));
  put(f.client_at(at + 3, b));
  put(f.client_at(at, a));
  put(f.client_at(at, a));  // a retransmission after the fact
  f.skip_client(static_cast<uint32_t>(q.size()));
  put(f.server(complete("SELECT 1")));
  put(f.client(terminate()));
  put(f.client_fin());
  put(f.server_fin());
  Decoded d = decode({dir.write("reorder.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 'reordered' -> SELECT 1"});
  EXPECT_TRUE(d.damage.empty());
}

TEST(PcapReader, SequenceNumbersWrapInsideASession) {
  TempDir dir;
  TcpFlow f(kClient, kServer, 0xffffffe0, 0xfffffff0);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  for (const PacketBytes& p : session_packets(f, raw, "SELECT 'a long enough text to wrap around'")) {
    file.packet(ts += 1000, p);
  }
  Decoded d = decode({dir.write("wrap.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 'a long enough text to wrap around' -> SELECT 1"});
}

TEST(PcapReader, LostPacketEndsThatSessionOnlyAndIsDamage) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  TcpFlow g(test::v4(10, 0, 0, 1, 40001), kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  for (auto* flow : {&f, &g}) {
    put(flow->syn());
    put(flow->syn_ack());
    put(flow->ack());
    put(flow->client(startup()));
    put(flow->server(auth_ok_ready()));
  }
  // f's query is lost by the capture; the server acknowledges it and answers.
  const PacketBytes lost = query("SELECT 'lost'");
  f.skip_client(static_cast<uint32_t>(lost.size()));
  put(f.server(complete("SELECT 1")));
  put(f.client(query("SELECT 'after the gap'")));
  // g goes on undisturbed.
  put(g.client(query("SELECT 'other session'")));
  put(g.server(complete("SELECT 1")));
  Decoded d = decode({dir.write("gap.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"2 alice SELECT 'other session' -> SELECT 1"});
  ASSERT_EQ(d.damage.size(), 1u);
  EXPECT_NE(d.damage[0].find("gap.pcap"), std::string::npos) << d.damage[0];
  EXPECT_NE(d.damage[0].find("packet 11: session 1"), std::string::npos) << d.damage[0];
  EXPECT_NE(d.damage[0].find("client stream at offset"), std::string::npos) << d.damage[0];
  EXPECT_NE(std::find_if(d.records.begin(), d.records.end(),
                         [](const std::string& r) { return r.starts_with("close 1 capture data missing"); }),
            d.records.end());
  EXPECT_EQ(d.stats.damaged_sessions, 1u);
}

TEST(PcapReader, CaptureThatStartsMidSession) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkEthernet);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, test::ethernet(p, false)); };
  // The tail of a large DataRow the capture did not see begin, then a real boundary.
  put(f.server(PacketBytes(100, std::byte{'x'})));
  put(f.client(query("SELECT 'mid'")));
  put(f.server(complete("SELECT 1")));
  Decoded d = decode({dir.write("mid.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 ? SELECT 'mid' -> SELECT 1"});
  EXPECT_EQ(d.partial, 1u);
  EXPECT_EQ(d.stats.partial_sessions, 1u);
  EXPECT_TRUE(d.damage.empty());
}

TEST(PcapReader, TruncatedLastPacketIsDamageWithItsOffset) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  for (const PacketBytes& p : session_packets(f, raw)) file.packet(ts += 1000, p);
  const size_t whole = file.bytes().size();
  file.packet(ts + 1000, f.client(query("SELECT 'cut'")));
  file.bytes().resize(file.bytes().size() - 5);
  Decoded d = decode({dir.write("cut.pcap", file.bytes())});
  EXPECT_EQ(d.records, kOneSessionRecords);  // everything before it
  ASSERT_EQ(d.damage.size(), 1u);
  EXPECT_NE(d.damage[0].find("at offset " + std::to_string(whole)), std::string::npos) << d.damage[0];
  EXPECT_NE(d.damage[0].find("truncated"), std::string::npos) << d.damage[0];
}

TEST(PcapReader, SnaplenCutPacketDamagesItsSession) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw, false, 96);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p, size_t caplen = SIZE_MAX) { file.packet(ts += 1000, p, caplen); };
  put(f.syn());
  put(f.syn_ack());
  put(f.ack());
  put(f.client(startup()));
  put(f.server(auth_ok_ready()));
  put(f.client(query("SELECT 1")));
  put(f.server(complete("SELECT 1")));
  put(f.client(query("SELECT '" + std::string(200, 'z') + "'")), 96);
  Decoded d = decode({dir.write("snap.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 1 -> SELECT 1"});
  ASSERT_EQ(d.damage.size(), 1u);
  EXPECT_NE(d.damage[0].find("snapshot length"), std::string::npos) << d.damage[0];
}

TEST(PcapReader, NonPostgresFlowOnThePortAndPostgresOnAnotherPort) {
  TempDir dir;
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  TcpFlow http(kClient, kServer);
  put(http.syn());
  put(http.syn_ack());
  PacketBytes get;
  for (char c : std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) get.push_back(std::byte(c));
  put(http.client(get));
  put(http.server(get));
  TcpFlow other(test::v4(10, 0, 0, 1, 40002), test::v4(10, 0, 0, 3, 6543));
  for (const PacketBytes& p : session_packets(other, raw)) put(p);
  Decoded d = decode({dir.write("mixed.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 alice SELECT 1 -> SELECT 1"});
  ASSERT_FALSE(d.records.empty());
  EXPECT_EQ(d.records[0], "open 1 10.0.0.1:40002 10.0.0.3:6543");
  EXPECT_EQ(d.stats.not_postgres, 1u);
  EXPECT_TRUE(d.damage.empty());
  // With --port 6543 only, the HTTP flow is not even looked at as PostgreSQL.
  PcapOptions opts;
  opts.ports = {6543};
  Decoded d2 = decode({dir.write("mixed2.pcap", file.bytes())}, opts);
  EXPECT_EQ(d2.stats.not_postgres, 0u);
  EXPECT_EQ(d2.statements, d.statements);
}

TEST(PcapReader, EncryptedSessionIsReportedAndSkipped) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  put(f.syn());
  put(f.syn_ack());
  put(f.client(bytes_of(W().i32(8).i32(80877103))));  // SSLRequest
  put(f.server(PacketBytes{std::byte{'S'}}));
  put(f.client(PacketBytes{std::byte{0x16}, std::byte{0x03}, std::byte{0x01}, std::byte{0x00}, std::byte{0x05}}));
  Decoded d = decode({dir.write("tls.pcap", file.bytes())});
  ASSERT_EQ(d.records.size(), 4u);
  EXPECT_EQ(d.records[1], "F 1 startup");
  EXPECT_TRUE(d.records[3].starts_with("close 1 encrypted: the server accepted the client's SSLRequest"))
      << d.records[3];
  EXPECT_EQ(d.stats.encrypted_sessions, 1u);
  EXPECT_TRUE(d.statements.empty());
  EXPECT_TRUE(d.damage.empty());
}

TEST(PcapReader, MergedWithAnotherPcapByTime) {
  TempDir dir;
  PcapFile a(kLinkRaw), b(kLinkRaw);
  TcpFlow f(kClient, kServer), g(test::v4(10, 0, 0, 9, 40000), kServer);
  int64_t ts = 1'000'000'000;
  for (const PacketBytes& p : session_packets(f, raw, "SELECT 'first'")) a.packet(ts += 1000, p);
  ts = 1'000'000'500;
  for (const PacketBytes& p : session_packets(g, raw, "SELECT 'second'")) b.packet(ts += 1000, p);
  Decoded d = decode({dir.write("a.pcap", a.bytes()), dir.write("b.pcap", b.bytes())});
  EXPECT_EQ(d.statements,
            (std::vector<std::string>{"1 alice SELECT 'first' -> SELECT 1", "2 alice SELECT 'second' -> SELECT 1"}));
}

TEST(PcapReader, OutOfOrderBufferingIsBoundedAndCounted) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  put(f.syn());
  put(f.syn_ack());
  put(f.client(startup()));
  put(f.server(auth_ok_ready()));
  // A hole of one byte, then 40 segments of 100 bytes after it: 4000 bytes
  // waiting, over a limit of 1000.
  const uint32_t at = f.client_seq();
  for (uint32_t i = 0; i < 40; ++i) put(f.client_at(at + 1 + i * 100, PacketBytes(100, std::byte{'Q'})));
  PcapOptions opts;
  opts.max_buffered_per_direction = 1000;
  Decoded d = decode({dir.write("flood.pcap", file.bytes())}, opts);
  EXPECT_EQ(d.stats.buffer_limit_hits, 1u);
  EXPECT_LE(d.stats.peak_buffered, 1000u);
  ASSERT_EQ(d.damage.size(), 1u);
  EXPECT_NE(d.damage[0].find("out of order (the buffering limit)"), std::string::npos) << d.damage[0];
}

TEST(PcapReader, LossBeforeAMidStreamJoinIsNotDamage) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  put(f.client(PacketBytes(50, std::byte{'x'})));  // the middle of something: no boundary
  f.skip_client(30);                               // lost, and acknowledged by the server
  put(f.server(PacketBytes(20, std::byte{'y'})));
  put(f.client(query("SELECT 'after'")));
  put(f.server(complete("SELECT 1")));
  Decoded d = decode({dir.write("midloss.pcap", file.bytes())});
  EXPECT_EQ(d.statements, std::vector<std::string>{"1 ? SELECT 'after' -> SELECT 1"});
  EXPECT_TRUE(d.damage.empty()) << d.damage.front();
}

TEST(PcapReader, LostStartupPacketIsReportedWithoutASession) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  PcapFile file(kLinkRaw);
  int64_t ts = 1'000'000'000;
  auto put = [&](const PacketBytes& p) { file.packet(ts += 1000, p); };
  put(f.syn());
  put(f.syn_ack());
  f.skip_client(static_cast<uint32_t>(startup().size()));
  put(f.server(auth_ok_ready()));
  Decoded d = decode({dir.write("nostartup.pcap", file.bytes())});
  EXPECT_TRUE(d.records.empty());
  ASSERT_EQ(d.damage.size(), 1u);
  EXPECT_NE(d.damage[0].find("packet 3: connection 10.0.0.1:40000 -> 10.0.0.2:5432: client stream at offset 0"),
            std::string::npos)
      << d.damage[0];
}

// Damaged files of every kind: bytes of a valid capture flipped, cut or
// repeated at random (a fixed seed): never a crash or a hang, and what can
// be read is read.
TEST(PcapReader, MangledFilesNeverCrash) {
  TempDir dir;
  TcpFlow f(kClient, kServer);
  TcpFlow g(test::v6_loopback(40001), test::v6_loopback(5432));
  PcapFile file(kLinkEthernet);
  int64_t ts = 1'000'000'000;
  const std::vector<PacketBytes> a =
      session_packets(f, [](const PacketBytes& ip) { return test::ethernet(ip, false); });
  const std::vector<PacketBytes> b = session_packets(g, [](const PacketBytes& ip) { return test::ethernet(ip, true); });
  for (size_t i = 0; i < a.size(); ++i) {
    file.packet(ts += 1000, a[i]);
    file.packet(ts += 1000, b[i]);
  }
  const PacketBytes good = file.bytes();
  uint32_t seed = 12345;
  auto rnd = [&seed](uint32_t n) {
    seed = seed * 1103515245 + 12345;
    return (seed >> 8) % n;
  };
  for (int round = 0; round < 300; ++round) {
    PacketBytes bad = good;
    const int edits = 1 + static_cast<int>(rnd(8));
    for (int e = 0; e < edits; ++e) {
      const size_t at = 24 + rnd(static_cast<uint32_t>(bad.size() - 24));
      switch (rnd(3)) {
        case 0: bad[at] = static_cast<std::byte>(rnd(256)); break;
        case 1: bad.resize(at); break;
        default: bad.insert(bad.begin() + static_cast<std::ptrdiff_t>(at), bad.begin() + 24, bad.begin() + 60); break;
      }
      if (bad.size() <= 24) break;
    }
    Decoded d = decode({dir.write("mangled.pcap", bad)});
    EXPECT_LE(d.statements.size(), 2u);
  }
}

}  // namespace
}  // namespace pgwire
