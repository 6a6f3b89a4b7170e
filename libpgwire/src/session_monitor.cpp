#include "pgwire/session_monitor.hpp"

#include <algorithm>
#include <vector>

namespace pgwire {

StartupRequest startup_request(const Frame& f) {
  if (f.kind != FrameKind::kStartup || !f.first) return StartupRequest::kNone;
  const uint32_t code = f.startup_code();
  if (code == kSslRequestCode || code == kGssEncRequestCode) return StartupRequest::kEncryption;
  if (code == kCancelRequestCode) return StartupRequest::kCancel;
  return protocol_major(code) == 3 ? StartupRequest::kStartup : StartupRequest::kNone;
}

SessionMonitor::SessionMonitor(TrackerOptions tracker_opts, ConnectionTracker::Sink events, FramerOptions framer_opts)
    : framer_(framer_opts), tracker_(tracker_opts, std::move(events)) {}

Status SessionMonitor::feed_to(Direction dir, Bytes bytes, int64_t ts_ns, const FrameSink* frames) {
  for (;;) {
    FrameResult r = next(dir, bytes, ts_ns);
    if (r.failed()) return r.error();
    if (r.needs_more()) return {};
    if (frames != nullptr) (*frames)(dir, r.frame(), ts_ns);
    // No frame is ever made of no bytes: asking again would only return
    // need-more. A capture record holds one frame, so this spares a framer
    // call per record.
    if (bytes.empty()) return {};
  }
}

FrameResult SessionMonitor::answer_locally(char answer, int64_t ts_ns) {
  if (!awaiting_answer()) {
    return FrameResult::failure(
        Error{Errc::kUnexpected, framer_.backend().offset(), "no encryption request is waiting for an answer"});
  }
  const std::byte byte{static_cast<uint8_t>(answer)};
  Bytes in{&byte, 1};
  FrameResult r = next(Direction::kBackend, in, ts_ns);
  // The frame's view would point at `byte`, gone when we return: the answer
  // is its type, and it has no body.
  if (r.has_frame()) {
    Frame f = r.frame();
    f.body = {};
    return FrameResult::of(f);
  }
  return r;
}

bool SessionMonitor::at_backend_boundary() const {
  const Framer& be = framer_.backend();
  return !be.failed() && !be.encrypted() && !be.mid_frame() && be.offset() == backend_boundary_;
}

void SessionMonitor::stop_tracking(int64_t ts_ns) {
  if (!tracking_) return;
  tracker_.on_close(ts_ns);
  tracking_ = false;
}

// ---------------------------------------------------------------------------

struct CaptureDecoder::DecodedSession {
  std::unique_ptr<SessionMonitor> monitor;  // made at the first frame, once metadata is known
  SessionInfo info;                         // until the monitor exists
  bool frontend_only = false;
  bool failed[2] = {false, false};
  // A frame of that direction began in the records: until then, a record
  // that cannot start the stream shows the session is partial.
  bool started[2] = {false, false};
  bool partial = false;
  SessionInfo& current() { return monitor ? monitor->tracker().session() : info; }
};

CaptureDecoder::CaptureDecoder(TrackerOptions tracker_opts, Callbacks callbacks)
    : tracker_opts_(tracker_opts), cb_(std::move(callbacks)) {}
CaptureDecoder::~CaptureDecoder() = default;

size_t CaptureDecoder::open_sessions() const { return sessions_.size(); }

CaptureDecoder::DecodedSession& CaptureDecoder::session_slow(uint64_t id) {
  Recent& r = recent_[id % recent_.size()];
  auto& s = sessions_[id];
  if (!s) {
    s = std::make_unique<DecodedSession>();
    s->info.session_id = id;
  }
  r = {id, s.get()};
  return *s;
}

void CaptureDecoder::on_record(const CaptureRecord& rec) {
  switch (rec.type) {
    case CaptureRecordType::kSessionOpen: {
      DecodedSession& s = session(rec.session_id);
      s.current().client = std::string(rec.client);
      if (cb_.session_open) cb_.session_open(s.current(), rec.ts_ns, rec.server);
      return;
    }
    case CaptureRecordType::kSessionMeta: {
      DecodedSession& s = session(rec.session_id);
      if (rec.key == kMetaCaptureBackend) {
        s.frontend_only = as_string_view(rec.value) == "0";
      } else if (rec.key == kMetaClientTls) {
        // The frames that follow are the decrypted stream.
        s.current().client_tls = std::string(as_string_view(rec.value));
        if (s.monitor) s.monitor->tls_terminated();
      } else if (rec.key == kMetaServerTls) {
        s.current().server_tls = std::string(as_string_view(rec.value));
      }
      if (cb_.session_meta) cb_.session_meta(s.current(), rec.ts_ns, rec.key, rec.value);
      return;
    }
    case CaptureRecordType::kSessionClose: {
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end()) return;
      DecodedSession& s = *it->second;
      if (s.monitor) s.monitor->close(rec.ts_ns);
      if (cb_.session_close) cb_.session_close(s.current(), rec.ts_ns, rec.reason);
      if (Recent& r = recent_[rec.session_id % recent_.size()]; r.session == &s) r = {};
      sessions_.erase(it);
      return;
    }
    case CaptureRecordType::kFrame: on_frame_record(session(rec.session_id), rec); return;
  }
}

