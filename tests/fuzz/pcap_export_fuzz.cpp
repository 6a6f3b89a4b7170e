// Fuzz target for PcapExport and PcapWriter: the input is a whole capture
// file, read as far as it is valid and written as pcap into a memfd; a
// session filter (by the input's first byte) exercises the held startup
// frames too. Besides "no crash, no leak, no UB", it checks the output: a
// pcap header, then whole packets, each within the snap length and the
// largest segment, with IPv4 header and TCP checksums that verify (the
// one's complement sum over them, pseudo-header included, is 0xffff).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "pgwire/capture.hpp"
#include "pgwire/pcap_writer.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

int memfd_with(const uint8_t* data, size_t size) {
  int fd = memfd_create("pcap-fuzz-in", MFD_CLOEXEC);
  check(fd >= 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    check(n > 0);
    done += static_cast<size_t>(n);
  }
  check(::lseek(fd, 0, SEEK_SET) == 0);
  return fd;
}

uint32_t le32(const std::byte* p) {
  return std::to_integer<uint32_t>(p[0]) | (std::to_integer<uint32_t>(p[1]) << 8) |
         (std::to_integer<uint32_t>(p[2]) << 16) | (std::to_integer<uint32_t>(p[3]) << 24);
}

void check_pcap(const std::vector<std::byte>& f) {
  using pgwire::Bytes;
  check(f.size() >= 24 && le32(f.data()) == 0xa1b23c4d && le32(f.data() + 20) == 1);
  size_t pos = 24;
  while (pos < f.size()) {
    check(f.size() - pos >= 16);
    const std::byte* r = f.data() + pos;
    const uint32_t len = le32(r + 8);
    check(len == le32(r + 12) && len <= 262144 && le32(r + 4) < 1000000000);
    check(f.size() - pos - 16 >= len && len >= 14 + 20 + 20);
    const std::byte* ip = r + 16 + 14;
    const bool v6 = pgwire::load_be16(r + 16 + 12) == 0x86dd;
    const size_t ip_len = v6 ? 40 : 20;
    const size_t tcp_len = len - 14 - ip_len;
    const std::byte* tcp = ip + ip_len;
    const size_t header = (std::to_integer<size_t>(tcp[12]) >> 4) * 4;
    check(header >= 20 && header <= tcp_len && tcp_len - header <= pgwire::kPcapMaxSegment);
    uint32_t pseudo;
    if (v6) {
      check(pgwire::load_be16(ip + 4) == tcp_len);
      pseudo =
          static_cast<uint16_t>(~pgwire::internet_checksum(Bytes{ip + 8, 32})) + static_cast<uint32_t>(tcp_len) + 6;
    } else {
      check(pgwire::load_be16(ip + 2) == 20 + tcp_len);
      check(pgwire::internet_checksum(Bytes{ip, 20}) == 0);
      pseudo =
          static_cast<uint16_t>(~pgwire::internet_checksum(Bytes{ip + 12, 8})) + 6 + static_cast<uint32_t>(tcp_len);
    }
    check(pgwire::internet_checksum(Bytes{tcp, tcp_len}, pseudo) == 0);
    pos += 16 + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgwire;
  auto opened = CaptureReader::from_fd(memfd_with(data, size), true, "fuzz");
  if (!opened) return 0;
  const int out = memfd_create("pcap-fuzz-out", MFD_CLOEXEC);
  check(out >= 0);
  {
    auto writer = PcapWriter::from_fd(out, false, PcapWriterOptions{});
    check(writer.ok());
    PcapExportOptions opts;
    if (size > 0 && (data[0] & 1) != 0) {
      opts.select = [](const SessionInfo& s) { return s.user.empty() || s.session_id % 2 == 1; };
    }
    PcapExport ex(**writer, opts);
    CaptureRecord rec;
    for (;;) {
      Result<bool> r = (*opened)->next(rec);
      if (!r || !*r) break;
      check(ex.on_record(rec).ok());
    }
    check(ex.finish().ok());
    check((*writer)->finish().ok());
  }
  const off_t n = ::lseek(out, 0, SEEK_END);
  check(n >= 24);
  std::vector<std::byte> file(static_cast<size_t>(n));
  check(::pread(out, file.data(), file.size(), 0) == n);
  ::close(out);
  check_pcap(file);
  return 0;
}
