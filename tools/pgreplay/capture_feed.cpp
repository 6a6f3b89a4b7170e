#include "capture_feed.hpp"

#include <algorithm>
#include <climits>
#include <optional>

#include <fmt/format.h>

namespace pgreplay {

using pgwire::CaptureRecord;
using pgwire::CaptureRecordType;
using pgwire::StatementEvent;

namespace {

// Records read per call before the sockets get a turn.
constexpr int kRecordsPerTurn = 256;
// At --speed max, sessions read ahead of their start (waiting for a
// connection slot) are capped, so the reader cannot run away from the replay.
constexpr size_t kMaxWaitingStarts = 4096;
// At --speed max there is no schedule to read ahead of: the reader stays this
// far ahead (plus so much per open session) unless a session starves.
constexpr size_t kMaxAheadBase = 1u << 20;
constexpr size_t kMaxAheadPerSession = 256u << 10;

}  // namespace

CaptureFeed::CaptureFeed(const ReplayOptions& opts, Report& report, SessionTable& sessions, ReadAhead& budget,
                         Timeline& timeline)
    : opts_(opts),
      report_(report),
      sessions_(sessions),
      budget_(budget),
      timeline_(timeline),
      read_ahead_ns_(static_cast<int64_t>(opts.read_ahead_s * 1e9)) {
  pgwire::TrackerOptions copts;
  copts.digest_rows = opts_.compare;
  pgwire::CaptureDecoder::Callbacks cb;
  cb.event = [this](const StatementEvent& ev, const pgwire::SessionInfo& info) {
    on_captured_statement(info.session_id, ev);
  };
  cb.partial = [this](const pgwire::SessionInfo& info, int64_t ts) {
    ++partial_sessions_;
    session_for(info.session_id, ts).capture.partial = true;
  };
  cb.error = [this](const pgwire::SessionInfo& info, const pgwire::Error& e) {
    report_.add_warning(fmt::format("captured session {} cannot be decoded past offset {}: {}", info.session_id,
                                    e.offset, e.describe()));
  };
  decoder_ = std::make_unique<pgwire::CaptureDecoder>(copts, std::move(cb));
}

std::vector<std::string> CaptureFeed::open() {
  reader_.set_pcap_options(pcap_options(opts_));
  std::vector<std::string> errors = reader_.open(opts_.captures);
  for (const std::string& w : reader_.warnings()) report_.add_warning(w);
  return errors;
}

ReplaySession& CaptureFeed::session_for(uint64_t id, int64_t ts) {
  auto& slot = sessions_[id];
  if (!slot) {
    // The open record, or a session seen first through a frame (the capture
    // started mid-session, or the open record was lost): open it now.
    slot = std::make_unique<ReplaySession>(id, ts);
    slot->capture.max_conc = ++capture_open_;
    start_queue_.push_back(id);
  }
  return *slot;
}

void CaptureFeed::register_pid(ReplaySession& s) {
  if (s.capture.pid_registered || !s.capture.model.has_backend_key()) return;
  s.capture.pid_registered = true;
  pid_to_session_[s.capture.model.backend_pid()] = s.id;
}

void CaptureFeed::forget(const ReplaySession& s) {
  if (!s.capture.pid_registered) return;
  auto p = pid_to_session_.find(s.capture.model.backend_pid());
  if (p != pid_to_session_.end() && p->second == s.id) pid_to_session_.erase(p);
}

void CaptureFeed::touch(ReplaySession& s) {
  if (s.capture.touched) return;
  s.capture.touched = true;
  touched_.push_back(s.id);
}

void CaptureFeed::on_record(const CaptureRecord& rec) {
  if (!timeline_.have_t0) {
    timeline_.have_t0 = true;
    timeline_.capture_t0 = rec.ts_ns;
  }
  timeline_.capture_last = std::max(timeline_.capture_last, rec.ts_ns);
  switch (rec.type) {
    case CaptureRecordType::kSessionOpen: {
      session_for(rec.session_id, rec.ts_ns);
      decoder_->on_record(rec);
      return;
    }
    case CaptureRecordType::kSessionMeta: {
      decoder_->on_record(rec);
      ReplaySession& s = session_for(rec.session_id, rec.ts_ns);
      s.capture.model.on_meta(rec.key, rec.value);
      register_pid(s);
      return;
    }
    case CaptureRecordType::kSessionClose: {
      decoder_->on_record(rec);
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end()) return;
      ReplaySession& s = *it->second;
      if (s.capture.done) return;
      s.capture.model.on_close(rec.ts_ns);
      s.capture.done = true;
      budget_.set_starved(s, false);
      if (capture_open_ > 0) --capture_open_;
      touch(s);
      return;
    }
    case CaptureRecordType::kFrame: break;
  }
  ReplaySession& s = session_for(rec.session_id, rec.ts_ns);
  SessionModel& model = s.capture.model;
  decoder_->on_record(rec);
  if (s.capture.done) return;
  const bool was_cancel = model.kind() == SessionModel::Kind::kCancel;
  std::optional<PlannedFrame> pf = model.on_frame(rec);
  register_pid(s);
  if (!was_cancel && model.kind() == SessionModel::Kind::kCancel && !s.capture.cancel_resolved) {
    // Which replayed session does it cancel, and how far must that one have got?
    s.capture.cancel_resolved = true;
    auto t = pid_to_session_.find(model.cancel_pid());
    if (t == pid_to_session_.end() || !sessions_.count(t->second)) {
      s.capture.cancel_problem = fmt::format("no captured session had backend pid {}", model.cancel_pid());
    } else {
      const SessionModel& target = sessions_[t->second]->capture.model;
      s.capture.cancel_target = t->second;
      s.capture.cancel_after_frames = target.frames_planned();
      s.capture.cancel_gap = target.last_planned_ts() > 0 ? rec.ts_ns - target.last_planned_ts() : 0;
    }
  }
  if (pf && !s.finished) {
    Outbox& out = s.out;
    out.steps.push_back(
        Step{pf->ts_ns, pf->need, static_cast<uint32_t>(pf->data.size()), pf->type, pf->first, pf->last});
    out.bytes.append(pf->data);
    budget_.buffered += pf->data.size();
    budget_.set_starved(s, false);
    if (!out.over_budget && out.bytes.size() > opts_.session_buffer) {
      out.over_budget = true;
      budget_.over_budget.insert(s.id);
    }
  }
  touch(s);
}

