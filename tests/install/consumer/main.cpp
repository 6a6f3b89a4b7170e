// A program outside pgwire-toolkit, built against an installed libpgwire
// (tests/install/install_test.sh): it reads a capture, frames and tracks each
// session (CaptureDecoder: a ConnectionFramer and a ConnectionTracker per
// session) and prints every statement as pgproxy's SQL log line.
//   pgwire-consumer CAPTURE   the statements, as `pgdump-log CAPTURE` prints them
//   pgwire-consumer --version libpgwire's version
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "pgwire/capture.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/statement_log.hpp"
#include "pgwire/version.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::printf("%s %d.%d.%d\n", pgwire::kVersion, pgwire::kVersionMajor, pgwire::kVersionMinor, pgwire::kVersionPatch);
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CAPTURE | --version\n", argv[0]);
    return 2;
  }
  pgwire::Result<std::unique_ptr<pgwire::CaptureReader>> reader = pgwire::CaptureReader::open(argv[1]);
  if (!reader) {
    std::fprintf(stderr, "pgwire-consumer: %s\n", reader.error().describe().c_str());
    return 2;
  }

  int exit_code = 0;
  std::string out;
  pgwire::CaptureDecoder::Callbacks cb;
  cb.event = [&](const pgwire::StatementEvent& ev, const pgwire::SessionInfo& session) {
    pgwire::format_statement(pgwire::LogFormat::kText, ev, session, out);
  };
  cb.error = [&](const pgwire::SessionInfo& session, const pgwire::Error& e) {
    std::fprintf(stderr, "pgwire-consumer: session %llu: %s\n", static_cast<unsigned long long>(session.session_id),
                 e.describe().c_str());
    exit_code = 1;
  };
  pgwire::CaptureDecoder decoder(pgwire::TrackerOptions{}, cb);

  pgwire::CaptureRecord rec;
  int64_t last_ts = 0;
  for (;;) {
    pgwire::Result<bool> more = (*reader)->next(rec);
    if (!more) {
      std::fprintf(stderr, "pgwire-consumer: %s\n", more.error().describe().c_str());
      exit_code = 1;
      break;
    }
    if (!*more) break;
    last_ts = std::max(last_ts, rec.ts_ns);
    decoder.on_record(rec);
  }
  decoder.finish(last_ts);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return exit_code;
}
