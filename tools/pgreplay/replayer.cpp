#include "replayer.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "conninfo.hpp"
#include "output_file.hpp"
#include "pgwire/auth.hpp"
#include "pgwire/capture_merge.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/text.hpp"
#include "report.hpp"
#include "schedule.hpp"

namespace pgreplay {

using pgwire::Bytes;
using pgwire::CaptureRecord;
using pgwire::CaptureRecordType;
using pgwire::Direction;
using pgwire::Frame;
using pgwire::FrameKind;
using pgwire::StatementEvent;

namespace {

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

volatile sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

constexpr size_t kReadChunk = 64u << 10;
// Released bytes a session may have waiting for the socket before it stops
// releasing more: the kernel buffer is the real queue.
constexpr size_t kMaxReleased = 256u << 10;
// Records read per loop iteration before the sockets get a turn.
constexpr int kRecordsPerTurn = 256;
// At --speed max, sessions read ahead of their start (waiting for a
// connection slot) are capped, so the reader cannot run away from the replay.
constexpr size_t kMaxWaitingStarts = 4096;
// At --speed max there is no schedule to read ahead of: the reader stays this
// far ahead (plus so much per open session) unless a session starves.
constexpr size_t kMaxAheadBase = 1u << 20;
constexpr size_t kMaxAheadPerSession = 256u << 10;
constexpr int64_t kProgressInterval = 500'000'000;
constexpr int64_t kMaxCancelGap = 1'000'000'000;
// Connections refused in a row, with none open, after which the target counts as gone.
constexpr int kRefusedToGiveUp = 3;

bool is_sync_like(uint8_t t) { return t == 'Q' || t == 'S' || t == 'F'; }

std::string errno_text(int e) { return std::strerror(e); }

// Roughly what a queued statement event costs, for the read-ahead budget.
size_t event_bytes(const StatementEvent& ev) {
  size_t n = sizeof(StatementEvent) + ev.sql.size() + ev.tag.size() + ev.error_message.size();
  for (const auto& p : ev.params) n += sizeof(p) + (p.value ? p.value->size() : 0);
  return n;
}

enum class State : uint8_t {
  kPlanned,     // read from the capture, not started
  kConnecting,  // TCP/Unix connect in progress
  kLogin,       // startup packet sent, authenticating
  kRunning,     // logged in, replaying frames
  kFinished,    // done, failed or skipped; the record stays until the capture closes it
};

struct Step {
  int64_t ts = 0;
  uint64_t need = 0;
  uint32_t size = 0;
  uint8_t type = 0;
  bool first = true;
  bool last = true;
};

struct Session {
  Session(uint64_t session_id, int64_t open_ts) : id(session_id), model(open_ts) { label.id = session_id; }

  uint64_t id;
  SessionModel model;
  MilestoneMatcher matcher;
  SessionLabel label;
  State state = State::kPlanned;
  bool failed = false;
  bool capture_done = false;  // the capture's close record was read
  bool pid_registered = false;
  bool touched = false;  // got records since the last pump
  bool over_budget = false;
  bool starved = false;  // running, nothing queued, more to come in the capture

  // Replay side.
  std::deque<Step> steps;
  ByteQueue bytes;  // the steps' bytes; the first `released` are being written
  size_t released = 0;
  std::vector<std::byte> ctrl;  // our own messages, written when nothing released is pending
  size_t ctrl_off = 0;
  int fd = -1;
  size_t slot = SIZE_MAX;  // index in the pollfd array
  int64_t deadline = 0;    // connect + login must finish by then
  std::unique_ptr<pgwire::SessionMonitor> monitor;
  pgwire::SessionMonitor::FrameSink sink;
  std::unique_ptr<pgwire::ClientAuthenticator> auth;
  int32_t replay_pid = 0;
  std::vector<std::byte> replay_key;
  bool have_key = false;
  uint32_t outstanding = 0;  // Query/Sync/FunctionCall written and not yet answered by 'Z'
  bool copy_in = false;      // the server is in COPY FROM STDIN
  bool sent_terminate = false;
  uint8_t last_backend = 0;
  int64_t last_rx = 0;
  int64_t unblocked_at = 0;  // when the last milestone arrived
  std::string fatal;         // a FATAL error the server sent
  std::string fail_reason;   // set while inside the monitor's callbacks; acted on after
  bool counted_open = false;
  uint32_t max_conc = 1;  // sessions open in the capture when this one opened
  int64_t timer_at = INT64_MAX;
  uint64_t frames_released = 0;
  int64_t last_release = 0;  // when a frame was last released

  // Statement matching (capture with backend frames).
  std::deque<StatementEvent> cap_events;
  std::deque<StatementEvent> rep_events;
  size_t event_bytes = 0;  // their share of Replayer::buffered_
  uint64_t match_index = 0;

  // CancelRequest sessions.
  bool cancel_resolved = false;
  uint64_t cancel_target = 0;
  uint64_t cancel_after_frames = 0;
  int64_t cancel_gap = 0;  // capture time between the target's last frame and the cancel
  std::string cancel_problem;
};

struct Timer {
  int64_t at;
  uint64_t id;
  bool operator>(const Timer& o) const { return at > o.at; }
};

class Replayer {
 public:
  explicit Replayer(const ReplayOptions& opts) : opts_(opts), report_(opts), login_notice_(opts) {}
  int run();

 private:
  // Capture side.
  void read_some(int64_t now);
  bool budget_blocks() const;
  void on_record(const CaptureRecord& rec, int64_t now);
  void end_of_capture(int64_t now);
  Session& session_for(uint64_t id, int64_t ts);
  void on_capture_event(uint64_t id, const StatementEvent& ev);
  void register_pid(Session& s);

