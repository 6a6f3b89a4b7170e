// Running other programs from tests: fork + execve with an argv vector (never a shell string),
// output captured through pipes, a hard timeout, and nothing left running afterwards.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwire::test {

// A user to switch to in the child between fork and exec (when the test runs as root).
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
};

// Looks `name` up in the password database; nullopt when there is no such user.
std::optional<RunAs> lookup_user(const std::string& name);

struct CommandOptions {
  // Declared so that this is not an aggregate: `run_command(argv, {{"NAME", "value"}})` then
  // unambiguously means the environment overload.
  CommandOptions() = default;

  // Added to (or replacing entries of) the inherited environment. Every PG* variable of the
  // inherited environment is dropped first, so a PGHOST/PGPASSWORD of the developer's shell never
  // leaks into a test; what a command needs is set here explicitly.
  std::map<std::string, std::string> env;
  std::string stdin_data;  // written to the child's stdin, which is then closed
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::optional<RunAs> run_as;
  std::string cwd;  // empty: inherit
};

struct CommandResult {
  int exit_code = -1;   // exit status; 128 + signal number if a signal ended the child
  int term_signal = 0;  // the signal that ended the child, 0 if it exited
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0 && !timed_out; }
  // "exit 1, stderr: ..." for assertion messages.
  std::string describe() const;
};

// Runs argv[0] (searched in the PATH of the final environment when it has no '/') with the
// given arguments and waits for it, at most `options.timeout`. The child gets its own process
// group; on timeout the whole group is killed with SIGKILL, and anything the command left running
// in its group after it exited is killed too, so nothing outlives the call. The child also gets
// PR_SET_PDEATHSIG(SIGKILL): if the test process dies, the command dies with it.
// Throws std::runtime_error only when the command cannot be started at all (fork, exec).
CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options = CommandOptions());
CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The environment a child gets: ours without PG* variables, plus `overrides`.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides);

// The full path of `name` looked up in `path_list` (a PATH value); `name` itself if it contains a
// '/'; empty if not found.
std::string find_executable(std::string_view name, std::string_view path_list);

// A lower-level start for long-running children such as the postmaster: the caller owns the
// returned pid and must reap it. stdin is /dev/null; stdout and stderr go to `output_fd`.
struct SpawnOptions {
  std::vector<std::string> env;  // complete "NAME=value" list
  std::optional<RunAs> run_as;
  std::string cwd;
  int output_fd = -1;
  int parent_death_signal = 0;  // PR_SET_PDEATHSIG; 0 for none
};
pid_t spawn_process(const std::vector<std::string>& argv, const SpawnOptions& options);

// Joins argv for humans (log lines, recording headers); quotes words that need it.
std::string format_command(const std::vector<std::string>& argv);

}  // namespace pgwire::test
