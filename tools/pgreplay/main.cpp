// pgreplay: replays captured PostgreSQL sessions (pgproxy captures) against a
// server, with the original timing and waits, and reports what happened.
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "options.hpp"
#include "pgwire/system.hpp"
#include "replayer.hpp"
#include "report.hpp"

namespace {

const char* kFooter = R"(
Input: capture files, zstd-compressed ones included (recognised by their content), or
directories, which stand for the capture files in them. Several inputs are merged by time; the
files of one rotated set (pgproxy --rotate-*), as a directory, a glob or a list, are read one
after another as one stream, so a session that spans files is one session. A session whose
start is not in what was read (a file of the set missing) is partial: it is not replayed, and
the report says how many there were.

Sessions: every captured session is replayed on its own connection, opened at its captured
time offset divided by --speed, with the captured startup parameters (application_name,
options, other settings, _pq_ options) and the captured user and database unless -U/-d or
--map-user/--map-database say otherwise (PGUSER/PGDATABASE do not). pgreplay authenticates
itself (trust, password, md5, scram-sha-256); the captured authentication is not replayed.
Then the captured frontend frames are sent byte for byte, each no earlier than its scheduled
time and only after the server sent what the original client had received before it
(ReadyForQuery, CopyInResponse, CopyOutResponse). A captured CancelRequest is sent with the
replayed session's own key. TLS is not used: the target must accept plain connections.

Waits: with backend frames in the capture (pgproxy --capture-backend) they are exact.
Without, pgreplay infers them from the timestamps: a frame stamped like the Query/Sync before
it (pgproxy stamps everything parsed from one read alike) was pipelined with it; any other
frame waited for the ReadyForQuery of every Query/Sync before it; COPY data waits for
CopyInResponse.

--speed max: every frame as soon as its session allows, never with more sessions open than
the capture had when each session opened.

Divergence: when the server has answered every Query/Sync and the capture still says the
client waited for more, the session goes on at once; when the server went quiet after a
ReadyForQuery for --stall-timeout, too (both counted in the report). A CopyInResponse the
capture did not have is answered with CopyFail. Frames are replayed as captured: values the
server assigned during the capture (large object OIDs, say) are sent as they were.

Failures: a session whose login is refused or whose connection breaks is reported failed with
the reason and the user@database it used; the others go on. When the target refused 3
connections in a row and no session is connected, the replay stops there (the rest would fail
alike) and reports.

Password: PGPASSWORD, else the password file: --password-file, else PGPASSFILE, else
~/.pgpass, in libpq's format (host:port:database:user:password, '*' wildcards, '\' escapes,
'#' comments), ignored unless it has no group/world permissions (chmod 0600).

Environment: defaults for what the capture does not say: PGHOST, PGPORT (like -h/-p),
PGPASSWORD, PGPASSFILE, PGCONNECT_TIMEOUT. PGUSER and PGDATABASE are not applied: each session
logs in as its captured user into its captured database; give -U/-d (every session) or
--map-user/--map-database (some) to change that. When PGUSER or PGDATABASE is set and a session
logs in otherwise, the report warns once.

Exit codes: 0 everything replayed (and, with --compare, no divergence); 1 a session failed
(login refused, connection lost, interrupted); 2 bad usage, an unreadable capture, or
--compare without backend frames; 3 --compare found divergences; 4 a capture is damaged
(replayed up to the damage). When several apply: 2, then 1, then 4, then 3.
)";

}  // namespace