void CaptureDecoder::on_frame_record(DecodedSession& s, const CaptureRecord& rec) {
  if (!s.monitor) {
    TrackerOptions opts = tracker_opts_;
    opts.frontend_only = opts.frontend_only || s.frontend_only;
    s.monitor = std::make_unique<SessionMonitor>(opts, cb_.event);
    if (cb_.ready) s.monitor->tracker().set_ready_sink(cb_.ready);
    s.monitor->tracker().session() = std::move(s.info);
  }
  SessionMonitor& m = *s.monitor;
  const int d = static_cast<int>(rec.direction);
  if (s.failed[d]) return;
  if (!s.started[d] && !start_direction(s, rec)) return;
  if (rec.direction == Direction::kFrontend && m.awaiting_answer()) {
    // The client went on after its encryption request, and the answer is not
    // in the capture (pgproxy records its own 'N' since commit 221c86d; older captures lack it):
    // only an 'N' lets a client go on in plaintext; after an 'S' or 'G' the
    // framer sees encrypted bytes either way.
    (void)m.answer_locally(kEncryptionRefused, rec.ts_ns);
    ++inferred_answers_;
  }
  if (rec.redacted()) {
    // Only the header was kept: show it, but the framer must not see it.
    if (cb_.frame && rec.data.size() >= 5) {
      Frame f;
      f.kind = FrameKind::kTyped;
      f.type = std::to_integer<uint8_t>(rec.data[0]);
      f.length = load_be32(rec.data.data() + 1);
      cb_.frame(s.current(), rec.direction, f, rec.ts_ns, m.tracker().password_kind(), true);
    }
    return;
  }
  Bytes in = rec.data;
  for (;;) {
    FrameResult r = m.next(rec.direction, in, rec.ts_ns);
    if (r.failed()) {
      s.failed[d] = true;
      if (cb_.error) cb_.error(s.current(), r.error());
      return;
    }
    if (r.needs_more()) return;
    if (cb_.frame) cb_.frame(s.current(), rec.direction, r.frame(), rec.ts_ns, m.tracker().password_kind(), false);
    // A record holds one frame: asking again would only say need-more.
    if (in.empty()) return;
  }
}

// The first record of a direction: where its stream starts. A session's
// frontend starts with a startup packet (or a direct-TLS ClientHello);
// anything else means the records began after the session did, and the
// framers join the stream at the first record that starts a frame, in the
// kind it says, rather than take its bytes for a startup packet. Returns
// false for a record that cannot be framed (skipped).
bool CaptureDecoder::start_direction(DecodedSession& s, const CaptureRecord& rec) {
  SessionMonitor& m = *s.monitor;
  if (!rec.first()) {
    mark_partial(s, rec.ts_ns);  // the rest of a frame that began before the records
    return false;
  }
  if (rec.direction == Direction::kFrontend) {
    const bool tls_hello = !rec.data.empty() && std::to_integer<uint8_t>(rec.data[0]) == kTlsHandshakeByte;
    if (rec.frame_kind == FrameKind::kTyped || (rec.frame_kind == FrameKind::kOpaque && !tls_hello)) {
      mark_partial(s, rec.ts_ns);
      m.join_mid_stream(Direction::kFrontend, rec.frame_kind);
    }
  } else if (rec.frame_kind == FrameKind::kAnswer && !m.awaiting_answer()) {
    return false;  // the answer to an encryption request that is not in the records
  } else if (rec.frame_kind == FrameKind::kOpaque) {
    m.join_mid_stream(Direction::kBackend, FrameKind::kOpaque);
  }
  s.started[static_cast<int>(rec.direction)] = true;
  return true;
}

void CaptureDecoder::mark_partial(DecodedSession& s, int64_t ts_ns) {
  if (s.partial) return;
  s.partial = true;
  s.current().partial = true;
  ++partial_sessions_;
  if (cb_.partial) cb_.partial(s.current(), ts_ns);
}

void CaptureDecoder::finish(int64_t ts_ns) {
  // In session order, so the output does not depend on hashing.
  std::vector<uint64_t> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    DecodedSession& s = *sessions_[id];
    if (s.monitor) s.monitor->close(ts_ns);
    if (cb_.session_close) cb_.session_close(s.current(), ts_ns, kCaptureEndedReason);
  }
  sessions_.clear();
  recent_.fill({});
}

}  // namespace pgwire
