// pgwire-record: records a real client/server conversation into a .rec file.
//
//   pgwire-record --out corpus/recorded/x.rec [--auth scram-sha-256]
//       [--setup "pgbench -i -q"] [--note-file script.sql] [--client-env PGSSLMODE=disable]
//       -- psql -X -f script.sql
//
// Starts a throwaway server (TempPostgres), runs every --setup command against it directly (not
// recorded), starts a RecordRelay in front of it, runs the client command pointed at the relay
// (PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD are set; `{host}` and `{port}` in the arguments are
// replaced too), waits until every connection is closed and writes the recording with a header
// describing what was run. --setup values are split on whitespace (no shell, no quoting).
// A test tool: not installed. scripts/record-corpus.sh rebuilds the whole corpus with it.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "pg_server.hpp"
#include "pgwire/system.hpp"
#include "record_relay.hpp"
#include "recording.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;

namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

std::vector<std::string> with_address(std::vector<std::string> argv, const std::string& host, uint16_t port) {
  for (auto& arg : argv) {
    arg = replace_all(replace_all(arg, "{host}", host), "{port}", std::to_string(port));
  }
  return argv;
}

std::vector<std::string> lines_of(const std::string& text, size_t max_lines) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (lines.size() == max_lines) {
      lines.push_back("... (cut)");
      break;
    }
    lines.push_back(line);
  }
  return lines;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Args {
  std::string out;
  std::string auth = "trust";
  std::string description;
  std::vector<std::string> setups;
  std::vector<std::string> note_files;
  std::vector<std::string> client_env;
  std::vector<std::string> settings;
  int timeout_seconds = 60;
  int expect_exit = 0;
  std::vector<std::string> command;
};

std::pair<std::string, std::string> name_value(const std::string& item, const char* what) {
  size_t eq = item.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::runtime_error(std::string(what) + " wants NAME=VALUE, got " + item);
  }
  return {item.substr(0, eq), item.substr(eq + 1)};
}

