// The loop of a replay (Replayer, declared in replay_loop.hpp): one ppoll()
// over every session's server connection, the timer queue, reading the
// capture when due, starting sessions (and captured cancel requests) when
// they are due, the progress line, and the report at the end. What one
// session does when it gets its turn is in session_pacing.cpp; the capture
// side is CaptureFeed's, the server connections ReplayConnection's, the
// --compare pairing StatementMatch's (replay_session.hpp: who owns what).
#include "replayer.hpp"

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
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "conninfo.hpp"
#include "output_file.hpp"
#include "pgwire/system.hpp"
#include "replay_loop.hpp"
#include "replay_session.hpp"
#include "report.hpp"
#include "schedule.hpp"

namespace pgreplay {

using pgwire::StatementEvent;

using pgwire::errno_text;

namespace {

volatile sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

constexpr size_t kReadChunk = 64u << 10;
constexpr int64_t kProgressInterval = 500'000'000;
constexpr int64_t kMaxCancelGap = 1'000'000'000;
// Connections refused in a row, with none open, after which the target counts as gone.
constexpr int kRefusedToGiveUp = 3;

}  // namespace

// ---------------------------------------------------------------------------
// Starting sessions

void Replayer::read_capture(int64_t now) {
  feed_.read_some(now, replay_open_);
  // Sessions that got frames or milestones may be able to go on.
  for (uint64_t id : feed_.take_touched()) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    ReplaySession& s = *it->second;
    s.capture.touched = false;
    const State state = s.state();
    if (state == State::kRunning) {
      pump(s, now);
      after_io(s, now);
    } else if (state == State::kFinished && s.capture.done) {
      to_free_.push_back(s.id);
    }
  }
}

void Replayer::start_due(int64_t now) {
  std::deque<uint64_t>& queue = feed_.start_queue();
  while (!queue.empty()) {
    auto it = sessions_.find(queue.front());
    if (it == sessions_.end() || it->second->state() != State::kPlanned) {
      queue.pop_front();
      continue;
    }
    ReplaySession& s = *it->second;
    const SessionModel::Kind kind = s.capture.model.kind();
    if (kind == SessionModel::Kind::kUnknown) {
      if (!s.capture.done) return;  // its startup packet is not read yet
      skip(s, s.capture.partial ? "partial: began before the capture data read" : "no startup packet in the capture");
      queue.pop_front();
      continue;
    }
    if (kind == SessionModel::Kind::kEncrypted) {
      skip(s, "encrypted (TLS/GSS) in the capture");
      queue.pop_front();
      continue;
    }
    if (kind == SessionModel::Kind::kCancel) {
      cancels_.push_back(s.id);
      queue.pop_front();
      continue;
    }
    if (!opts_.speed_max && now < timeline_.at(s.capture.model.open_ts())) return;
    if (opts_.speed_max && replay_open_ >= s.capture.max_conc) return;
    queue.pop_front();
    begin_session(s, now);
  }
}

