// The capture feed: the capture side of a replay.
//
// Reads the captures as one stream in timestamp order (MergedReader), no
// further ahead than --read-ahead seconds of schedule (at --speed max: a
// little ahead of the open sessions), and not at all while all sessions
// together hold --max-memory bytes of read-ahead or a session that could go
// on holds more than --session-buffer: memory follows the number of
// concurrent sessions, not the size of the capture.
//
// Owns the reader and the CaptureDecoder (the captured statements, for
// --compare), and each session's CaptureSide: it creates the ReplaySession of
// every captured session (queued to start, in capture order), turns its
// frames into planned steps (SessionModel), hands its captured statements to
// its StatementMatch, and resolves which session a captured CancelRequest
// cancels (by the captured backend pid) and how far that one must have got.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "options.hpp"
#include "pgwire/capture_merge.hpp"
#include "pgwire/session_monitor.hpp"
#include "replay_session.hpp"
#include "report.hpp"

namespace pgreplay {

class CaptureFeed {
 public:
  CaptureFeed(const ReplayOptions& opts, Report& report, SessionTable& sessions, ReadAhead& budget, Timeline& timeline);
  CaptureFeed(const CaptureFeed&) = delete;  // the decoder's callbacks point here
  CaptureFeed& operator=(const CaptureFeed&) = delete;

  // Opens opts.captures: what could not be opened ("FILE: reason").
  std::vector<std::string> open();
  const pgwire::MergedReader& reader() const { return reader_; }

  // Reads what the schedule and the budgets allow now (a bounded number of
  // records per call); `replay_open`: connections the replay has open.
  void read_some(int64_t now, uint32_t replay_open);
  // Sessions that got records, or ended in the capture, since the last call.
  std::vector<uint64_t> take_touched() {
    std::vector<uint64_t> out;
    out.swap(touched_);
    return out;
  }
  // Sessions created and not started yet, in capture order: the loop takes them.
  std::deque<uint64_t>& start_queue() { return start_queue_; }
  const std::deque<uint64_t>& start_queue() const { return start_queue_; }

  bool done() const { return done_; }                  // the whole capture was read
  bool more_to_read() const { return more_to_read_; }  // the last call stopped at its record limit
  // When the record held back becomes due for reading (finite speed); INT64_MAX if none.
  int64_t next_read_at() const;
  // The session is being freed: its captured backend pid no longer finds it.
  void forget(const ReplaySession& s);

 private:
  bool budget_blocks() const;
  void on_record(const pgwire::CaptureRecord& rec);
  void end_of_capture();
  ReplaySession& session_for(uint64_t id, int64_t ts);
  void register_pid(ReplaySession& s);
  void touch(ReplaySession& s);
  void on_captured_statement(uint64_t id, const pgwire::StatementEvent& ev);

  const ReplayOptions& opts_;
  Report& report_;
  SessionTable& sessions_;
  ReadAhead& budget_;
  Timeline& timeline_;
  int64_t read_ahead_ns_ = 0;

  pgwire::MergedReader reader_;
  std::unique_ptr<pgwire::CaptureDecoder> decoder_;
  const pgwire::CaptureRecord* held_ = nullptr;  // read but not yet due
  bool done_ = false;
  bool more_to_read_ = false;

  std::deque<uint64_t> start_queue_;
  std::vector<uint64_t> touched_;
  std::unordered_map<int32_t, uint64_t> pid_to_session_;  // captured backend pid -> session
  uint32_t capture_open_ = 0;                             // sessions open in the capture at this point
  uint64_t partial_sessions_ = 0;                         // began before the capture data read
};

}  // namespace pgreplay
