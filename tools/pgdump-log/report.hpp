// pgdump-log --stats: what a DBA wants to know about a capture.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "pgwire/framer.hpp"
#include "pgwire/stats.hpp"
#include "pgwire/tracker.hpp"

namespace pgdump {

class Report {
 public:
  void session_open(const pgwire::SessionInfo& s, int64_t ts_ns);
  void session_close(const pgwire::SessionInfo& s, int64_t ts_ns);
  // A session whose start is not in the data (CaptureDecoder::Callbacks::partial).
  void session_partial(const pgwire::SessionInfo& s, int64_t ts_ns);
  void frame(pgwire::Direction dir, const pgwire::Frame& f);
  void event(const pgwire::StatementEvent& ev);

  std::string text(size_t top_n) const;
  std::string json(size_t top_n) const;

 private:
  struct Group {
    uint64_t sessions = 0;
    int64_t total_ns = 0;
  };
  uint64_t sessions_ = 0;
  uint64_t partial_ = 0;
  int64_t first_ns_ = 0, last_ns_ = 0;
  pgwire::LatencyHistogram session_durations_;
  std::unordered_map<uint64_t, int64_t> open_;  // session id -> open time (open sessions only)
  std::map<std::string, Group> by_user_, by_database_, by_client_;
  std::map<std::string, Group> by_tls_;  // "client leg | server leg"
  std::map<std::string, uint64_t> frontend_messages_, backend_messages_;
  std::map<std::string, uint64_t> by_kind_, by_outcome_, by_sqlstate_;
  pgwire::StatementStats statements_;
};

}  // namespace pgdump