void Replayer::check_cancels(int64_t now) {
  for (size_t i = 0; i < cancels_.size();) {
    auto it = sessions_.find(cancels_[i]);
    bool done = true;
    if (it != sessions_.end() && it->second->state() == State::kPlanned) {
      ReplaySession& s = *it->second;
      done = false;
      if (!s.capture.cancel_problem.empty()) {
        skip(s, s.capture.cancel_problem);
        done = true;
      } else if (opts_.speed_max || now >= timeline_.at(s.capture.model.startup_ts())) {
        auto t = sessions_.find(s.capture.cancel_target);
        if (t == sessions_.end() || t->second->state() == State::kFinished) {
          skip(s, "the session it cancels had already ended");
          done = true;
        } else if (const ReplaySession& target = *t->second;
                   target.state() == State::kRunning && target.conn.has_key() &&
                   target.out.frames_released >= s.capture.cancel_after_frames &&
                   // At full speed, still give the cancelled statement the time it had run
                   // (up to a second): a cancel the server gets before it reads the
                   // statement is ignored.
                   (!opts_.speed_max ||
                    now >= target.out.last_release + std::min<int64_t>(s.capture.cancel_gap, kMaxCancelGap))) {
          s.label.user = target.label.user;
          s.label.database = target.label.database;
          s.conn.prepare_cancel(target.conn.pid(), target.conn.key());
          connect(s, now);
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

bool Replayer::connect(ReplaySession& s, int64_t now) {
  const Target& t = *target_;
  const int64_t deadline = now + static_cast<int64_t>(opts_.connect_timeout_s * 1e9);
  if (std::optional<ReplayConnection::SysError> e = s.conn.connect(t, now, deadline)) {
    connect_failed(e->err);
    finish(s, false, fmt::format("connection to {} failed: {}", t.describe(), errno_text(e->err)), now);
    return false;
  }
  s.counted_open = true;
  ++replay_open_;
  add_fd(s, POLLOUT);
  arm(s, deadline, now);
  return true;
}

void Replayer::begin_session(ReplaySession& s, int64_t now) {
  const SessionModel& m = s.capture.model;
  auto [user, db] = resolve_login(opts_, m.param("user"), m.param("database"));
  for (std::string& w : login_notice_.check(m.param("user"), m.param("database"), user, db))
    report_.add_warning(std::move(w));
  s.label.user = user;
  s.label.database = db;
  s.label.application_name = m.param("application_name");

  pgwire::TrackerOptions topts;
  topts.digest_rows = opts_.compare;
  topts.max_param_bytes = 0;  // the capture side keeps the parameters for the report
  ReplaySession* sp = &s;
  std::optional<std::string> password = creds_->password(db, user);
  s.conn.prepare(
      topts,
      [this, sp](const StatementEvent& ev, const pgwire::SessionInfo&) {
        report_.replay_statement(ev);
        if (sp->capture.model.exact()) sp->statements.add_replayed(ev, sp->label, report_, budget_.buffered);
      },
      user, std::move(password), &s.out.matcher);
  for (std::string& w : creds_->take_warnings()) report_.add_warning(std::move(w));
  connect(s, now);
}

void Replayer::on_connected(ReplaySession& s, int64_t now) {
  if (s.is_cancel()) {
    s.conn.send_cancel();
  } else {
    s.conn.send_startup(s.capture.model.protocol(), s.capture.model.params(), s.label.user, s.label.database);
  }
  set_events(s);
  flush(s, now);
}

// ---------------------------------------------------------------------------
// One session

void Replayer::arm(ReplaySession& s, int64_t at, int64_t now) {
  if (at < s.timer_at || s.timer_at <= now) {
    s.timer_at = at;
    timers_.push(Timer{at, s.id});
  }
}

void Replayer::free_finished() {
  for (uint64_t id : to_free_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    ReplaySession& s = *it->second;
    if (s.state() != State::kFinished || !s.capture.done) continue;
    // Known only once its first query was read: counted here, not at the start.
    const bool exact = s.capture.model.exact();
    if (exact) report_.note_exact_session();
    // Statements only one side has (the session completed on both).
    s.statements.finish(!s.failed && exact, s.label, report_, budget_.buffered);
    feed_.forget(s);
    sessions_.erase(it);
  }
  to_free_.clear();
}

void Replayer::on_timer(ReplaySession& s, int64_t now) {
  const State state = s.state();
  if ((state == State::kConnecting || state == State::kLogin) && now >= s.conn.deadline()) {
    finish(s, false,
           fmt::format("timeout: no login within {:g} s ({})", opts_.connect_timeout_s,
                       state == State::kConnecting ? "connecting" : "authenticating"),
           now);
    return;
  }
  if (state == State::kRunning) pump(s, now);
}

void Replayer::fire_timers(int64_t now) {
  while (!timers_.empty() && timers_.top().at <= now) {
    Timer t = timers_.top();
    timers_.pop();
    auto it = sessions_.find(t.id);
    if (it == sessions_.end()) continue;
    ReplaySession& s = *it->second;
    if (s.timer_at == t.at) s.timer_at = INT64_MAX;
    on_timer(s, now);
  }
}

void Replayer::connect_failed(int err) {
  if (err == ECONNREFUSED || err == ENOENT || err == EHOSTUNREACH || err == ENETUNREACH) ++refused_in_a_row_;
}

void Replayer::stop_all(int64_t now, const std::string& why) {
  report_.set_stopped(why);
  std::vector<ReplaySession*> all;
  for (auto& [id, sp] : sessions_) all.push_back(sp.get());
  for (ReplaySession* s : all) {
    s->capture.done = true;  // nothing more will be read: let free_finished() account for it
    to_free_.push_back(s->id);
    if (s->state() == State::kPlanned) {
      skip(*s, why + " before it started");
    } else {
      finish(*s, false, why, now);
    }
  }
}

// ---------------------------------------------------------------------------
// pollfd array: one slot per connected session.

void Replayer::add_fd(ReplaySession& s, short events) {
  s.slot = pfds_.size();
  pfds_.push_back(pollfd{s.conn.fd(), events, 0});
  owners_.push_back(&s);
}

void Replayer::remove_fd(ReplaySession& s) {
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

void Replayer::set_events(ReplaySession& s) {
  if (s.slot == SIZE_MAX) return;
  short ev = POLLIN;
  if (s.state() == State::kConnecting) {
    ev = POLLOUT;
  } else if (s.out.released > 0 || s.conn.own_messages_pending()) {
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
  const double secs = static_cast<double>(now - timeline_.start_ns) / 1e9;
  std::string read;
  const pgwire::MergedReader& reader = feed_.reader();
  if (reader.total_size() > 0)
    read = fmt::format(" | read {:.0f}%",
                       100.0 * static_cast<double>(reader.consumed()) / static_cast<double>(reader.total_size()));
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
  if (feed_.more_to_read()) return now;
  if (!timers_.empty()) at = std::min(at, timers_.top().at);
  at = std::min(at, feed_.next_read_at());
  const std::deque<uint64_t>& queue = feed_.start_queue();
  if (!queue.empty() && !opts_.speed_max) {
    auto it = sessions_.find(queue.front());
    if (it != sessions_.end() && it->second->capture.model.kind() != SessionModel::Kind::kUnknown)
      at = std::min(at, timeline_.at(it->second->capture.model.open_ts()));
  }
  if (!cancels_.empty()) at = std::min(at, now + 1'000'000);  // cancels wait on other sessions' progress
  if (show_progress_) at = std::min(at, next_progress_);
  return std::max(at, now);
}

int Replayer::run() {
  std::vector<std::string> open_errors = feed_.open();
  for (const std::string& e : open_errors) fmt::print(stderr, "pgreplay: cannot open {}\n", e);
  if (feed_.reader().files() == 0) {
    for (const auto& d : feed_.reader().damage()) fmt::print(stderr, "pgreplay: {}: {}\n", d.file, d.error.describe());
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

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rx_.resize(kReadChunk);
  stall_ns_ = static_cast<int64_t>(opts_.stall_timeout_s * 1e9);
  show_progress_ = opts_.progress > 0 || (opts_.progress < 0 && isatty(STDERR_FILENO));
  timeline_.speed_max = opts_.speed_max;
  timeline_.speed = opts_.speed;
  timeline_.start_ns = pgwire::monotonic_ns();
  next_progress_ = timeline_.start_ns + kProgressInterval;

  for (;;) {
    int64_t now = pgwire::monotonic_ns();
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
    read_capture(now);
    start_due(now);
    check_cancels(now);
    fire_timers(now);
    free_finished();
    if (feed_.done() && sessions_.empty()) break;

    const int64_t wake = next_wakeup(now);
    const int64_t wait = std::max<int64_t>(0, wake - now);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    int n = ::ppoll(pfds_.data(), pfds_.size(), &ts, nullptr);

    if (n < 0 && errno != EINTR) {
      fmt::print(stderr, "pgreplay: poll: {}\n", errno_text(errno));
      stop_all(pgwire::monotonic_ns(), "poll failed");
      free_finished();
      break;
    }
    now = pgwire::monotonic_ns();
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
        ReplaySession& s = *it->second;
        if (s.conn.fd() < 0) continue;
        if (s.state() == State::kConnecting) {
          if (const int err = s.conn.connect_error(); err != 0) {
            connect_failed(err);
            finish(s, false, fmt::format("connection to {} failed: {}", target_->describe(), errno_text(err)), now);
          } else if (rev & (POLLOUT | POLLERR | POLLHUP)) {
            on_connected(s, now);
          }
          continue;
        }
        if (rev & (POLLIN | POLLHUP | POLLERR)) on_readable(s, now);
        if (s.conn.fd() >= 0 && (rev & POLLOUT)) flush(s, now);
        after_io(s, now);
      }
    }
    progress(now, false);
  }
  progress(0, true);

  report_.set_run_time(pgwire::monotonic_ns() - timeline_.start_ns);
  report_.set_capture_span(timeline_.capture_last - timeline_.capture_t0);
  for (std::string& w : creds_->take_warnings()) report_.add_warning(std::move(w));
  return write_report(report_.exit_code());
}

// Prints the report and writes --report; a report that could not be written
// is an error, named by the errno of the very call that failed.
int Replayer::write_report(int code) {
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
  if (!opts_.report_html_file.empty()) {
    HtmlOptions html;
    html.inputs = opts_.captures;
    if (std::optional<std::string> failure = write_file_replacing(opts_.report_html_file, report_.html(html))) {
      fmt::print(stderr, "pgreplay: cannot write the report to {}: {}\n", opts_.report_html_file, *failure);
      if (code == kExitOk) code = kExitUsage;
    }
  }
  return code;
}

int run_replay(const ReplayOptions& opts) {
  Replayer r(opts);
  return r.run();
}

}  // namespace pgreplay