  // Scheduling.
  int64_t sched(int64_t capture_ts) const {
    if (opts_.speed_max) return 0;
    return start_ns_ + static_cast<int64_t>(static_cast<double>(capture_ts - capture_t0_) / opts_.speed);
  }
  void start_due(int64_t now);
  void check_cancels(int64_t now);
  bool connect(Session& s, int64_t now);
  void begin_session(Session& s, int64_t now);
  void on_connected(Session& s, int64_t now);

  // One session.
  void pump(Session& s, int64_t now);
  bool release_stall(Session& s, uint64_t need, int64_t now);
  void flush(Session& s, int64_t now);
  void on_readable(Session& s, int64_t now);
  void on_backend_frame(Session& s, const Frame& f, int64_t now);
  void on_replay_event(Session& s, const StatementEvent& ev);
  void match_statements(Session& s);
  void after_io(Session& s, int64_t now);
  void finish(Session& s, bool ok, const std::string& reason, int64_t now);
  void skip(Session& s, const std::string& reason);
  void arm(Session& s, int64_t at, int64_t now);
  void set_starved(Session& s, bool starved) {
    if (s.starved == starved) return;
    s.starved = starved;
    if (starved) {
      ++starved_;
    } else {
      --starved_;
    }
  }
  void on_timer(Session& s, int64_t now);
  void fire_timers(int64_t now);
  void free_finished();
  void stop_all(int64_t now, const std::string& why);
  void connect_failed(int err);

  // pollfd array.
  void add_fd(Session& s, short events);
  void remove_fd(Session& s);
  void set_events(Session& s);

  void progress(int64_t now, bool final_line);
  int64_t next_wakeup(int64_t now) const;

  const ReplayOptions& opts_;
  Report report_;
  EnvironmentLoginNotice login_notice_;
  pgwire::MergedReader reader_;
  std::unique_ptr<pgwire::CaptureDecoder> decoder_;
  std::optional<Target> target_;
  std::unique_ptr<Credentials> creds_;

  const CaptureRecord* held_ = nullptr;  // read but not yet due
  bool reader_done_ = false;
  bool more_to_read_ = false;
  bool have_t0_ = false;
  int64_t capture_t0_ = 0;
  int64_t capture_last_ = 0;
  int64_t start_ns_ = 0;
  int64_t read_ahead_ns_ = 0;
  int64_t stall_ns_ = 0;

  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::deque<uint64_t> start_queue_;
  std::vector<uint64_t> cancels_;
  std::unordered_map<int32_t, uint64_t> pid_to_session_;  // captured backend pid -> session
  std::unordered_set<uint64_t> over_budget_;
  std::vector<uint64_t> touched_;
  std::vector<uint64_t> to_free_;
  uint32_t capture_open_ = 0;
  uint32_t replay_open_ = 0;
  size_t buffered_ = 0;  // read-ahead bytes of all sessions
  size_t starved_ = 0;   // sessions with starved set

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::vector<pollfd> pfds_;
  std::vector<Session*> owners_;