namespace {

int run(int argc, char** argv) {
  pgreplay::ReplayOptions o;
  CLI::App app{"pgreplay: replay captured PostgreSQL sessions against a server and report how it went."};
  app.set_help_flag("--help", "Print this help and exit");
  app.set_version_flag("--version", fmt::format("pgreplay {}", pgreplay::kVersion));
  app.footer(kFooter);

  std::vector<std::string> map_user, map_database;
  std::string speed = "1";
  bool no_progress = false, force_progress = false;

  app.add_option("captures", o.captures,
                 "capture files (pgproxy --capture), zstd-compressed too, pcap/pcapng packet captures, or "
                 "directories of them; '-' = stdin")
      ->required();
  app.add_option("--pcap-port", o.pcap_ports,
                 "packet captures only: server ports whose TCP connections are PostgreSQL (repeatable or a "
                 "comma-separated list; default 5432)")
      ->delimiter(',')
      ->check(CLI::Range(1, 65535));
  app.add_option("-h,--host", o.host, "server host name, address or Unix socket directory (default: PGHOST)");
  app.add_option("-p,--port", o.port, "server port (default: PGPORT, else 5432)");
  app.add_option("-U,--user", o.user,
                 "log every session in as this user (default: the captured one; PGUSER is not applied)");
  app.add_option("-d,--dbname", o.dbname,
                 "connect every session to this database (default: the captured one; PGDATABASE is not applied)");
  app.add_option("--map-user", map_user, "OLD=NEW: replace a captured user (repeatable)")->allow_extra_args(false);
  app.add_option("--map-database", map_database, "OLD=NEW: replace a captured database (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--password-file", o.password_file,
                 "password file in .pgpass format (instead of PGPASSFILE/~/.pgpass)");
  app.add_option("--connect-timeout", o.connect_timeout_s,
                 "seconds to connect and log in (default: PGCONNECT_TIMEOUT, else 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--speed", speed, "time factor (2 = twice as fast), or 'max'")->capture_default_str();
  app.add_flag("--compare", o.compare,
               "compare each statement's outcome (tag, rows, SQLSTATE, row digest) with the capture's; "
               "needs backend frames in the capture");
  app.add_option("--ignore", o.ignore,
                 "REGEX (POSIX extended): leave statements matching it out of --compare (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--max-divergences", o.max_divergences, "divergences listed in full")->capture_default_str();
  app.add_option("--top", o.top, "normalized statements in the latency table")->capture_default_str();
  app.add_option("--report", o.report_file,
                 "also write the report as JSON to this file (mode 0600, replaced whole or not at all)");
  app.add_option("--report-html", o.report_html_file,
                 "also write the report as one self-contained HTML page: latency per statement captured vs "
                 "replayed, lag over time, divergences (mode 0600, replaced whole or not at all)")
      ->type_name("FILE");
  app.add_flag("--dry-run", o.dry_run, "read and schedule everything, print what would be replayed, connect nowhere");
  app.add_flag("--progress", force_progress, "live progress line on stderr even when it is not a terminal");
  app.add_flag("--no-progress", no_progress, "no progress line");
  app.add_option("--read-ahead", o.read_ahead_s, "seconds of schedule read ahead of time")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--session-buffer", o.session_buffer,
                 "read-ahead bytes per session before reading pauses (unless it waits on the server)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-memory", o.max_memory, "read-ahead bytes of all sessions together, at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--stall-timeout", o.stall_timeout_s,
                 "seconds a session waits on a server that went quiet after ReadyForQuery before it goes on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  pgreplay::apply_environment(o, pgreplay::process_env);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return pgreplay::kExitUsage;
  }

  auto usage = [](const std::string& msg) {
    fmt::print(stderr, "pgreplay: {}\n", msg);
    return pgreplay::kExitUsage;
  };
  if (speed == "max") {
    o.speed_max = true;
  } else {
    char* end = nullptr;
    o.speed = std::strtod(speed.c_str(), &end);
    if (speed.empty() || *end != '\0' || !(o.speed > 0) || o.speed > 1e6)
      return usage("--speed must be a positive number or 'max', not \"" + speed + "\"");
  }
  for (const std::string& m : map_user)
    if (!pgreplay::parse_mapping(m, o.map_user)) return usage("--map-user wants OLD=NEW, not \"" + m + "\"");
  for (const std::string& m : map_database)
    if (!pgreplay::parse_mapping(m, o.map_database)) return usage("--map-database wants OLD=NEW, not \"" + m + "\"");
  for (const std::string& re : o.ignore) {
    pgreplay::StatementFilter check;
    std::string error;
    if (!check.add(re, &error)) return usage("--ignore: bad regular expression \"" + re + "\": " + error);
  }
  if (no_progress) o.progress = 0;
  if (force_progress) o.progress = 1;

  return o.dry_run ? pgreplay::run_dry_run(o) : pgreplay::run_replay(o);
}

}  // namespace

int main(int argc, char** argv) { return pgwire::run_main("pgreplay", pgreplay::kExitUsage, run, argc, argv); }
