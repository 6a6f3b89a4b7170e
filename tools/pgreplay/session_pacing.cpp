// One session's side of the replay loop: its planned frames released when
// their time has come and the replay server has sent what the captured client
// had waited for (or owes nothing more: the stall breaker), written and read
// through its ReplayConnection, and its end (finished, failed or skipped),
// with what that gives back to the read-ahead budget. The Outbox of each
// ReplaySession is this file's.
#include <algorithm>
#include <string>

#include "replay_loop.hpp"

namespace pgreplay {

namespace {

// Released bytes a session may have waiting for the socket before it stops
// releasing more: the kernel buffer is the real queue.
constexpr size_t kMaxReleased = 256u << 10;

}  // namespace

void Replayer::skip(ReplaySession& s, const std::string& reason) {
  if (s.finished) return;
  s.finished = true;
  s.failed = true;
  if (s.is_cancel()) {
    report_.cancel_skipped(s.label, reason);
  } else {
    report_.session_skipped(s.label, reason);
  }
  budget_.buffered -= s.out.bytes.size();
  s.out.bytes.clear();
  s.out.steps.clear();
  s.out.released = 0;
  if (s.capture.done) to_free_.push_back(s.id);
}

bool Replayer::release_stall(ReplaySession& s, uint64_t need, int64_t now) {
  const ReplayConnection& c = s.conn;
  if (s.out.released > 0 || c.own_messages_pending()) return false;
  // Our server's milestones not matched yet: the capture is behind, not the server.
  if (s.out.matcher.waiting()) return false;
  bool release = c.outstanding() == 0 && !c.copy_in();
  if (!release && now - c.last_rx() >= stall_ns_ && (c.last_backend() == 'Z' || c.last_backend() == 'G'))
    release = true;
  if (!release) {
    // Past the timeout but the server's last word was not ReadyForQuery: it
    // is busy; only its next message (I/O) can change that.
    if (c.last_rx() + stall_ns_ > now) arm(s, c.last_rx() + stall_ns_, now);
    return false;
  }
  s.out.matcher.force_to(need);
  s.out.unblocked_at = now;
  report_.stall_broken();
  return true;
}

void Replayer::pump(ReplaySession& s, int64_t now) {
  if (s.state() != State::kRunning || s.conn.fd() < 0) return;
  Outbox& out = s.out;
  const SessionModel& model = s.capture.model;
  const uint64_t before = out.matcher.position();
  out.matcher.match(model, s.capture.done, [&](char m) {
    if (m == 'G' || m == 'W') {
      // The server waits for COPY data the captured client never sent.
      s.conn.send_copy_fail("pgreplay: no COPY data at this point of the capture");
      report_.unexpected_copy();
    }
  });
  if (out.matcher.position() != before) out.unblocked_at = now;
  // What the capture already answered can be forgotten.
  s.capture.model.forget_milestones_before(out.matcher.position());

  for (;;) {
    bool full = false;
    while (!s.conn.own_messages_pending() && !out.steps.empty()) {
      if (out.released >= kMaxReleased) {
        full = true;
        break;
      }
      const Step& st = out.steps.front();
      if (st.need > out.matcher.position()) {
        if (!release_stall(s, st.need, now)) break;
        continue;
      }
      const int64_t due = timeline_.at(st.ts);
      if (now < due) {
        arm(s, due, now);
        break;
      }
      if (st.first) report_.frame_sent(now - due, now - std::max(due, out.unblocked_at), !opts_.speed_max, st.ts);
      if (st.last) s.conn.released_frame(st.type);
      out.released += st.size;
      ++out.frames_released;
      out.last_release = now;
      out.steps.pop_front();
    }
    flush(s, now);
    if (s.conn.fd() < 0 || s.state() != State::kRunning) return;
    // Stopped only because enough was pending and the socket took it all: go on.
    if (!full || out.released > 0) break;
  }
  if (out.over_budget && out.bytes.size() <= opts_.session_buffer) {
    out.over_budget = false;
    budget_.over_budget.erase(s.id);
  }
  budget_.set_starved(s, out.steps.empty() && !s.capture.done);
  // Everything sent: end the way the captured client did.
  if (!out.steps.empty() || !s.capture.done || out.released > 0 || s.conn.own_messages_pending()) return;
  if (s.conn.sent_terminate()) return;  // the server closes; on_readable sees the end
  const uint64_t all = model.milestones_total();
  if (all > out.matcher.position() && !release_stall(s, all, now)) return;
  const int64_t due = timeline_.at(model.close_ts());
  if (now < due) {
    arm(s, due, now);
    return;
  }
  finish(s, true, {}, now);
}

void Replayer::flush(ReplaySession& s, int64_t now) {
  ReplayConnection::Flushed r = s.conn.flush(s.out.bytes, s.out.released, now);
  budget_.buffered -= r.step_bytes;
  if (!r.error.empty()) {
    finish(s, false, r.error, now);
    return;
  }
  if (s.conn.fd() < 0) return;
  if (s.is_cancel() && s.conn.cancel_delivered()) {
    finish(s, true, {}, now);  // the server answers a cancel request by closing
    return;
  }
  set_events(s);
}

void Replayer::on_readable(ReplaySession& s, int64_t now) {
  ReplayConnection::ReadResult r = s.conn.read(rx_, now);
  if (r.logged_in) {
    refused_in_a_row_ = 0;
    s.out.unblocked_at = now;
  }
  if (!r.error.empty()) {
    finish(s, false, r.error, now);
  } else if (r.closed) {
    const bool ended_by_us =
        s.state() == State::kRunning && s.conn.sent_terminate() && s.out.steps.empty() && s.out.released == 0;
    if (ended_by_us || s.is_cancel()) {
      finish(s, true, {}, now);
    } else {
      finish(s, false, s.conn.closed_reason(), now);
    }
  }
}

void Replayer::after_io(ReplaySession& s, int64_t now) {
  if (s.conn.fd() < 0) return;
  if (s.state() == State::kLogin) flush(s, now);
  if (s.state() == State::kRunning) pump(s, now);
}

void Replayer::finish(ReplaySession& s, bool ok, const std::string& reason, int64_t now) {
  if (s.finished) return;
  remove_fd(s);
  if (s.counted_open) {
    s.counted_open = false;
    --replay_open_;
  }
  s.finished = true;
  s.failed = !ok;
  s.conn.close(now);  // in-flight statements get "no outcome"
  if (s.is_cancel()) {
    if (ok) {
      report_.cancel_sent();
    } else {
      report_.session_failed(s.label, "cancel request: " + reason);
    }
  } else if (ok) {
    report_.session_ok();
  } else {
    report_.session_failed(s.label, reason);
  }
  budget_.buffered -= s.out.bytes.size();
  s.out.bytes.clear();
  s.out.steps.clear();
  s.out.released = 0;
  if (s.out.over_budget) {
    s.out.over_budget = false;
    budget_.over_budget.erase(s.id);
  }
  budget_.set_starved(s, false);
  if (s.failed) s.statements.drop(budget_.buffered);
  if (s.capture.done) to_free_.push_back(s.id);
}

}  // namespace pgreplay