int record(const Args& args) {
  pt::TempPostgresOptions options;
  if (args.auth == "scram-sha-256") {
    options.host_auth = pt::HostAuth::scram_sha_256;
  } else if (args.auth == "md5") {
    options.host_auth = pt::HostAuth::md5;
  } else if (args.auth != "trust") {
    throw std::runtime_error("--auth must be trust, scram-sha-256 or md5");
  }
  for (const auto& s : args.settings) options.settings.push_back(name_value(s, "--setting"));

  pt::TempPostgres pg(options);
  std::string path_var = pg.bindir() + ":" + (std::getenv("PATH") ? std::getenv("PATH") : "");

  for (const auto& setup : args.setups) {
    pt::CommandOptions opts;
    opts.env = pg.client_env();
    opts.env["PATH"] = path_var;
    opts.timeout = std::chrono::seconds(args.timeout_seconds);
    auto argv = with_address(split_words(setup), pg.host(), pg.port());
    pt::CommandResult r = pt::run_command(argv, opts);
    if (!r.ok()) {
      std::cerr << "pgwire-record: setup failed: " << pt::format_command(argv) << "\n" << r.describe() << "\n";
      return 1;
    }
  }

  pt::RecordRelay relay(pg.host(), pg.port());
  pt::CommandOptions client;
  client.env = pg.client_env();
  client.env["PGPORT"] = std::to_string(relay.port());
  client.env["PATH"] = path_var;
  client.env["LC_ALL"] = "C.UTF-8";
  std::vector<std::pair<std::string, std::string>> extra_env;
  for (const auto& e : args.client_env) {
    extra_env.push_back(name_value(e, "--client-env"));
    client.env[extra_env.back().first] = extra_env.back().second;
  }
  client.timeout = std::chrono::seconds(args.timeout_seconds);
  std::vector<std::string> command = with_address(args.command, relay.host(), relay.port());
  pt::CommandResult result = pt::run_command(command, client);
  bool idle = relay.wait_idle(std::chrono::seconds(10));
  relay.stop();

  bool ok = true;
  if (result.timed_out || result.exit_code != args.expect_exit) {
    std::cerr << "pgwire-record: client: expected exit " << args.expect_exit << ", got " << result.describe() << "\n";
    ok = false;
  }
  if (!idle) {
    std::cerr << "pgwire-record: connections still open 10 s after the client exited\n";
    ok = false;
  }
  for (const auto& e : relay.errors()) {
    std::cerr << "pgwire-record: relay: " << e << "\n";
    ok = false;
  }
  if (!ok) {
    std::cerr << "server log tail:\n" << pg.log_tail() << "\n";
    return 1;
  }

  pt::Recording rec = relay.recording();
  size_t chunks[2] = {0, 0};
  size_t bytes[2] = {0, 0};
  for (const auto& c : rec.chunks) {
    int side = c.dir == 'F' ? 0 : 1;
    ++chunks[side];
    bytes[side] += c.bytes.size();
  }
  auto& h = rec.comments;
  h.push_back("pgwire-record: real traffic recorded through a relay (tests/support/record_relay.cpp)");
  h.push_back("rebuild with: scripts/record-corpus.sh");
  h.push_back("format: <conn> <F|B> <usec> <hex bytes>; F = frontend->backend, B = backend->frontend;");
  h.push_back("        usec = microseconds since the relay started; one line per recv()");
  if (!args.description.empty()) h.push_back("description: " + args.description);
  std::string auth = "auth: " + std::string(pt::host_auth_name(pg.host_auth())) + ", user " + pg.user();
  if (!pg.password().empty()) auth += ", password " + pg.password();
  h.push_back("server: " + pg.version());
  h.push_back(auth);
  for (const auto& s : args.settings) h.push_back("server setting: " + s);
  for (const auto& s : args.setups) h.push_back("setup (direct, not recorded): " + s);
  h.push_back("client: " + pt::format_command(args.command));
  std::string env_text = "client env: PGHOST=" + relay.host() + " PGPORT=<relay> PGUSER=" + pg.user() +
                         " PGDATABASE=postgres LC_ALL=C.UTF-8";
  if (!pg.password().empty()) env_text += " PGPASSWORD=" + pg.password();
  for (const auto& [name, value] : extra_env) env_text += " " + name + "=" + value;
  h.push_back(env_text);
  h.push_back("client exit status: " + std::to_string(result.exit_code));
  h.push_back("connections: " + std::to_string(relay.connections_accepted()) + ", chunks: F " +
              std::to_string(chunks[0]) + " B " + std::to_string(chunks[1]) + ", bytes: F " + std::to_string(bytes[0]) +
              " B " + std::to_string(bytes[1]));
  for (const auto& file : args.note_files) {
    h.push_back("file " + file + ":");
    for (const auto& line : lines_of(read_text(file), 200)) h.push_back("  | " + line);
  }
  if (!result.out.empty()) {
    h.push_back("client stdout:");
    for (const auto& line : lines_of(result.out, 40)) h.push_back("  > " + line);
  }
  if (!result.err.empty()) {
    h.push_back("client stderr:");
    for (const auto& line : lines_of(result.err, 40)) h.push_back("  > " + line);
  }
  pt::save_recording(args.out, rec);
  std::cout << args.out << ": " << relay.connections_accepted() << " connection(s), " << rec.chunks.size()
            << " chunks, " << (bytes[0] + bytes[1]) << " bytes\n";
  return 0;
}

}  // namespace

namespace {

int run(int argc, char** argv) {
  CLI::App app{"Records a real PostgreSQL conversation through a relay into a .rec file"};
  Args args;
  app.add_option("--out", args.out, "the .rec file to write")->required();
  app.add_option("--auth", args.auth, "trust (default), scram-sha-256 or md5");
  app.add_option("--description", args.description, "one line for the header");
  app.add_option("--setup", args.setups,
                 "command run directly against the server first (split on whitespace; {host} "
                 "and {port} are replaced); repeatable")
      ->allow_extra_args(false);
  app.add_option("--note-file", args.note_files, "a file whose text goes into the header")->allow_extra_args(false);
  app.add_option("--client-env", args.client_env, "NAME=VALUE for the client; repeatable")->allow_extra_args(false);
  app.add_option("--setting", args.settings, "NAME=VALUE server setting; repeatable")->allow_extra_args(false);
  app.add_option("--timeout", args.timeout_seconds, "seconds the client may run (default 60)");
  app.add_option("--expect-exit", args.expect_exit, "the client's expected exit status (0)");
  app.add_option("command", args.command, "the client command line, after --")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    return record(args);
  } catch (const std::exception& e) {
    std::cerr << "pgwire-record: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) { return pgwire::run_main("pgwire-record", 1, run, argc, argv); }
