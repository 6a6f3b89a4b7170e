// The options a tool's --help lists (CLI11's layout: "  -f,--format TYPE  description"), for
// tests that hold other things to them: the man pages, pgproxy's --config keys.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace pgwire::test {

struct HelpOption {
  std::string name;  // "--log-format"
  std::string type;  // what --help shows after the names: "TEXT:{text,json}=text"; "" for a flag
};

inline std::vector<HelpOption> help_long_options(const std::string& help) {
  std::vector<HelpOption> out;
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("  -")) continue;
    const size_t gap = line.find("  ", 2);  // between the names (and type) and the description
    const std::string head = line.substr(2, gap == std::string::npos ? std::string::npos : gap - 2);
    const size_t space = head.find(' ');
    const std::string names = head.substr(0, space);
    const std::string type = space == std::string::npos ? "" : head.substr(space + 1);
    std::istringstream parts(names);
    for (std::string name; std::getline(parts, name, ',');) {
      if (name.starts_with("--")) out.push_back({name, type});
    }
  }
  return out;
}

}  // namespace pgwire::test
