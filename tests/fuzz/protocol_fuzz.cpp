// Fuzz target: framer + decoders + encoders + tracker, both directions.
//
// The input is a sequence of chunks. Each chunk starts with one control byte:
// bit 0 is the direction (0 frontend, 1 backend), bits 1-7 the chunk length
// minus one; the chunk's bytes follow. So the fuzzer controls both the bytes
// and how they are split and interleaved.
//
// Oracles: nothing crashes or leaks (sanitizers), and every whole frame that
// decodes re-encodes to exactly the same bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/statement_log.hpp"
#include "pgwire/tracker.hpp"

namespace {

using namespace pgwire;

void check_round_trip(const Frame& f, const Buffer& encoded) {
  Buffer raw;
  f.append_header(raw);
  raw.append(f.body);
  if (raw.size() != encoded.size() || std::memcmp(raw.view().data(), encoded.view().data(), raw.size()) != 0) {
    std::fprintf(stderr, "round trip mismatch for type 0x%02x: %s vs %s\n", f.type, to_hex(raw.view()).c_str(),
                 to_hex(encoded.view()).c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FramerOptions fopts;
  fopts.max_buffered = 16384;  // exercise the piecewise path with small inputs
  ConnectionFramer framer(fopts);
  TrackerOptions topts;
  topts.max_sql_bytes = 64;
  std::string log;
  ConnectionTracker tracker(topts, [&](const StatementEvent& ev, const SessionInfo& s) {
    log.clear();
    format_statement(LogFormat::kText, ev, s, log);
    format_statement(LogFormat::kJson, ev, s, log);
  });
  size_t i = 0;
  int64_t ts = 0;
  while (i < size) {
    uint8_t control = data[i++];
    auto dir = (control & 1) ? Direction::kBackend : Direction::kFrontend;
    size_t len = std::min<size_t>((control >> 1) + 1, size - i);
    Bytes in{reinterpret_cast<const std::byte*>(data + i), len};
    i += len;
    for (;;) {
      FrameResult r = framer.next(dir, in);
      if (!r.has_frame()) break;
      const Frame& f = r.frame();
      if (f.whole() && f.kind != FrameKind::kOpaque) {
        Buffer out;
        if (dir == Direction::kFrontend) {
          auto m = decode_frontend(f, tracker.password_kind());
          if (m.ok()) {
            encode(*m, out);
            check_round_trip(f, out);
          }
        } else {
          auto m = decode_backend(f);
          if (m.ok()) {
            encode(*m, out);
            check_round_trip(f, out);
          }
        }
      }
      tracker.on_frame(dir, f, ++ts);
    }
  }
  tracker.on_close(++ts);
  return 0;
}
