// Debian's tshark (Wireshark 4.0) as the reader of the pcap files we write:
// the pgsql dissector on a given TCP port, IP and TCP checksums verified.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy_process.hpp"
#include "subprocess.hpp"

namespace pgwire::test {

inline const std::string kTshark = "/usr/bin/tshark";

inline bool have_tshark() { return ::access(kTshark.c_str(), X_OK) == 0; }

// tshark -r PCAP, PORT dissected as pgsql, checksums checked, then `args`.
inline CommandResult tshark(const std::string& pcap, uint16_t port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kTshark,
                                   "-r",
                                   pcap,
                                   "-d",
                                   "tcp.port==" + std::to_string(port) + ",pgsql",
                                   "-o",
                                   "ip.check_checksum:TRUE",
                                   "-o",
                                   "tcp.check_checksum:TRUE"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// The pgsql.query fields (Query and Parse messages) in packet order, one
// element per message: tshark joins several in one packet, here by \x01,
// which is split again. `r` is the run, for the caller to check.
inline std::vector<std::string> tshark_queries(const std::string& pcap, uint16_t port, CommandResult* r) {
  *r = tshark(pcap, port, {"-Y", "pgsql.query", "-T", "fields", "-E", "aggregator=\x01", "-e", "pgsql.query"});
  std::vector<std::string> out;
  for (const std::string& l : lines_of(r->out)) {
    size_t from = 0;
    for (size_t at; (at = l.find('\x01', from)) != std::string::npos; from = at + 1) {
      out.push_back(l.substr(from, at - from));
    }
    out.push_back(l.substr(from));
  }
  return out;
}

}  // namespace pgwire::test
