// pgdump-log: reads pgwire-toolkit captures offline and prints them as the
// SQL log pgproxy writes, as JSON, as a per-message trace, as statistics, or
// as a pcap file for Wireshark.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pgwire/capture_merge.hpp"
#include "pgwire/csvlog.hpp"
#include "pgwire/pcap_writer.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/statement_log.hpp"
#include "pgwire/system.hpp"
#include "pgwire/text.hpp"
#include "pgwire/trace.hpp"
#include "pgwire/version.hpp"
#include "report.hpp"

using namespace pgwire;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitDamaged = 1;
constexpr int kExitUsage = 2;

// Buffered output (stdout or -o): one fwrite per 256 KiB.
class Output {
 public:
  ~Output() { flush(); }
  void set_file(FILE* file) { file_ = file; }
  std::string& buffer() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= (256 << 10)) flush();
  }
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size()) failed_ = true;
    buf_.clear();
    if (std::fflush(file_) != 0) failed_ = true;
  }
  bool failed() const { return failed_ || std::ferror(file_) != 0; }

 private:
  FILE* file_ = stdout;
  std::string buf_;
  bool failed_ = false;
};

struct Filters {
  std::set<uint64_t> sessions;
  std::string user, database;
  std::optional<int64_t> since, until;
  std::optional<std::regex> grep;

  bool selects_sessions() const { return !sessions.empty() || !user.empty() || !database.empty(); }
  bool session_ok(const SessionInfo& s) const {
    if (!sessions.empty() && !sessions.count(s.session_id)) return false;
    if (!user.empty() && s.user != user) return false;
    if (!database.empty() && s.database != database) return false;
    return true;
  }
  bool time_ok(int64_t ts) const { return (!since || ts >= *since) && (!until || ts < *until); }
  bool text_ok(const std::string& text) const { return !grep || std::regex_search(text, *grep); }
};

const char* password_message_name(PasswordKind pk) {
  switch (pk) {
    case PasswordKind::kPassword: return "PasswordMessage";
    case PasswordKind::kSaslInitial: return "SASLInitialResponse";
    case PasswordKind::kSasl: return "SASLResponse";
    case PasswordKind::kGss: return "GSSResponse";
  }
  return "PasswordMessage";
}

class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled && total > 0), total_(total) {}
  // Called per record: `consumed` (which asks every reader) is only called
  // when the bar may be redrawn.
  template <class Consumed>
  void update(const Consumed& consumed) {
    if (!enabled_ || (++calls_ & 1023) != 0) return;
    const uint64_t done = consumed();
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    std::fprintf(stderr, "\r%5.1f%%  %llu / %llu MB", 100.0 * static_cast<double>(done) / static_cast<double>(total_),
                 static_cast<unsigned long long>(done >> 20), static_cast<unsigned long long>(total_ >> 20));
  }
  void done() {
    if (enabled_) std::fprintf(stderr, "\r%*s\r", 40, "");
  }

 private:
  bool enabled_;
  uint64_t total_;
  uint64_t calls_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

