// Which statements go to pgproxy's SQL log (--log-user, --log-database,
// --log-application, --log-min-duration-ms). The capture keeps every session,
// so pgdump-log can still show what the log left out, unless
// --capture-filter-same applies the session patterns to it too.
#pragma once

#include <regex.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pgwire/tracker.hpp"

namespace pgproxy {

class LogFilter {
 public:
  enum class Field : uint8_t { kUser, kDatabase, kApplication };

  LogFilter() = default;
  ~LogFilter();
  LogFilter(const LogFilter&) = delete;
  LogFilter& operator=(const LogFilter&) = delete;

  // POSIX extended regular expressions, unanchored (as grep -E): a session is
  // logged when, for each field given patterns, one of them matches. False
  // and `error` set when a pattern does not compile.
  bool add_patterns(Field field, const std::vector<std::string>& patterns, std::string& error);
  // Statements whose outcome was seen and took less than this are left out;
  // errors, statements skipped after an error and unknown outcomes never are.
  void set_min_duration_ns(int64_t ns) { min_duration_ns_ = ns; }

  bool filters_sessions() const { return !users_.empty() || !databases_.empty() || !applications_.empty(); }
  // Judged once per session, at its first statement, on its user, database
  // and application_name then (the startup packet's, unless that statement
  // set application_name).
  bool session_selected(const pgwire::SessionInfo& s) const;
  bool statement_selected(const pgwire::StatementEvent& ev) const;

 private:
  struct Pattern {
    std::string text;
    regex_t re;
  };
  static bool any_matches(const std::vector<std::unique_ptr<Pattern>>& patterns, const std::string& value);
  std::vector<std::unique_ptr<Pattern>> users_, databases_, applications_;
  int64_t min_duration_ns_ = 0;
};

}  // namespace pgproxy