bool CaptureFeed::budget_blocks() const {
  for (uint64_t id : budget_.over_budget) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    const ReplaySession& s = *it->second;
    // A session waiting on its server may be waiting for a lock another
    // session will release in frames not read yet: reading on is the only way
    // out (up to --max-memory). Anything else will drain by itself.
    const State state = s.state();
    const bool on_server =
        state == State::kConnecting || state == State::kLogin ||
        (state == State::kRunning && !s.out.steps.empty() && s.out.steps.front().need > s.out.matcher.position());
    if (!on_server) return true;
  }
  return false;
}

void CaptureFeed::read_some(int64_t now, uint32_t replay_open) {
  more_to_read_ = false;
  if (done_) return;
  bool blocked = budget_blocks();
  for (int n = 0; n < kRecordsPerTurn; ++n) {
    if (!held_) {
      held_ = reader_.next();
      if (!held_) {
        end_of_capture();
        break;
      }
    }
    if (budget_.buffered >= opts_.max_memory || blocked) break;
    if (!opts_.speed_max && timeline_.have_t0 && timeline_.at(held_->ts_ns) > now + read_ahead_ns_) break;
    if (opts_.speed_max && budget_.starved == 0 &&
        (start_queue_.size() >= kMaxWaitingStarts ||
         budget_.buffered >= kMaxAheadBase + replay_open * kMaxAheadPerSession))
      break;
    on_record(*held_);
    held_ = nullptr;
    if ((n & 255) == 255) blocked = budget_blocks();
    if (n + 1 == kRecordsPerTurn) more_to_read_ = true;
  }
}

int64_t CaptureFeed::next_read_at() const {
  if (done_ || !held_ || opts_.speed_max) return INT64_MAX;
  return timeline_.at(held_->ts_ns) - read_ahead_ns_;
}

void CaptureFeed::end_of_capture() {
  done_ = true;
  decoder_->finish(timeline_.capture_last);
  for (const auto& d : reader_.damage()) report_.capture_damage(d.file + ": " + d.error.describe());
  if (partial_sessions_ > 0) {
    report_.add_warning(fmt::format(
        "{} captured sessions are partial: they began before the capture data read (in a file of the set not "
        "given, deleted by --rotate-keep, or missing), so their startup is unknown; they are not replayed",
        partial_sessions_));
  }
  for (auto& [id, sp] : sessions_) {
    ReplaySession& s = *sp;
    if (s.capture.done) continue;
    s.capture.model.on_close(timeline_.capture_last);
    s.capture.done = true;
    budget_.set_starved(s, false);
    touch(s);
  }
  capture_open_ = 0;
}

void CaptureFeed::on_captured_statement(uint64_t id, const StatementEvent& ev) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  ReplaySession& s = *it->second;
  report_.captured_statement(ev);
  if (!s.capture.model.exact() || (s.finished && s.failed)) return;
  s.statements.add_captured(ev, s.label, report_, budget_.buffered);
}

}  // namespace pgreplay