namespace {

// What the packet captures held that is not in the output: said on stderr, as warnings.
void print_pcap_notes(const PcapStats& s) {
  auto note = [](uint64_t n, const char* what) {
    if (n > 0)
      std::fprintf(stderr, "pgdump-log: warning: packet captures: %llu %s\n", static_cast<unsigned long long>(n), what);
  };
  note(s.encrypted_sessions, "encrypted sessions (TLS or GSS) skipped");
  note(s.not_postgres, "connections to a PostgreSQL port that did not speak the protocol, skipped");
  note(s.fragments, "IP fragments not reassembled (the sessions they belong to are damaged there)");
  note(s.malformed, "packets whose headers could not be decoded, skipped");
  note(s.buffer_limit_hits, "times the out-of-order buffering limit was hit");
}

int run(int argc, char** argv) {
  CLI::App app{"pgdump-log: decode pgwire-toolkit captures offline (SQL log, JSON, trace, statistics, pcap)."};
  app.footer(
      "Input: capture files, zstd-compressed ones included (recognised by their content, not their name),\n"
      "or directories, which stand for the capture files in them (other files, such as the SQL log, are\n"
      "left out). Several inputs are merged by time. The files of one rotated set (pgproxy --rotate-*),\n"
      "given as a directory, a glob or a list, are read one after another as one stream: a session that\n"
      "spans files is one session. Files missing from a set are reported; a session whose start is not in\n"
      "what was read is partial (user and database unknown) and said so on stderr.\n"
      "\n"
      "Packet captures (pcap and pcapng, e.g. tcpdump -w) are read too, recognised by their magic, stdin\n"
      "included (tcpdump -i any -w - port 5432 | pgdump-log -): the PostgreSQL connections in them (to a\n"
      "--port, or any whose client opens with a startup packet) are put back together and read as\n"
      "sessions. Encrypted sessions are skipped; a packet the capture lost ends its session, reported as\n"
      "damage with the packet's number and offset (docs/pcap-input.md).\n"
      "\n"
      "--format pcap writes a classic pcap (nanosecond timestamps) for Wireshark: read it with\n"
      "'tshark -r FILE -d tcp.port==5432,pgsql' (the server's port). Each session is a TCP connection over\n"
      "Ethernet and IPv4 or IPv6 with a handshake, a FIN exchange if the capture saw it end, correct checksums\n"
      "and at most 65495 payload bytes a packet. Real addresses and ports are used where the capture has\n"
      "them; a Unix-socket client becomes 127.0.0.2 and up, port 1024 + session id modulo 64512; a server not\n"
      "on TCP 127.0.0.1, port that of its .s.PGSQL.PORT socket (else 5432); an IPv4 address next to an IPv6\n"
      "one ::ffff:a.b.c.d. Password and SASL messages, of which captures keep only the header, are left out;\n"
      "so are the SSLRequest and 'S' of a TLS connection the proxy terminated (the capture holds the decrypted\n"
      "stream). A partial session begins at its first whole frame, without a handshake; a session still open\n"
      "at the end gets no FIN (docs/pcap-export.md).\n"
      "\n"
      "Exit status: 0 all input read; 1 some input was damaged (truncated, bad checksum, impossible frame) —\n"
      "every valid record before the damage was printed, the damage is reported on stderr with file and\n"
      "offset (of a compressed file: in its decompressed data); 2 usage error or a file that could not be\n"
      "opened.");
  std::vector<std::string> files;
  std::string format = "sql", log_format = "text", stats_format = "text";
  bool stats = false, check = false, hide_volatile = false, no_progress = false, read_ahead = false;
  size_t top_n = 10;
  std::vector<uint64_t> sessions;
  Filters filters;
  std::string since, until, grep;
  std::string report_html;
  std::string output = "-";
  size_t report_top = 100;
  app.add_option("captures", files,
                 "capture files (zstd-compressed too), pcap/pcapng files, or directories of them; '-' for stdin")
      ->required();
  std::vector<uint16_t> ports;
  app.add_option("--port,--pcap-port", ports,
                 "packet captures only: server ports whose TCP connections are PostgreSQL (repeatable or a "
                 "comma-separated list; default 5432)")
      ->delimiter(',')
      ->check(CLI::Range(1, 65535));
  app.add_option("-f,--format", format,
                 "output: sql (the SQL log), json (statement events), trace (every frame), csvlog (PostgreSQL's "
                 "csvlog, for pgBadger -f csv and pgreplay -c; the same as --format sql --log-format csvlog), pcap "
                 "(packets for Wireshark, see below)")
      ->check(CLI::IsMember({"sql", "json", "trace", "csvlog", "pcap"}));
  app.add_option("-o,--output", output,
                 "write the output (of every format, --stats and --check) to FILE, created mode 0600; '-' for stdout")
      ->type_name("FILE");
  app.add_option("--log-format", log_format,
                 "line format of --format sql: text, json or csvlog, as pgproxy's --log-format")
      ->check(CLI::IsMember({"text", "json", "csvlog"}));
  app.add_flag("--stats", stats, "print a summary instead of the statements");
  app.add_option("--stats-format", stats_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  app.add_option("--top", top_n, "statements in the top lists of --stats")->check(CLI::PositiveNumber);
  app.add_option("--report-html", report_html,
                 "also write a self-contained HTML report (charts over time, statements, errors, sessions) to FILE, "
                 "in the same pass as the other outputs")
      ->type_name("FILE");
  app.add_option("--report-top", report_top,
                 "statements in the report's table: the N with the most total time and the N most frequent")
      ->check(CLI::PositiveNumber);
  app.add_flag("--hide-volatile", hide_volatile, "trace: hide times, pids, keys and nonces, for regression diffs");
  app.add_option("--session", sessions, "only these session ids (repeatable)");
  app.add_option("--user", filters.user, "only sessions of this user");
  app.add_option("--database", filters.database, "only sessions on this database");
  app.add_option("--since", since, "only from this time (UTC, e.g. 2026-11-28T03:00:00Z)");
  app.add_option("--until", until, "only before this time (UTC)");
  app.add_option("--grep", grep, "only statements (or trace lines) matching this regular expression");
  app.add_flag("--check", check, "validate the captures and print a one-line verdict per file");
  app.add_flag("--no-progress", no_progress, "no progress bar on stderr");
  app.add_flag("--read-ahead", read_ahead,
               "read and checksum regular files on a second thread (faster only if a core is otherwise idle)");
  app.set_version_flag("--version", fmt::format("pgdump-log {}", pgwire::kVersion));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  filters.sessions.insert(sessions.begin(), sessions.end());
  const bool pcap = format == "pcap";
  if (pcap && (stats || check)) {
    std::fprintf(stderr, "pgdump-log: --format pcap writes packets: it cannot go with --stats or --check\n");
    return kExitUsage;
  }
  if (pcap && !grep.empty()) {
    std::fprintf(stderr,
                 "pgdump-log: --grep selects statements or lines, not packets: use --session, --user, --database, "
                 "--since or --until with --format pcap\n");
    return kExitUsage;
  }
  const bool to_stdout = output == "-";
  if (pcap && to_stdout && isatty(STDOUT_FILENO)) {
    std::fprintf(stderr, "pgdump-log: not writing a binary pcap to a terminal: use -o FILE, or a pipe\n");
    return kExitUsage;
  }
  for (auto [text, slot] : {std::pair{&since, &filters.since}, std::pair{&until, &filters.until}}) {
    if (text->empty()) continue;
    int64_t ns;
    if (!parse_iso8601_utc(*text, &ns)) {
      std::fprintf(stderr, "pgdump-log: cannot read the time '%s' (use 2026-11-28T03:00:00Z)\n", text->c_str());
      return kExitUsage;
    }
    *slot = ns;
  }
  if (!grep.empty()) {
    try {
      filters.grep.emplace(grep, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      std::fprintf(stderr, "pgdump-log: bad --grep expression: %s\n", e.what());
      return kExitUsage;
    }
  }

  // Opened before the pass, so that a path that cannot be written fails at
  // once rather than after reading a day of traffic.
  std::unique_ptr<FILE, int (*)(FILE*)> html_file(nullptr, &std::fclose);
  if (!report_html.empty()) {
    // Mode 0600: its examples show statements with their parameters.
    const int fd = open_private(report_html, O_TRUNC);
    html_file.reset(fd < 0 ? nullptr : ::fdopen(fd, "w"));
    if (fd >= 0 && !html_file) {
      const int err = errno;
      ::close(fd);
      errno = err;
    }
    if (!html_file) {
      std::fprintf(stderr, "pgdump-log: cannot write the report %s: %s\n", report_html.c_str(), std::strerror(errno));
      return kExitUsage;
    }
  }

  // Opened before the pass too.
  int output_fd = STDOUT_FILENO;
  std::unique_ptr<FILE, int (*)(FILE*)> output_file(nullptr, &std::fclose);
  if (!to_stdout) {
    output_fd = open_private(output, O_TRUNC);  // holds captured data
    if (output_fd < 0) {
      std::fprintf(stderr, "pgdump-log: cannot write %s: %s\n", output.c_str(), std::strerror(errno));
      return kExitUsage;
    }
    if (!pcap) {
      output_file.reset(::fdopen(output_fd, "w"));
      if (!output_file) {
        std::fprintf(stderr, "pgdump-log: cannot write %s: %s\n", output.c_str(), std::strerror(errno));
        ::close(output_fd);
        return kExitUsage;
      }
    }
  }
  std::unique_ptr<PcapWriter> pcap_writer;
  if (pcap) {
    auto w = PcapWriter::from_fd(output_fd, /*owns_fd=*/!to_stdout);
    if (!w) {
      std::fprintf(stderr, "pgdump-log: %s: %s\n", output.c_str(), w.error().describe().c_str());
      return kExitUsage;
    }
    pcap_writer = std::move(*w);
  }

  MergedReader reader;
  PcapOptions pcap_opts;
  if (!ports.empty()) pcap_opts.ports = ports;
  reader.set_pcap_options(pcap_opts);
  // Not the default: the hand-over costs CPU (copies, another core's cache),
  // and on the 2-vCPU machines we measured it was as often slower as faster.
  std::vector<std::string> open_errors = reader.open(files, read_ahead);
  for (const std::string& e : open_errors) std::fprintf(stderr, "pgdump-log: %s\n", e.c_str());
  if (!open_errors.empty() && reader.files() == 0) return kExitUsage;
  for (const std::string& w : reader.warnings()) std::fprintf(stderr, "pgdump-log: warning: %s\n", w.c_str());

  const bool trace = format == "trace" && !stats && !check;
  const bool statements = !trace && !stats && !check && !pcap;
  LogFormat line_format = LogFormat::kText;
  if (format == "json" || (format == "sql" && log_format == "json")) line_format = LogFormat::kJson;
  if (format == "csvlog" || (format == "sql" && log_format == "csvlog")) line_format = LogFormat::kCsvlog;
  const bool csvlog = statements && line_format == LogFormat::kCsvlog;
  // csvlog lines are numbered per session and begin and end with it.
  std::unordered_map<uint64_t, CsvlogSession> csv_sessions;
  auto csv_session = [&](const SessionInfo& s) -> CsvlogSession& {
    return csv_sessions.try_emplace(s.session_id, int64_t{0}).first->second;
  };
  TraceOptions trace_opts;
  trace_opts.hide_volatile = hide_volatile;

  Output out;
  if (output_file) out.set_file(output_file.get());
  const bool reporting = stats || html_file;
  pgdump::Report report(/*examples=*/html_file != nullptr);
  uint64_t records = 0, frames = 0, events = 0, framing_errors = 0, partial_sessions = 0;

  CaptureDecoder::Callbacks cb;
  cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
    ++events;
    if (!filters.session_ok(s) || !filters.time_ok(ev.start_ns) || !filters.text_ok(ev.sql)) return;
    if (reporting) report.event(ev, s);
    if (csvlog) {
      csv_session(s).statement(ev, s, out.buffer());
      out.maybe_flush();
    } else if (statements) {
      format_statement(line_format, ev, s, out.buffer());
      out.maybe_flush();
    }
  };
  cb.frame = [&](const SessionInfo& s, Direction dir, const Frame& f, int64_t ts, PasswordKind pk, bool redacted) {
    ++frames;
    if (!filters.session_ok(s) || !filters.time_ok(ts)) return;
    if (reporting) report.frame(dir, f);
    if (!trace || !f.first) return;
    std::string line;
    if (hide_volatile) {
      line = "-";
    } else {
      append_iso8601_utc(line, ts);
    }
    fmt::format_to(std::back_inserter(line), " {} ", s.session_id);
    if (redacted) {
      fmt::format_to(std::back_inserter(line), "{} {} {} <redacted>", direction_name(dir), f.length,
                     password_message_name(pk));
    } else {
      line += trace_frame(dir, f, pk, trace_opts);
    }
    if (!filters.text_ok(line)) return;
    out.buffer() += line;
    out.buffer() += '\n';
    out.maybe_flush();
  };
  if (!trace && !reporting && !check) cb.frame = nullptr;  // not needed: spare a call per frame
  cb.session_open = [&](const SessionInfo& s, int64_t ts, std::string_view) {
    if (reporting) report.session_open(s, ts);
    // A writer repeats SessionOpen in every file of a rotated set: the session
    // began at the first.
    if (csvlog) csv_sessions.try_emplace(s.session_id, ts);
  };
  cb.session_close = [&](const SessionInfo& s, int64_t ts, std::string_view reason) {
    if (reporting && filters.session_ok(s)) report.session_close(s, ts);
    if (!csvlog) return;
    auto it = csv_sessions.find(s.session_id);
    if (it == csv_sessions.end()) return;
    // The end of the input is not the end of the session: no disconnection.
    if (reason != kCaptureEndedReason && filters.session_ok(s) && filters.time_ok(ts)) {
      it->second.disconnected(s, ts, out.buffer());
      out.maybe_flush();
    }
    csv_sessions.erase(it);
  };
  if (csvlog) {
    cb.ready = [&](const SessionInfo& s, int64_t ts) {
      if (!filters.session_ok(s) || !filters.time_ok(ts)) return;
      csv_session(s).connected(s, out.buffer());
    };
  }
  // The trace shows how each leg of a session was protected.
  if (trace) {
    cb.session_meta = [&](const SessionInfo& s, int64_t ts, std::string_view key, Bytes value) {
      if (key != kMetaClientTls && key != kMetaServerTls) return;
      if (!filters.session_ok(s) || !filters.time_ok(ts)) return;
      std::string line;
      if (hide_volatile) {
        line = "-";
      } else {
        append_iso8601_utc(line, ts);
      }
      fmt::format_to(std::back_inserter(line), " {} {} TLS {}", s.session_id,
                     key == kMetaClientTls ? "client leg" : "server leg", as_string_view(value));
      if (!filters.text_ok(line)) return;
      out.buffer() += line;
      out.buffer() += '\n';
      out.maybe_flush();
    };
  }
  // Said once per session, as soon as it shows.
  cb.partial = [&](const SessionInfo& s, int64_t ts) {
    ++partial_sessions;
    if (reporting) report.session_partial(s, ts);
    if (csvlog) csv_sessions.try_emplace(s.session_id, ts);  // its start is not known: from here
    if (pcap) return;                                        // said by the export, in its own words
    std::fprintf(stderr,
                 "pgdump-log: %s: session %llu is partial: its start is not in the capture data read (a file "
                 "of its set not given, deleted or missing); its user, database and startup parameters are "
                 "unknown, and statements it prepared before have no text\n",
                 reader.current_file().c_str(), static_cast<unsigned long long>(s.session_id));
  };
  cb.error = [&](const SessionInfo& s, const Error& e) {
    ++framing_errors;
    std::fprintf(stderr, "pgdump-log: %s: session %llu: cannot frame the stream: %s\n", reader.current_file().c_str(),
                 static_cast<unsigned long long>(s.session_id), e.describe().c_str());
  };
  CaptureDecoder decoder(TrackerOptions{}, cb);
  // The packets need no decoding: with --format pcap the decoder runs for a report only.
  const bool decode = !pcap || reporting;

  std::optional<PcapExport> pcap_export;
  Status pcap_status;
  if (pcap) {
    PcapExportOptions popts;
    if (filters.selects_sessions()) popts.select = [&](const SessionInfo& s) { return filters.session_ok(s); };
    popts.since = filters.since;
    popts.until = filters.until;
    popts.partial = [&](uint64_t id, int64_t) {
      std::fprintf(stderr,
                   "pgdump-log: %s: session %llu is partial: its start is not in the capture data read; its "
                   "packets begin at its first whole frame, without a handshake, and its addresses are "
                   "synthetic unless known\n",
                   reader.current_file().c_str(), static_cast<unsigned long long>(id));
    };
    pcap_export.emplace(*pcap_writer, std::move(popts));
  }

  Progress progress(!no_progress && !check && isatty(STDERR_FILENO), reader.total_size());
  int64_t last_ts = 0;
  while (const CaptureRecord* rec = reader.next()) {
    ++records;
    last_ts = std::max(last_ts, rec->ts_ns);
    if (decode) decoder.on_record(*rec);
    if (pcap_export && pcap_status) pcap_status = pcap_export->on_record(*rec);
    progress.update([&] { return reader.consumed(); });
  }
  if (decode) decoder.finish(last_ts);
  progress.done();
  if (pcap_export) {
    if (pcap_status) pcap_status = pcap_export->finish();
    if (pcap_status) pcap_status = pcap_writer->finish();
    if (!pcap_status) {
      std::fprintf(stderr, "pgdump-log: cannot write %s: %s\n", to_stdout ? "the pcap" : output.c_str(),
                   pcap_status.error().describe().c_str());
      return kExitUsage;
    }
    const PcapExportStats& ps = pcap_export->stats();
    if (ps.redacted_frames > 0) {
      std::fprintf(stderr,
                   "pgdump-log: pcap: %llu password/SASL messages left out (the capture kept only their header)\n",
                   static_cast<unsigned long long>(ps.redacted_frames));
    }
  }

  if (stats) out.buffer() += stats_format == "json" ? report.json(top_n) : report.text(top_n);
  out.flush();
  if (!pcap && out.failed()) {
    std::fprintf(stderr, "pgdump-log: cannot write %s\n", to_stdout ? "the output" : output.c_str());
    return kExitUsage;
  }
  if (html_file) {
    pgdump::HtmlOptions html_opts;
    html_opts.inputs = files;
    html_opts.statements = report_top;
    const std::string page = report.html(html_opts);
    const bool written = std::fwrite(page.data(), 1, page.size(), html_file.get()) == page.size();
    if (!written || std::fclose(html_file.release()) != 0) {
      std::fprintf(stderr, "pgdump-log: cannot write the report %s: %s\n", report_html.c_str(), std::strerror(errno));
      return kExitUsage;
    }
  }

  if (reader.packet_captures() > 0) print_pcap_notes(reader.pcap_stats());
  for (const auto& d : reader.damage()) {
    std::fprintf(stderr, "pgdump-log: %s: damaged: %s\n", d.file.c_str(), d.error.describe().c_str());
  }
  const bool damaged = !reader.damage().empty() || framing_errors > 0;
  if (check) {
    if (damaged) {
      fmt::format_to(std::back_inserter(out.buffer()),
                     "DAMAGED: {} good records before the damage, {} framing errors (details on stderr)\n", records,
                     framing_errors);
    } else {
      fmt::format_to(std::back_inserter(out.buffer()), "OK: {} records, {} frames, {} statements{}\n", records, frames,
                     events, partial_sessions == 0 ? "" : fmt::format(", {} partial sessions", partial_sessions));
    }
    out.flush();
  }
  if (damaged) return kExitDamaged;
  return open_errors.empty() ? kExitOk : kExitUsage;
}

}  // namespace

int main(int argc, char** argv) { return pgwire::run_main("pgdump-log", kExitUsage, run, argc, argv); }
