#include "log_filter.hpp"

#include <fmt/format.h>

namespace pgproxy {

LogFilter::~LogFilter() {
  for (auto* list : {&users_, &databases_, &applications_}) {
    for (auto& p : *list) regfree(&p->re);
  }
}

bool LogFilter::add_patterns(Field field, const std::vector<std::string>& patterns, std::string& error) {
  auto& list = field == Field::kUser ? users_ : field == Field::kDatabase ? databases_ : applications_;
  const char* option = field == Field::kUser       ? "--log-user"
                       : field == Field::kDatabase ? "--log-database"
                                                   : "--log-application";
  for (const std::string& text : patterns) {
    auto p = std::make_unique<Pattern>();
    p->text = text;
    int rc = regcomp(&p->re, text.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char why[256];
      regerror(rc, &p->re, why, sizeof why);
      error = fmt::format("{} '{}': {}", option, text, why);
      return false;
    }
    list.push_back(std::move(p));
  }
  return true;
}

bool LogFilter::any_matches(const std::vector<std::unique_ptr<Pattern>>& patterns, const std::string& value) {
  if (patterns.empty()) return true;
  for (const auto& p : patterns) {
    if (regexec(&p->re, value.c_str(), 0, nullptr, 0) == 0) return true;
  }
  return false;
}

bool LogFilter::session_selected(const pgwire::SessionInfo& s) const {
  return any_matches(users_, s.user) && any_matches(databases_, s.database) &&
         any_matches(applications_, s.application_name);
}

bool LogFilter::statement_selected(const pgwire::StatementEvent& ev) const {
  if (min_duration_ns_ <= 0 || ev.outcome != pgwire::Outcome::kOk || ev.end_ns == 0) return true;
  return ev.end_ns - ev.start_ns >= min_duration_ns_;
}

}  // namespace pgproxy
