#include "pgwire/session_monitor.hpp"

#include <algorithm>
#include <vector>

namespace pgwire {

SessionMonitor::SessionMonitor(TrackerOptions tracker_opts, ConnectionTracker::Sink events, FramerOptions framer_opts)
    : framer_(framer_opts), tracker_(tracker_opts, std::move(events)) {}

Status SessionMonitor::feed_to(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink* frames) {
  for (;;) {
    FrameResult r = framer_.next(dir, bytes);
    if (r.failed()) return r.error();
    if (r.needs_more()) return {};
    tracker_.on_frame(dir, r.frame(), ts_ns);
    if (frames != nullptr) (*frames)(dir, r.frame(), ts_ns);
    // No frame is ever made of no bytes: asking again would only return
    // need-more. A capture record holds one frame, so this spares a framer
    // call per record.
    if (bytes.empty()) return {};
  }
}

void SessionMonitor::local_answer(char answer, int64_t ts_ns) {
  // Fed through the server direction's framer as if the server had said it,
  // so both directions leave the startup phase exactly as after a real answer.
  const std::byte byte{static_cast<uint8_t>(answer)};
  (void)feed(Direction::kBackend, Bytes{&byte, 1}, ts_ns);
}

struct CaptureDecoder::Session {
  std::unique_ptr<SessionMonitor> monitor;  // made at the first frame, once metadata is known
  SessionInfo info;                         // until the monitor exists
  bool frontend_only = false;
  bool failed[2] = {false, false};
  SessionInfo& current() { return monitor ? monitor->tracker().session() : info; }
};

CaptureDecoder::CaptureDecoder(TrackerOptions tracker_opts, Callbacks callbacks)
    : tracker_opts_(tracker_opts), cb_(std::move(callbacks)) {}
CaptureDecoder::~CaptureDecoder() = default;

size_t CaptureDecoder::open_sessions() const { return sessions_.size(); }

CaptureDecoder::Session& CaptureDecoder::session_slow(uint64_t id) {
  Recent& r = recent_[id % recent_.size()];
  auto& s = sessions_[id];
  if (!s) {
    s = std::make_unique<Session>();
    s->info.session_id = id;
  }
  r = {id, s.get()};
  return *s;
}

void CaptureDecoder::on_record(const CaptureRecord& rec) {
  switch (rec.type) {
    case CaptureRecordType::kSessionOpen: {
      Session& s = session(rec.session_id);
      s.current().client = std::string(rec.client);
      if (cb_.session_open) cb_.session_open(s.current(), rec.ts_ns, rec.server);
      return;
    }
    case CaptureRecordType::kSessionMeta: {
      Session& s = session(rec.session_id);
      if (rec.key == kMetaCaptureBackend) s.frontend_only = as_string_view(rec.value) == "0";
      return;
    }
    case CaptureRecordType::kSessionClose: {
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end()) return;
      Session& s = *it->second;
      if (s.monitor) s.monitor->close(rec.ts_ns);
      if (cb_.session_close) cb_.session_close(s.current(), rec.ts_ns, rec.reason);
      if (Recent& r = recent_[rec.session_id % recent_.size()]; r.session == &s) r = {};
      sessions_.erase(it);
      return;
    }
    case CaptureRecordType::kFrame: break;
  }
  Session& s = session(rec.session_id);
  if (!s.monitor) {
    TrackerOptions opts = tracker_opts_;
    opts.frontend_only = opts.frontend_only || s.frontend_only;
    s.monitor = std::make_unique<SessionMonitor>(opts, cb_.event);
    s.monitor->tracker().session() = std::move(s.info);
  }
  const int d = static_cast<int>(rec.direction);
  if (s.failed[d]) return;
  if (rec.redacted()) {
    // Only the header was kept: show it, but the framer must not see it.
    if (cb_.frame && rec.data.size() >= 5) {
      Frame f;
      f.kind = FrameKind::kTyped;
      f.type = std::to_integer<uint8_t>(rec.data[0]);
      f.length = load_be32(rec.data.data() + 1);
      cb_.frame(s.current(), rec.direction, f, rec.ts_ns, s.monitor->tracker().password_kind(), true);
    }
    return;
  }
  Status st;
  if (cb_.frame) {
    const SessionMonitor::FrameSink sink = [&](Direction dir, const Frame& f, int64_t ts) {
      cb_.frame(s.current(), dir, f, ts, s.monitor->tracker().password_kind(), false);
    };
    st = s.monitor->feed(rec.direction, rec.data, rec.ts_ns, sink);
  } else {
    st = s.monitor->feed(rec.direction, rec.data, rec.ts_ns);
  }
  if (!st) {
    s.failed[d] = true;
    if (cb_.error) cb_.error(s.current(), st.error());
  }
}

void CaptureDecoder::finish(int64_t ts_ns) {
  // In session order, so the output does not depend on hashing.
  std::vector<uint64_t> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    Session& s = *sessions_[id];
    if (s.monitor) s.monitor->close(ts_ns);
    if (cb_.session_close) cb_.session_close(s.current(), ts_ns, "capture ended");
  }
  sessions_.clear();
  recent_.fill({});
}

}  // namespace pgwire