  std::vector<std::byte> rx_;
  bool show_progress_ = false;
  int64_t next_progress_ = 0;
  int refused_in_a_row_ = 0;
};

// ---------------------------------------------------------------------------
// Capture side

Session& Replayer::session_for(uint64_t id, int64_t ts) {
  auto& slot = sessions_[id];
  if (!slot) {
    // A session seen first through a frame (the capture started mid-session,
    // or the open record was lost): open it now.
    slot = std::make_unique<Session>(id, ts);
    slot->max_conc = ++capture_open_;
    start_queue_.push_back(id);
  }
  return *slot;
}

void Replayer::register_pid(Session& s) {
  if (s.pid_registered || !s.model.has_backend_key()) return;
  s.pid_registered = true;
  pid_to_session_[s.model.backend_pid()] = s.id;
}

void Replayer::on_record(const CaptureRecord& rec, int64_t now) {
  if (!have_t0_) {
    have_t0_ = true;
    capture_t0_ = rec.ts_ns;
  }
  capture_last_ = std::max(capture_last_, rec.ts_ns);
  switch (rec.type) {
    case CaptureRecordType::kSessionOpen: {
      auto& slot = sessions_[rec.session_id];
      if (!slot) {
        slot = std::make_unique<Session>(rec.session_id, rec.ts_ns);
        slot->max_conc = ++capture_open_;
        start_queue_.push_back(rec.session_id);
      }
      if (decoder_) decoder_->on_record(rec);
      return;
    }
    case CaptureRecordType::kSessionMeta: {
      if (decoder_) decoder_->on_record(rec);
      Session& s = session_for(rec.session_id, rec.ts_ns);
      s.model.on_meta(rec.key, rec.value);
      register_pid(s);
      return;
    }
    case CaptureRecordType::kSessionClose: {
      if (decoder_) decoder_->on_record(rec);
      auto it = sessions_.find(rec.session_id);
      if (it == sessions_.end()) return;
      Session& s = *it->second;
      if (s.capture_done) return;
      s.model.on_close(rec.ts_ns);
      s.capture_done = true;
      set_starved(s, false);
      if (capture_open_ > 0) --capture_open_;
      if (!s.touched) {
        s.touched = true;
        touched_.push_back(s.id);
      }
      return;
    }
    case CaptureRecordType::kFrame: break;
  }
  Session& s = session_for(rec.session_id, rec.ts_ns);
  if (decoder_) {
    if (rec.direction == Direction::kFrontend && s.model.awaiting_answer())
      decoder_->on_record(synthetic_answer(rec.session_id, rec.ts_ns));
    decoder_->on_record(rec);
  }
  if (s.capture_done) return;
  const bool was_cancel = s.model.kind() == SessionModel::Kind::kCancel;
  std::optional<PlannedFrame> pf = s.model.on_frame(rec);
  register_pid(s);
  if (!was_cancel && s.model.kind() == SessionModel::Kind::kCancel && !s.cancel_resolved) {
    // Which replayed session does it cancel, and how far must that one have got?
    s.cancel_resolved = true;
    auto t = pid_to_session_.find(s.model.cancel_pid());
    if (t == pid_to_session_.end() || !sessions_.count(t->second)) {
      s.cancel_problem = fmt::format("no captured session had backend pid {}", s.model.cancel_pid());
    } else {
      const SessionModel& target = sessions_[t->second]->model;
      s.cancel_target = t->second;
      s.cancel_after_frames = target.frames_planned();
      s.cancel_gap = target.last_planned_ts() > 0 ? rec.ts_ns - target.last_planned_ts() : 0;
    }
  }
  if (pf && s.state != State::kFinished) {
    s.steps.push_back(Step{pf->ts_ns, pf->need, static_cast<uint32_t>(pf->data.size()), pf->type, pf->first, pf->last});
    s.bytes.append(pf->data);
    buffered_ += pf->data.size();
    set_starved(s, false);
    if (!s.over_budget && s.bytes.size() > opts_.session_buffer) {
      s.over_budget = true;
      over_budget_.insert(s.id);
    }
  }
  if (!s.touched) {
    s.touched = true;
    touched_.push_back(s.id);
  }
  (void)now;
}

bool Replayer::budget_blocks() const {
  for (uint64_t id : over_budget_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    const Session& s = *it->second;
    // A session waiting on its server may be waiting for a lock another
    // session will release in frames not read yet: reading on is the only way
    // out (up to --max-memory). Anything else will drain by itself.
    const bool on_server =
        s.state == State::kConnecting || s.state == State::kLogin ||
        (s.state == State::kRunning && !s.steps.empty() && s.steps.front().need > s.matcher.position());
    if (!on_server) return true;
  }
  return false;
}

void Replayer::read_some(int64_t now) {
  more_to_read_ = false;
  if (reader_done_) return;
  bool blocked = budget_blocks();
  for (int n = 0; n < kRecordsPerTurn; ++n) {
    if (!held_) {
      held_ = reader_.next();
      if (!held_) {
        end_of_capture(now);
        break;
      }
    }
    if (buffered_ >= opts_.max_memory || blocked) break;
    if (!opts_.speed_max && have_t0_ && sched(held_->ts_ns) > now + read_ahead_ns_) break;
    if (opts_.speed_max && starved_ == 0 &&
        (start_queue_.size() >= kMaxWaitingStarts || buffered_ >= kMaxAheadBase + replay_open_ * kMaxAheadPerSession))
      break;
    on_record(*held_, now);
    held_ = nullptr;
    if ((n & 255) == 255) blocked = budget_blocks();
    if (n + 1 == kRecordsPerTurn) more_to_read_ = true;
  }
  // Sessions that got frames or milestones may be able to go on.
  std::vector<uint64_t> touched;
  touched.swap(touched_);
  for (uint64_t id : touched) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    s.touched = false;
    if (s.state == State::kRunning) {
      pump(s, now);
      after_io(s, now);
    } else if (s.state == State::kFinished && s.capture_done) {
      to_free_.push_back(s.id);
    }
  }
}

void Replayer::end_of_capture(int64_t now) {
  reader_done_ = true;
  if (decoder_) decoder_->finish(capture_last_);
  for (const auto& d : reader_.damage()) report_.capture_damage(d.file + ": " + d.error.describe());
  for (auto& [id, sp] : sessions_) {
    Session& s = *sp;
    if (s.capture_done) continue;
    s.model.on_close(capture_last_);
    s.capture_done = true;
    set_starved(s, false);
    if (!s.touched) {
      s.touched = true;
      touched_.push_back(id);
    }
  }
  capture_open_ = 0;
  (void)now;
}

void Replayer::on_capture_event(uint64_t id, const StatementEvent& ev) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  if (!s.model.exact() || (s.state == State::kFinished && s.failed)) return;
  s.cap_events.push_back(ev);
  s.event_bytes += event_bytes(ev);
  buffered_ += event_bytes(ev);
  match_statements(s);
}

// ---------------------------------------------------------------------------
// Starting sessions

void Replayer::skip(Session& s, const std::string& reason) {
  if (s.state == State::kFinished) return;
  s.state = State::kFinished;
  s.failed = true;
  if (s.model.kind() == SessionModel::Kind::kCancel) {
    report_.cancel_skipped(s.label, reason);
  } else {
    report_.session_skipped(s.label, reason);
  }
  buffered_ -= s.bytes.size();
  s.bytes.clear();
  s.steps.clear();
  s.released = 0;
  if (s.capture_done) to_free_.push_back(s.id);
}

