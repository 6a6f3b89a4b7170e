// pgproxy --check-config: what can be judged about the options without
// serving. Addresses are parsed and resolved, regexes compiled, certificates
// and keys loaded and matched, the directories of the files checked for
// writing. No port is bound and no file is created or opened for writing, so
// it can run next to a pgproxy serving with the same configuration.
#pragma once

#include <string>
#include <vector>

#include "proxy.hpp"

namespace CLI {
class App;
}

namespace pgproxy {

struct ConfigProblem {
  std::string option;  // "--log-user": the option at fault (the first one, when it takes two)
  std::string text;    // the whole sentence, naming the option: "--log-user '[a': brackets ([ ]) not balanced"
};

struct ConfigCheck {
  std::vector<ConfigProblem> problems;
  // One line of what pgproxy would do ("listen 127.0.0.1:6432; upstream ..."); only when there is no problem.
  std::string summary;

  bool ok() const { return problems.empty(); }
};

// Every problem, not just the first.
ConfigCheck check_config(const ProxyOptions& opts);

// "pgproxy: configuration OK" and the summary on stdout, 0; or each problem
// on stderr, 2.
int report_config_check(const ConfigCheck& check);

// app.parse() with pgproxy's reporting: -1 when parsed (go on), else the exit
// code (0 after --help or --version). A key of the --config file that is no
// option is named as such; with --check-config on the command line every
// failure exits 2.
int parse_options(CLI::App& app, int argc, char** argv);

}  // namespace pgproxy
