// Statement matching for --compare (and for the error table's "also failed in
// the capture"): pairs each session's captured statements (the capture's
// backend frames, through CaptureDecoder) with its replayed ones (the replay
// connection's SessionMonitor) by position. Each side's events wait in a
// queue until the other side has its counterpart; each pair goes to
// Report::matched in order, and what one side still has when the session
// ended on both goes to Report::unmatched.
//
// Queued events are read-ahead memory: their size is added to and taken
// from `buffered`, the total the capture feed budgets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "pgwire/tracker.hpp"
#include "report.hpp"

namespace pgreplay {

class StatementMatch {
 public:
  void add_captured(const pgwire::StatementEvent& ev, const SessionLabel& who, Report& report, size_t& buffered);
  void add_replayed(const pgwire::StatementEvent& ev, const SessionLabel& who, Report& report, size_t& buffered);
  // The session failed: its statements are not compared.
  void drop(size_t& buffered);
  // The session is over on both sides: `completed` (it did not fail) reports
  // the statements only one side has; the queues' memory is given back.
  void finish(bool completed, const SessionLabel& who, Report& report, size_t& buffered);

 private:
  void match(const SessionLabel& who, Report& report, size_t& buffered);

  std::deque<pgwire::StatementEvent> captured_;
  std::deque<pgwire::StatementEvent> replayed_;
  size_t bytes_ = 0;    // their share of `buffered`
  uint64_t index_ = 0;  // position of the next pair in the session
};

}  // namespace pgreplay