void Replayer::start_due(int64_t now) {
  while (!start_queue_.empty()) {
    auto it = sessions_.find(start_queue_.front());
    if (it == sessions_.end() || it->second->state != State::kPlanned) {
      start_queue_.pop_front();
      continue;
    }
    Session& s = *it->second;
    const SessionModel::Kind kind = s.model.kind();
    if (kind == SessionModel::Kind::kUnknown) {
      if (!s.capture_done) return;  // its startup packet is not read yet
      skip(s, "no startup packet in the capture");
      start_queue_.pop_front();
      continue;
    }
    if (kind == SessionModel::Kind::kEncrypted) {
      skip(s, "encrypted (TLS/GSS) in the capture");
      start_queue_.pop_front();
      continue;
    }
    if (kind == SessionModel::Kind::kCancel) {
      cancels_.push_back(s.id);
      start_queue_.pop_front();
      continue;
    }
    if (!opts_.speed_max && now < sched(s.model.open_ts())) return;
    if (opts_.speed_max && replay_open_ >= s.max_conc) return;
    start_queue_.pop_front();
    begin_session(s, now);
  }
}

void Replayer::check_cancels(int64_t now) {
  for (size_t i = 0; i < cancels_.size();) {
    auto it = sessions_.find(cancels_[i]);
    bool done = true;
    if (it != sessions_.end() && it->second->state == State::kPlanned) {
      Session& s = *it->second;
      done = false;
      if (!s.cancel_problem.empty()) {
        skip(s, s.cancel_problem);
        done = true;
      } else if (opts_.speed_max || now >= sched(s.model.startup_ts())) {
        auto t = sessions_.find(s.cancel_target);
        if (t == sessions_.end() || t->second->state == State::kFinished) {
          skip(s, "the session it cancels had already ended");
          done = true;
        } else if (t->second->state == State::kRunning && t->second->have_key &&
                   t->second->frames_released >= s.cancel_after_frames &&
                   // At full speed, still give the cancelled statement the time it had run
                   // (up to a second): a cancel the server gets before it reads the
                   // statement is ignored.
                   (!opts_.speed_max ||
                    now >= t->second->last_release + std::min<int64_t>(s.cancel_gap, kMaxCancelGap))) {
          s.label.user = t->second->label.user;
          s.label.database = t->second->label.database;
          s.replay_pid = t->second->replay_pid;
          s.replay_key = t->second->replay_key;
          if (connect(s, now)) {
            s.state = State::kConnecting;
          }
          done = true;
        }
      }
    }
    if (done) {
      cancels_[i] = cancels_.back();
      cancels_.pop_back();
    } else {
      ++i;
    }
  }
}

bool Replayer::connect(Session& s, int64_t now) {
  const Target& t = *target_;
  int fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    finish(s, false, "socket: " + errno_text(errno), now);
    return false;
  }
  if (!t.unix_socket) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    const int e = errno;
    ::close(fd);
    connect_failed(e);
    finish(s, false, fmt::format("connection to {} failed: {}", t.describe(), errno_text(e)), now);
    return false;
  }
  s.fd = fd;
  s.counted_open = true;
  ++replay_open_;
  s.deadline = now + static_cast<int64_t>(opts_.connect_timeout_s * 1e9);
  s.last_rx = now;
  add_fd(s, POLLOUT);
  arm(s, s.deadline, now);
  return true;
}

void Replayer::begin_session(Session& s, int64_t now) {
  const SessionModel& m = s.model;
  auto [user, db] = resolve_login(opts_, m.param("user"), m.param("database"));
  for (std::string& w : login_notice_.check(m.param("user"), m.param("database"), user, db))
    report_.add_warning(std::move(w));
  s.label.user = user;
  s.label.database = db;
  s.label.application_name = m.param("application_name");

  pgwire::TrackerOptions topts;
  topts.digest_rows = opts_.compare;
  topts.max_param_bytes = 0;  // the capture side keeps the parameters for the report
  Session* sp = &s;
  s.monitor = std::make_unique<pgwire::SessionMonitor>(
      topts, [this, sp](const StatementEvent& ev, const pgwire::SessionInfo&) { on_replay_event(*sp, ev); });
  s.sink = [this, sp](Direction dir, const Frame& f, int64_t ts) {
    if (dir == Direction::kBackend) on_backend_frame(*sp, f, ts);
  };
  s.auth = std::make_unique<pgwire::ClientAuthenticator>(user, creds_->password(db, user));
  for (std::string& w : creds_->take_warnings()) report_.add_warning(std::move(w));
  if (connect(s, now)) s.state = State::kConnecting;
}

void Replayer::on_connected(Session& s, int64_t now) {
  pgwire::Buffer out;
  if (s.model.kind() == SessionModel::Kind::kCancel) {
    pgwire::fe::CancelRequest c;
    c.process_id = s.replay_pid;
    c.secret_key = Bytes{s.replay_key.data(), s.replay_key.size()};
    c.encode(out);
  } else {
    // The captured parameters in their order, user and database replaced.
    pgwire::fe::StartupMessage sm;
    sm.protocol = s.model.protocol();
    bool have_db = false;
    for (const auto& [k, v] : s.model.params()) {
      if (k == "user") {
        sm.params.emplace_back(k, s.label.user);
      } else if (k == "database") {
        sm.params.emplace_back(k, s.label.database);
        have_db = true;
      } else {
        sm.params.emplace_back(k, v);
      }
    }
    if (!have_db) sm.params.emplace_back("database", s.label.database);
    sm.encode(out);
  }
  s.ctrl.insert(s.ctrl.end(), out.view().begin(), out.view().end());
  s.state = State::kLogin;
  set_events(s);
  flush(s, now);
}

// ---------------------------------------------------------------------------
// One session

void Replayer::arm(Session& s, int64_t at, int64_t now) {
  if (at < s.timer_at || s.timer_at <= now) {
    s.timer_at = at;
    timers_.push(Timer{at, s.id});
  }
}

