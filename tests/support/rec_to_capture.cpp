#include "rec_to_capture.hpp"

#include <map>

#include "pgwire/framer.hpp"
#include "pgwire/session_monitor.hpp"
#include "recording.hpp"

namespace pgwire::test {

bool recording_to_capture(const std::string& rec_path, const std::string& capture_path, bool with_backend,
                          std::string* error, int64_t base_ns) {
  Recording rec;
  try {
    rec = load_recording(rec_path);
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  CaptureWriterOptions opts;
  opts.created_ns = base_ns;
  opts.creator = "pgwire-record";
  auto w = CaptureWriter::create(capture_path, opts);
  if (!w) {
    *error = w.error().describe();
    return false;
  }
  CaptureWriter& writer = **w;
  std::map<int, ConnectionFramer> framers;
  int64_t last = base_ns;
  for (const Chunk& c : rec.chunks) {
    const auto session = static_cast<uint64_t>(c.conn) + 1;
    const int64_t ts = base_ns + static_cast<int64_t>(c.usec) * 1000;
    last = ts;
    if (!framers.count(c.conn)) {
      (void)writer.session_open(session, ts, "127.0.0.1:" + std::to_string(40000 + c.conn), "127.0.0.1:5432");
      std::string flag = with_backend ? "1" : "0";
      (void)writer.session_meta(session, ts, kMetaCaptureBackend, as_bytes(flag));
    }
    ConnectionFramer& framer = framers[c.conn];
    const Direction dir = c.dir == 'F' ? Direction::kFrontend : Direction::kBackend;
    Bytes in{c.bytes.data(), c.bytes.size()};
    for (;;) {
      FrameResult r = framer.next(dir, in);
      if (r.failed()) {
        *error = r.error().describe();
        return false;
      }
      if (r.needs_more()) break;
      const Frame& f = r.frame();
      if (dir == Direction::kBackend && f.kind == FrameKind::kTyped && f.type == 'K' && f.whole()) {
        (void)writer.session_meta(session, ts, kMetaBackendKeyData, f.body);
      }
      if (dir == Direction::kFrontend || with_backend) {
        if (Status s = writer.frame(session, ts, dir, f); !s) {
          *error = s.error().describe();
          return false;
        }
      }
    }
  }
  for (const auto& [conn, framer] : framers) {
    (void)writer.session_close(static_cast<uint64_t>(conn) + 1, last, "client closed");
  }
  if (Status s = writer.close(); !s) {
    *error = s.error().describe();
    return false;
  }
  return true;
}

}  // namespace pgwire::test
