#include "statement_match.hpp"

namespace pgreplay {

using pgwire::StatementEvent;

namespace {

// Roughly what a queued statement event costs, for the read-ahead budget.
size_t event_bytes(const StatementEvent& ev) {
  size_t n = sizeof(StatementEvent) + ev.sql.size() + ev.tag.size() + ev.error_message.size();
  for (const auto& p : ev.params) n += sizeof(p) + (p.value ? p.value->size() : 0);
  return n;
}

}  // namespace

void StatementMatch::add_captured(const StatementEvent& ev, const SessionLabel& who, Report& report, size_t& buffered) {
  captured_.push_back(ev);
  bytes_ += event_bytes(ev);
  buffered += event_bytes(ev);
  match(who, report, buffered);
}

void StatementMatch::add_replayed(const StatementEvent& ev, const SessionLabel& who, Report& report, size_t& buffered) {
  replayed_.push_back(ev);
  bytes_ += event_bytes(ev);
  buffered += event_bytes(ev);
  match(who, report, buffered);
}

void StatementMatch::match(const SessionLabel& who, Report& report, size_t& buffered) {
  while (!captured_.empty() && !replayed_.empty()) {
    report.matched(who, index_++, captured_.front(), replayed_.front());
    const size_t n = event_bytes(captured_.front()) + event_bytes(replayed_.front());
    bytes_ -= n;
    buffered -= n;
    captured_.pop_front();
    replayed_.pop_front();
  }
}

void StatementMatch::drop(size_t& buffered) {
  captured_.clear();
  replayed_.clear();
  buffered -= bytes_;
  bytes_ = 0;
}

void StatementMatch::finish(bool completed, const SessionLabel& who, Report& report, size_t& buffered) {
  if (completed) {
    for (const StatementEvent& ev : captured_) report.unmatched(who, index_++, ev, true);
    for (const StatementEvent& ev : replayed_) report.unmatched(who, index_++, ev, false);
  }
  drop(buffered);
}

}  // namespace pgreplay