bool Replayer::release_stall(Session& s, uint64_t need, int64_t now) {
  if (s.released > 0 || s.ctrl_off < s.ctrl.size()) return false;
  // Our server's milestones not matched yet: the capture is behind, not the server.
  if (s.matcher.waiting()) return false;
  bool release = s.outstanding == 0 && !s.copy_in;
  if (!release && now - s.last_rx >= stall_ns_ && (s.last_backend == 'Z' || s.last_backend == 'G')) release = true;
  if (!release) {
    // Past the timeout but the server's last word was not ReadyForQuery: it
    // is busy; only its next message (I/O) can change that.
    if (s.last_rx + stall_ns_ > now) arm(s, s.last_rx + stall_ns_, now);
    return false;
  }
  s.matcher.force_to(need);
  s.unblocked_at = now;
  report_.stall_broken();
  return true;
}

void Replayer::pump(Session& s, int64_t now) {
  if (s.state != State::kRunning || s.fd < 0) return;
  const uint64_t before = s.matcher.position();
  s.matcher.match(s.model, s.capture_done, [&](char m) {
    if (m == 'G' || m == 'W') {
      // The server waits for COPY data the captured client never sent.
      pgwire::Buffer out;
      pgwire::fe::CopyFail{"pgreplay: no COPY data at this point of the capture"}.encode(out);
      s.ctrl.insert(s.ctrl.end(), out.view().begin(), out.view().end());
      s.copy_in = false;
      report_.unexpected_copy();
    }
  });
  if (s.matcher.position() != before) s.unblocked_at = now;
  // What the capture already answered can be forgotten.
  s.model.forget_milestones_before(s.matcher.position());

  for (;;) {
    bool full = false;
    while (s.ctrl_off >= s.ctrl.size() && !s.steps.empty()) {
      if (s.released >= kMaxReleased) {
        full = true;
        break;
      }
      const Step& st = s.steps.front();
      if (st.need > s.matcher.position()) {
        if (!release_stall(s, st.need, now)) break;
        continue;
      }
      const int64_t due = sched(st.ts);
      if (now < due) {
        arm(s, due, now);
        break;
      }
      if (st.first) report_.frame_sent(now - due, now - std::max(due, s.unblocked_at), !opts_.speed_max);
      if (st.last) {
        // A Sync sent while the server copies is swallowed and never answered.
        if (is_sync_like(st.type) && !(st.type == 'S' && s.copy_in)) ++s.outstanding;
        if (st.type == 'c' || st.type == 'f') s.copy_in = false;
        if (st.type == 'X') s.sent_terminate = true;
      }
      s.released += st.size;
      ++s.frames_released;
      s.last_release = now;
      s.steps.pop_front();
    }
    flush(s, now);
    if (s.fd < 0 || s.state != State::kRunning) return;
    // Stopped only because enough was pending and the socket took it all: go on.
    if (!full || s.released > 0) break;
  }
  if (s.over_budget && s.bytes.size() <= opts_.session_buffer) {
    s.over_budget = false;
    over_budget_.erase(s.id);
  }
  set_starved(s, s.steps.empty() && !s.capture_done);
  // Everything sent: end the way the captured client did.
  if (!s.steps.empty() || !s.capture_done || s.released > 0 || s.ctrl_off < s.ctrl.size()) return;
  if (s.sent_terminate) return;  // the server closes; on_readable sees the end
  const uint64_t all = s.model.milestones_total();
  if (all > s.matcher.position() && !release_stall(s, all, now)) return;
  const int64_t due = sched(s.model.close_ts());
  if (now < due) {
    arm(s, due, now);
    return;
  }
  finish(s, true, {}, now);
}

void Replayer::flush(Session& s, int64_t now) {
  while (s.fd >= 0) {
    const std::byte* p;
    size_t n;
    const bool from_steps = s.released > 0;
    if (from_steps) {
      p = s.bytes.front();
      n = s.released;
    } else if (s.ctrl_off < s.ctrl.size()) {
      p = s.ctrl.data() + s.ctrl_off;
      n = s.ctrl.size() - s.ctrl_off;
    } else {
      break;
    }
    ssize_t w = ::send(s.fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const int e = errno;
      finish(s, false, s.fatal.empty() ? "write to the server failed: " + errno_text(e) : s.fatal, now);
      return;
    }
    const size_t written = static_cast<size_t>(w);
    if (s.monitor) {
      // The replay's own tracker sees what the server saw (statement timing, compare).
      (void)s.monitor->feed(Direction::kFrontend, Bytes{p, written}, now);
    }
    if (from_steps) {
      s.bytes.consume(written);
      s.released -= written;
      buffered_ -= written;
    } else {
      s.ctrl_off += written;
      if (s.ctrl_off == s.ctrl.size()) {
        s.ctrl.clear();
        s.ctrl_off = 0;
      }
    }
  }
  if (s.fd < 0) return;
  if (s.model.kind() == SessionModel::Kind::kCancel && s.state == State::kLogin && s.ctrl.empty()) {
    finish(s, true, {}, now);  // the server answers a cancel request by closing
    return;
  }
  set_events(s);
}

