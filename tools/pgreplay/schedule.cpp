#include "schedule.hpp"

#include "pgwire/messages.hpp"
#include "pgwire/protocol.hpp"
#include "pgwire/session_monitor.hpp"

namespace pgreplay {

using pgwire::Bytes;
using pgwire::CaptureRecord;
using pgwire::Direction;
using pgwire::FrameKind;

namespace {

bool is_copy_frame(uint8_t t) { return t == 'd' || t == 'c' || t == 'f'; }
bool is_sync_like(uint8_t t) { return t == 'Q' || t == 'S' || t == 'F'; }

}  // namespace

std::string SessionModel::param(std::string_view name) const {
  for (const auto& [k, v] : params_)
    if (k == name) return v;
  return {};
}

void SessionModel::on_meta(std::string_view key, Bytes value) {
  if (key == pgwire::kMetaCaptureBackend) {
    std::string_view v = pgwire::as_string_view(value);
    meta_backend_ = v == "1";
    meta_frontend_ = v == "0";
  } else if (key == pgwire::kMetaBackendKeyData) {
    auto k = pgwire::be::BackendKeyData::decode(value, 0);
    if (k) {
      has_backend_key_ = true;
      backend_pid_ = k->process_id;
    }
  }
}

void SessionModel::on_close(int64_t ts_ns) {
  if (closed_) return;
  closed_ = true;
  close_ts_ = ts_ns;
  // What the client had sent last is answered before it hung up (or never:
  // then the replay closes as soon as the others are answered, as it did).
  if (mode_ == Mode::kFrontendOnly) flush_pending(0);
}

void SessionModel::forget_milestones_before(uint64_t index) {
  while (ms_base_ < index && !ms_.empty()) {
    ms_.pop_front();
    ++ms_base_;
  }
}

void SessionModel::flush_pending(uint64_t keep) {
  while (pending_z_ > keep) {
    push('Z');
    --pending_z_;
  }
}

void SessionModel::on_backend(const CaptureRecord& rec) {
  seen_backend_ = true;
  if (rec.frame_kind != FrameKind::kTyped) return;
  if (rec.first()) {
    if (rec.data.empty()) return;
    cur_backend_type_ = std::to_integer<uint8_t>(rec.data[0]);
    const uint8_t t = cur_backend_type_;
    if (t == 'K' && rec.last() && rec.data.size() >= 5) {
      auto k = pgwire::be::BackendKeyData::decode(rec.data.subspan(5), 0);
      if (k) {
        has_backend_key_ = true;
        backend_pid_ = k->process_id;
      }
    } else if (t == 'E' && !login_done_) {
      login_error_ = true;
    } else if (t == 'Z') {
      if (!login_done_) {
        login_done_ = true;
      } else {
        push('Z');
      }
    } else if (is_milestone(t) && login_done_) {
      push(static_cast<char>(t));
    }
  }
}

void SessionModel::on_startup_packet(const CaptureRecord& rec) {
  if (!rec.first() || rec.data.size() < 8) return;
  const uint32_t code = pgwire::load_be32(rec.data.data() + 4);
  Bytes body = rec.data.subspan(8);
  if (code == pgwire::kCancelRequestCode) {
    // Body after the length: code, pid, key.
    auto c = pgwire::fe::CancelRequest::decode(rec.data.subspan(4), 0);
    kind_ = Kind::kCancel;
    cancel_pid_ = c ? c->process_id : (body.size() >= 4 ? static_cast<int32_t>(pgwire::load_be32(body.data())) : 0);
    startup_ts_ = rec.ts_ns;
    return;
  }
  if (code == pgwire::kSslRequestCode || code == pgwire::kGssEncRequestCode) return;
  if (pgwire::protocol_major(code) != 3 || !rec.last()) return;
  auto m = pgwire::fe::StartupMessage::decode(rec.data.subspan(4), 0);
  if (!m) return;
  kind_ = Kind::kStartup;
  protocol_ = m->protocol;
  params_.clear();
  for (const auto& [k, v] : m->params) params_.emplace_back(std::string(k), std::string(v));
  startup_ts_ = rec.ts_ns;
}

std::optional<PlannedFrame> SessionModel::on_frame(const CaptureRecord& rec) {
  if (rec.direction == Direction::kBackend) {
    on_backend(rec);
    return std::nullopt;
  }
  switch (rec.frame_kind) {
    case FrameKind::kStartup: on_startup_packet(rec); return std::nullopt;
    case FrameKind::kOpaque:
      if (kind_ == Kind::kStartup || kind_ == Kind::kUnknown) kind_ = Kind::kEncrypted;
      return std::nullopt;
    case FrameKind::kAnswer: return std::nullopt;
    case FrameKind::kTyped: break;
  }
  if (kind_ != Kind::kStartup) return std::nullopt;
  if (rec.first()) {
    cur_type_ = rec.data.empty() ? 0 : std::to_integer<uint8_t>(rec.data[0]);
    // Authentication is pgreplay's own business ('p' frames are redacted anyway).
    cur_skip_ = cur_type_ == 'p' || rec.redacted() || rec.data.empty();
    if (cur_skip_) return std::nullopt;
    if (mode_ == Mode::kUndecided) {
      if (meta_backend_) {
        mode_ = Mode::kBackend;
      } else if (meta_frontend_) {
        mode_ = Mode::kFrontendOnly;
      } else {
        // The login's backend frames precede the first query in a capture
        // that has them.
        mode_ = seen_backend_ ? Mode::kBackend : Mode::kFrontendOnly;
      }
    }
    cur_need_ = mode_ == Mode::kBackend ? need_exact() : need_inferred(cur_type_, rec.ts_ns);
  } else if (cur_skip_) {
    return std::nullopt;
  }
  ++frames_planned_;
  bytes_planned_ += rec.data.size();
  last_planned_ts_ = rec.ts_ns;
  return PlannedFrame{rec.ts_ns, cur_need_, cur_type_, rec.first(), rec.last(), rec.data};
}

uint64_t SessionModel::need_inferred(uint8_t type, int64_t ts) {
  if (is_copy_frame(type)) {
    if (!in_copy_) {
      in_copy_ = true;
      if (pending_z_ > 0) {
        flush_pending(1);
        // A Query's 'Z' comes after the COPY; a Sync sent with the Execute is
        // swallowed by the COPY and its 'Z' never comes.
        if (last_sync_type_ == 'S') pending_z_ = 0;
        push('G');
      }
    }
    const uint64_t need = milestones_total();
    if (type != 'd') {
      in_copy_ = false;
      last_sync_ts_ = ts;
      last_sync_need_ = need;
      last_sync_type_ = type;
    }
    return need;
  }
  in_copy_ = false;
  uint64_t need;
  if (ts == last_sync_ts_) {
    need = last_sync_need_;  // pipelined with it
  } else {
    flush_pending(0);
    need = milestones_total();
  }
  if (is_sync_like(type)) {
    ++pending_z_;
    last_sync_ts_ = ts;
    last_sync_need_ = need;
    last_sync_type_ = type;
  }
  return need;
}

MilestoneMatcher::Verdict MilestoneMatcher::match_one(const SessionModel& model, char m, bool capture_complete) {
  const uint64_t total = model.milestones_total();
  uint64_t i = pos_ < model.milestones_base() ? model.milestones_base() : pos_;
  for (; i < total; ++i) {
    const char c = model.milestone(i);
    if (c == m) {
      pos_ = i + 1;
      return Verdict::kMatched;
    }
    if (c == 'Z') return Verdict::kUnexpected;  // m is a copy response the capture did not have here
  }
  return capture_complete ? Verdict::kUnexpected : Verdict::kWait;
}

void ByteQueue::consume(size_t n) {
  head_ += n;
  if (head_ == buf_.size()) {
    buf_.clear();
    head_ = 0;
    if (buf_.capacity() > (8u << 20)) buf_.shrink_to_fit();
  } else if (head_ > (64u << 10) && head_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

}  // namespace pgreplay
