// Fuzz target: render_binary_value, every type it knows.
//
// The input's first byte picks the type (modulo the number of known types),
// the rest is the value. Oracles: nothing crashes or reads out of bounds
// (sanitizers); a refused value leaves the output as it was; the same bytes
// always give the same text; and the SQL log line of the value as a binary
// parameter holds either that text or the value's hex.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pgwire/binary_values.hpp"
#include "pgwire/statement_log.hpp"
#include "pgwire/tracker.hpp"

namespace {

const std::vector<uint32_t>& known_types() {
  static const std::vector<uint32_t> oids = [] {
    std::vector<uint32_t> v;
    for (uint32_t oid = 0; oid < 4000; ++oid) {
      if (pgwire::type_name(oid) != nullptr) v.push_back(oid);
    }
    return v;
  }();
  return oids;
}

[[noreturn]] void fail(const char* what, uint32_t oid) {
  std::fprintf(stderr, "binary_values_fuzz: %s (type %u)\n", what, oid);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::vector<uint32_t>& oids = known_types();
  const uint32_t oid = oids[data[0] % oids.size()];
  const pgwire::Bytes value{reinterpret_cast<const std::byte*>(data + 1), size - 1};
  std::string first = "x";
  const bool ok = pgwire::render_binary_value(oid, value, first);
  if (!ok && first != "x") fail("a refused value changed the output", oid);
  std::string second = "x";
  if (pgwire::render_binary_value(oid, value, second) != ok || second != first) fail("not deterministic", oid);

  pgwire::StatementEvent ev;
  ev.params.push_back(pgwire::StatementParam{std::string(reinterpret_cast<const char*>(data + 1), size - 1), 1, oid});
  std::string line;
  pgwire::format_statement(pgwire::LogFormat::kText, ev, pgwire::SessionInfo{}, line);
  const std::string hex = "$1=x'" + pgwire::to_hex(value) + "'::" + std::to_string(oid);
  if (!ok && line.find(hex) == std::string::npos) fail("a refused value is not shown as hex", oid);
  pgwire::format_statement(pgwire::LogFormat::kJson, ev, pgwire::SessionInfo{}, line);
  return 0;
}