void Replayer::on_backend_frame(Session& s, const Frame& f, int64_t now) {
  s.last_rx = now;
  if (!f.first || f.kind != FrameKind::kTyped || !s.fail_reason.empty()) return;
  const uint8_t t = f.type;
  s.last_backend = t;
  if (s.state == State::kLogin) {
    switch (t) {
      case 'R': {
        auto m = f.last ? pgwire::be::Authentication::decode(f.body, f.offset)
                        : pgwire::Result<pgwire::be::Authentication>(
                              pgwire::Error{pgwire::Errc::kTooLong, f.offset, "huge Authentication message"});
        if (!m) {
          s.fail_reason = "protocol error from the server: " + m.error().describe();
          return;
        }
        pgwire::Buffer out;
        auto r = s.auth->on_message(*m, out);
        if (!r) {
          s.fail_reason = "authentication failed: " + r.error().message;
          return;
        }
        s.ctrl.insert(s.ctrl.end(), out.view().begin(), out.view().end());
        return;
      }
      case 'E': {
        auto e = pgwire::be::ErrorResponse::decode(f.body, f.offset);
        s.fail_reason = e ? fmt::format("login refused: {} {}: {}", e->severity(), e->sqlstate(), e->message())
                          : std::string("login refused (unreadable ErrorResponse)");
        return;
      }
      case 'K': {
        auto k = pgwire::be::BackendKeyData::decode(f.body, f.offset);
        if (k) {
          s.replay_pid = k->process_id;
          s.replay_key.assign(k->secret_key.begin(), k->secret_key.end());
          s.have_key = true;
        }
        return;
      }
      case 'Z':
        refused_in_a_row_ = 0;
        s.state = State::kRunning;
        s.unblocked_at = now;
        return;
      default: return;  // ParameterStatus, NoticeResponse, NegotiateProtocolVersion
    }
  }
  if (s.state != State::kRunning) return;
  switch (t) {
    case 'Z':
      if (s.outstanding > 0) --s.outstanding;
      s.copy_in = false;
      s.matcher.received('Z');
      return;
    case 'G':
      s.copy_in = true;
      s.matcher.received('G');
      return;
    case 'H':
    case 'W': s.matcher.received(static_cast<char>(t)); return;
    case 'E': {
      if (!f.last) return;
      auto e = pgwire::be::ErrorResponse::decode(f.body, f.offset);
      if (e && (e->severity() == "FATAL" || e->severity() == "PANIC"))
        s.fatal = fmt::format("{} {}: {}", e->severity(), e->sqlstate(), e->message());
      return;
    }
    default: return;
  }
}

void Replayer::on_replay_event(Session& s, const StatementEvent& ev) {
  report_.replay_statement(ev);
  if (!s.model.exact()) return;
  s.rep_events.push_back(ev);
  s.event_bytes += event_bytes(ev);
  buffered_ += event_bytes(ev);
  match_statements(s);
}

void Replayer::match_statements(Session& s) {
  while (!s.cap_events.empty() && !s.rep_events.empty()) {
    report_.matched(s.label, s.match_index++, s.cap_events.front(), s.rep_events.front());
    const size_t n = event_bytes(s.cap_events.front()) + event_bytes(s.rep_events.front());
    s.event_bytes -= n;
    buffered_ -= n;
    s.cap_events.pop_front();
    s.rep_events.pop_front();
  }
}

