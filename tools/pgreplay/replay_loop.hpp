// The replay loop (Replayer), shared by its two files: replayer.cpp (the
// poll() loop, timers, starting sessions, cancels, progress, the report) and
// session_pacing.cpp (one session's frames released when due, written and
// read through its connection, and its end). Internal to pgreplay: the tool
// calls run_replay() (replayer.hpp).
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "capture_feed.hpp"
#include "conninfo.hpp"
#include "options.hpp"
#include "replay_session.hpp"
#include "report.hpp"

namespace pgreplay {

struct Timer {
  int64_t at;
  uint64_t id;
  bool operator>(const Timer& o) const { return at > o.at; }
};

class Replayer {
 public:
  explicit Replayer(const ReplayOptions& opts)
      : opts_(opts), report_(opts), login_notice_(opts), feed_(opts, report_, sessions_, budget_, timeline_) {}
  int run();

 private:
  void read_capture(int64_t now);
  void start_due(int64_t now);
  void check_cancels(int64_t now);
  bool connect(ReplaySession& s, int64_t now);
  void begin_session(ReplaySession& s, int64_t now);
  void on_connected(ReplaySession& s, int64_t now);

  // session_pacing.cpp: one session.
  void pump(ReplaySession& s, int64_t now);
  bool release_stall(ReplaySession& s, uint64_t need, int64_t now);
  void flush(ReplaySession& s, int64_t now);
  void on_readable(ReplaySession& s, int64_t now);
  void after_io(ReplaySession& s, int64_t now);
  void finish(ReplaySession& s, bool ok, const std::string& reason, int64_t now);
  void skip(ReplaySession& s, const std::string& reason);

  // Timers, ending, the pollfd array: replayer.cpp.
  void arm(ReplaySession& s, int64_t at, int64_t now);
  void on_timer(ReplaySession& s, int64_t now);
  void fire_timers(int64_t now);
  void free_finished();
  void stop_all(int64_t now, const std::string& why);
  void connect_failed(int err);

  // One pollfd slot per connected session.
  void add_fd(ReplaySession& s, short events);
  void remove_fd(ReplaySession& s);
  void set_events(ReplaySession& s);

  void progress(int64_t now, bool final_line);
  int64_t next_wakeup(int64_t now) const;
  int write_report(int code);

  const ReplayOptions& opts_;
  Report report_;
  EnvironmentLoginNotice login_notice_;
  std::optional<Target> target_;
  std::unique_ptr<Credentials> creds_;

  SessionTable sessions_;
  ReadAhead budget_;
  Timeline timeline_;
  CaptureFeed feed_;
  int64_t stall_ns_ = 0;

  std::vector<uint64_t> cancels_;
  std::vector<uint64_t> to_free_;
  uint32_t replay_open_ = 0;

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::vector<pollfd> pfds_;
  std::vector<ReplaySession*> owners_;

  std::vector<std::byte> rx_;
  bool show_progress_ = false;
  int64_t next_progress_ = 0;
  int refused_in_a_row_ = 0;
};

}  // namespace pgreplay