void Replayer::on_readable(Session& s, int64_t now) {
  for (int i = 0; i < 16 && s.fd >= 0; ++i) {
    ssize_t r = ::recv(s.fd, rx_.data(), rx_.size(), 0);
    if (r > 0) {
      pgwire::Status st =
          s.monitor ? s.monitor->feed(Direction::kBackend, Bytes{rx_.data(), static_cast<size_t>(r)}, now, s.sink)
                    : pgwire::Status{};
      if (!st && s.fail_reason.empty()) s.fail_reason = "protocol error from the server: " + st.error().describe();
      if (!s.fail_reason.empty()) {
        std::string reason = s.fail_reason;
        finish(s, false, reason, now);
        return;
      }
      if (static_cast<size_t>(r) < rx_.size()) break;
      continue;
    }
    if (r == 0) {
      // The server closed the connection.
      const bool ended_by_us = s.state == State::kRunning && s.sent_terminate && s.steps.empty() && s.released == 0;
      if (ended_by_us || s.model.kind() == SessionModel::Kind::kCancel) {
        finish(s, true, {}, now);
      } else {
        std::string why = !s.fatal.empty()           ? s.fatal
                          : s.state == State::kLogin ? std::string("server closed the connection during login")
                                                     : std::string("server closed the connection");
        finish(s, false, why, now);
      }
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const int e = errno;
    finish(s, false, !s.fatal.empty() ? s.fatal : "read from the server failed: " + errno_text(e), now);
    return;
  }
}

void Replayer::after_io(Session& s, int64_t now) {
  if (s.fd < 0) return;
  if (s.state == State::kLogin) flush(s, now);
  if (s.state == State::kRunning) pump(s, now);
}

void Replayer::finish(Session& s, bool ok, const std::string& reason, int64_t now) {
  if (s.state == State::kFinished) return;
  if (s.fd >= 0) {
    remove_fd(s);
    ::close(s.fd);
    s.fd = -1;
  }
  if (s.counted_open) {
    s.counted_open = false;
    --replay_open_;
  }
  s.state = State::kFinished;
  s.failed = !ok;
  if (s.monitor) s.monitor->close(now);  // in-flight statements get "no outcome"
  if (s.model.kind() == SessionModel::Kind::kCancel) {
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
  buffered_ -= s.bytes.size();
  s.bytes.clear();
  s.steps.clear();
  s.released = 0;
  s.ctrl.clear();
  s.ctrl_off = 0;
  if (s.over_budget) {
    s.over_budget = false;
    over_budget_.erase(s.id);
  }
  set_starved(s, false);
  if (s.failed) {
    s.cap_events.clear();
    s.rep_events.clear();
    buffered_ -= s.event_bytes;
    s.event_bytes = 0;
  }
  if (s.capture_done) to_free_.push_back(s.id);
}

void Replayer::free_finished() {
  for (uint64_t id : to_free_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    if (s.state != State::kFinished || !s.capture_done) continue;
    // Known only once its first query was read: counted here, not at the start.
    if (s.model.exact()) report_.note_exact_session();
    if (!s.failed && s.model.exact()) {
      // Statements only one side has (the session completed on both).
      for (const StatementEvent& ev : s.cap_events) report_.unmatched(s.label, s.match_index++, ev, true);
      for (const StatementEvent& ev : s.rep_events) report_.unmatched(s.label, s.match_index++, ev, false);
    }
    if (s.pid_registered) {
      auto p = pid_to_session_.find(s.model.backend_pid());
      if (p != pid_to_session_.end() && p->second == id) pid_to_session_.erase(p);
    }
    buffered_ -= s.event_bytes;
    sessions_.erase(it);
  }
  to_free_.clear();
}

void Replayer::on_timer(Session& s, int64_t now) {
  if ((s.state == State::kConnecting || s.state == State::kLogin) && now >= s.deadline) {
    finish(s, false,
           fmt::format("timeout: no login within {:g} s ({})", opts_.connect_timeout_s,
                       s.state == State::kConnecting ? "connecting" : "authenticating"),
           now);
    return;
  }
  if (s.state == State::kRunning) pump(s, now);
}

void Replayer::fire_timers(int64_t now) {
  while (!timers_.empty() && timers_.top().at <= now) {
    Timer t = timers_.top();
    timers_.pop();
    auto it = sessions_.find(t.id);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    if (s.timer_at == t.at) s.timer_at = INT64_MAX;
    on_timer(s, now);
  }
}

void Replayer::connect_failed(int err) {
  if (err == ECONNREFUSED || err == ENOENT || err == EHOSTUNREACH || err == ENETUNREACH) ++refused_in_a_row_;
}

void Replayer::stop_all(int64_t now, const std::string& why) {
  report_.set_stopped(why);
  std::vector<Session*> all;
  for (auto& [id, sp] : sessions_) all.push_back(sp.get());
  for (Session* s : all) {
    s->capture_done = true;  // nothing more will be read: let free_finished() account for it
    to_free_.push_back(s->id);
    if (s->state == State::kPlanned) {
      skip(*s, why + " before it started");
    } else {
      finish(*s, false, why, now);
    }
  }
}

// ---------------------------------------------------------------------------
// pollfd array: one slot per connected session.

void Replayer::add_fd(Session& s, short events) {
  s.slot = pfds_.size();
  pfds_.push_back(pollfd{s.fd, events, 0});
  owners_.push_back(&s);
}

void Replayer::remove_fd(Session& s) {
  if (s.slot == SIZE_MAX) return;
  const size_t last = pfds_.size() - 1;
  if (s.slot != last) {
    pfds_[s.slot] = pfds_[last];
    owners_[s.slot] = owners_[last];
    owners_[s.slot]->slot = s.slot;
  }
  pfds_.pop_back();
  owners_.pop_back();
  s.slot = SIZE_MAX;
}

void Replayer::set_events(Session& s) {
  if (s.slot == SIZE_MAX) return;
  short ev = POLLIN;
  if (s.state == State::kConnecting) {
    ev = POLLOUT;
  } else if (s.released > 0 || s.ctrl_off < s.ctrl.size()) {
    ev |= POLLOUT;
  }
  pfds_[s.slot].events = ev;
}

// ---------------------------------------------------------------------------

void Replayer::progress(int64_t now, bool final_line) {
  if (!show_progress_) return;
  if (final_line) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    return;
  }
  if (now < next_progress_) return;
  next_progress_ = now + kProgressInterval;
  const double secs = static_cast<double>(now - start_ns_) / 1e9;
  std::string read;
  if (reader_.total_size() > 0)
    read = fmt::format(" | read {:.0f}%",
                       100.0 * static_cast<double>(reader_.consumed()) / static_cast<double>(reader_.total_size()));
  std::string lag = opts_.speed_max
                        ? std::string()
                        : fmt::format(" | lag p99 {:.2f} ms", static_cast<double>(report_.lag_p99_ns()) / 1e6);
  fmt::print(stderr, "\r\033[Kpgreplay {:.1f}s | sessions {} open, {} ok, {} failed | {} statements ({:.0f}/s){}{}",
             secs, replay_open_, report_.sessions_ok(), report_.sessions_failed(), report_.statements(),
             secs > 0 ? static_cast<double>(report_.statements()) / secs : 0.0, lag, read);
  std::fflush(stderr);
}

int64_t Replayer::next_wakeup(int64_t now) const {
  int64_t at = now + 1'000'000'000;
  if (more_to_read_) return now;
  if (!timers_.empty()) at = std::min(at, timers_.top().at);
  if (!reader_done_ && held_ && !opts_.speed_max) at = std::min(at, sched(held_->ts_ns) - read_ahead_ns_);
  if (!start_queue_.empty() && !opts_.speed_max) {
    auto it = sessions_.find(start_queue_.front());
    if (it != sessions_.end() && it->second->model.kind() != SessionModel::Kind::kUnknown)
      at = std::min(at, sched(it->second->model.open_ts()));
  }
  if (!cancels_.empty()) at = std::min(at, now + 1'000'000);  // cancels wait on other sessions' progress
  if (show_progress_) at = std::min(at, next_progress_);
  return std::max(at, now);
}

int Replayer::run() {
  std::vector<std::string> open_errors = reader_.open(opts_.captures);
  for (const std::string& e : open_errors) fmt::print(stderr, "pgreplay: cannot open {}\n", e);
  if (reader_.files() == 0) {
    for (const auto& d : reader_.damage()) fmt::print(stderr, "pgreplay: {}: {}\n", d.file, d.error.describe());
    fmt::print(stderr, "pgreplay: no capture could be read\n");
    return kExitUsage;
  }
  if (!open_errors.empty()) return kExitUsage;
  std::string error;
  target_ = resolve_target(opts_.host, opts_.port, &error);
  if (!target_) {
    fmt::print(stderr, "pgreplay: {}\n", error);
    return kExitUsage;
  }
  creds_ = std::make_unique<Credentials>(*target_, opts_.password_file);

  pgwire::TrackerOptions copts;
  copts.digest_rows = opts_.compare;
  pgwire::CaptureDecoder::Callbacks cb;
  cb.event = [this](const StatementEvent& ev, const pgwire::SessionInfo& info) {
    on_capture_event(info.session_id, ev);
  };
  cb.error = [this](const pgwire::SessionInfo& info, const pgwire::Error& e) {
    report_.add_warning(fmt::format("captured session {} cannot be decoded past offset {}: {}", info.session_id,
                                    e.offset, e.describe()));
  };
  decoder_ = std::make_unique<pgwire::CaptureDecoder>(copts, std::move(cb));

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rx_.resize(kReadChunk);
  read_ahead_ns_ = static_cast<int64_t>(opts_.read_ahead_s * 1e9);
  stall_ns_ = static_cast<int64_t>(opts_.stall_timeout_s * 1e9);
  show_progress_ = opts_.progress > 0 || (opts_.progress < 0 && isatty(STDERR_FILENO));
  start_ns_ = mono_ns();
  next_progress_ = start_ns_ + kProgressInterval;

  for (;;) {
    int64_t now = mono_ns();
    if (g_interrupted) {
      stop_all(now, "interrupted");
      free_finished();
      break;
    }
    // The target is gone (it refused several connections in a row and no
    // session is connected): the rest of the capture would only fail the same way.
    if (refused_in_a_row_ >= kRefusedToGiveUp && replay_open_ == 0) {
      stop_all(now, "target unreachable");
      free_finished();
      break;
    }
    read_some(now);
    start_due(now);
    check_cancels(now);
    fire_timers(now);
    free_finished();
    if (reader_done_ && sessions_.empty()) break;

    const int64_t wake = next_wakeup(now);
    const int64_t wait = std::max<int64_t>(0, wake - now);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    int n = ::ppoll(pfds_.data(), pfds_.size(), &ts, nullptr);

    if (n < 0 && errno != EINTR) {
      fmt::print(stderr, "pgreplay: poll: {}\n", errno_text(errno));
      stop_all(mono_ns(), "poll failed");
      free_finished();
      break;
    }
    now = mono_ns();
    // How late the OS woke us for a deadline: separates a busy machine from our own delays.
    if (n == 0 && wait > 0 && !opts_.speed_max) report_.wake_delay(now - wake);
    if (n > 0) {
      // Handling may add or remove slots: collect first.
      std::vector<std::pair<uint64_t, short>> ready;
      ready.reserve(static_cast<size_t>(n));
      for (size_t i = 0; i < pfds_.size(); ++i)
        if (pfds_[i].revents) ready.emplace_back(owners_[i]->id, pfds_[i].revents);
      for (const auto& [id, rev] : ready) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) continue;
        Session& s = *it->second;
        if (s.fd < 0) continue;
        if (s.state == State::kConnecting) {
          int err = 0;
          socklen_t len = sizeof(err);
          if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          if (err != 0) {
            connect_failed(err);
            finish(s, false, fmt::format("connection to {} failed: {}", target_->describe(), errno_text(err)), now);
          } else if (rev & (POLLOUT | POLLERR | POLLHUP)) {
            on_connected(s, now);
          }
          continue;
        }
        if (rev & (POLLIN | POLLHUP | POLLERR)) on_readable(s, now);
        if (s.fd >= 0 && (rev & POLLOUT)) flush(s, now);
        after_io(s, now);
      }
    }
    progress(now, false);
  }
  progress(0, true);

  const int64_t end = mono_ns();
  report_.set_run_time(end - start_ns_);
  report_.set_capture_span(capture_last_ - capture_t0_);
  for (std::string& w : creds_->take_warnings()) report_.add_warning(std::move(w));
  int code = report_.exit_code();
  // A report that could not be written is an error; errno is taken from the
  // very call that failed, before anything else can change it.
  std::string text = report_.text();
  int out_error = std::fputs(text.c_str(), stdout) == EOF ? errno : 0;
  if (std::fflush(stdout) != 0 && out_error == 0) out_error = errno;
  if (out_error != 0) {
    fmt::print(stderr, "pgreplay: cannot write the report to standard output: {}\n", errno_text(out_error));
    if (code == kExitOk) code = kExitUsage;
  }
  if (!opts_.report_file.empty()) {
    if (std::optional<std::string> failure = write_file_replacing(opts_.report_file, report_.json())) {
      fmt::print(stderr, "pgreplay: cannot write the report to {}: {}\n", opts_.report_file, *failure);
      if (code == kExitOk) code = kExitUsage;
    }
  }
  return code;
}

}  // namespace

int run_replay(const ReplayOptions& opts) {
  Replayer r(opts);
  return r.run();
}

}  // namespace pgreplay
