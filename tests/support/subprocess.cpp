#include "subprocess.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "pgwire/system.hpp"

extern char** environ;

namespace pgwire::test {
namespace {

using Clock = std::chrono::steady_clock;

// Writing a child's stdin after it exited must give EPIPE, not kill the test process. Children
// get every signal disposition back to the default before exec.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, nullptr);
  });
}

// Keeps a descriptor away from 0..2 so that the dup2() calls in the child cannot clobber it.
int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  if (moved < 0) throw std::runtime_error("fcntl(F_DUPFD_CLOEXEC): " + errno_text(saved));
  return moved;
}

struct Pipe {
  int read_end = -1;
  int write_end = -1;
};

Pipe make_pipe() {
  std::array<int, 2> fds{};
  if (pipe2(fds.data(), O_CLOEXEC) != 0) throw std::runtime_error("pipe2: " + errno_text(errno));
  return Pipe{above_stdio(fds[0]), above_stdio(fds[1])};
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Everything the child needs, prepared before fork(): between fork and exec only
// async-signal-safe calls are allowed (the test process may have other threads, e.g. a relay).
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  const RunAs* run_as = nullptr;
  const char* cwd = nullptr;
  int parent_death_signal = 0;
  pid_t parent = 0;
  int report_fd = -1;  // close-on-exec pipe: receives {step, errno} if a step fails
};

enum ChildStep : int { kStepDup = 1, kStepGroups, kStepGid, kStepUid, kStepChdir, kStepPdeath, kStepExec };

const char* step_name(int step) {
  switch (step) {
    case kStepDup: return "dup2";
    case kStepGroups: return "setgroups";
    case kStepGid: return "setgid";
    case kStepUid: return "setuid";
    case kStepChdir: return "chdir";
    case kStepPdeath: return "prctl(PR_SET_PDEATHSIG)";
    case kStepExec: return "execve";
    default: return "?";
  }
}

[[noreturn]] void child_fail(const ChildPlan& plan, int step) {
  std::array<int, 2> report{step, errno};
  ssize_t ignored = write(plan.report_fd, report.data(), sizeof report);
  (void)ignored;
  _exit(127);
}

void child_use_fd(const ChildPlan& plan, int from, int to) {
  if (from == to) {
    if (fcntl(to, F_SETFD, 0) != 0) child_fail(plan, kStepDup);
  } else if (dup2(from, to) < 0) {
    child_fail(plan, kStepDup);
  }
}

[[noreturn]] void run_child(const ChildPlan& plan) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  child_use_fd(plan, plan.stdin_fd, STDIN_FILENO);
  child_use_fd(plan, plan.stdout_fd, STDOUT_FILENO);
  child_use_fd(plan, plan.stderr_fd, STDERR_FILENO);
  if (plan.run_as != nullptr) {
    gid_t gid = plan.run_as->gid;
    if (setgroups(1, &gid) != 0) child_fail(plan, kStepGroups);
    if (setgid(gid) != 0) child_fail(plan, kStepGid);
    if (setuid(plan.run_as->uid) != 0) child_fail(plan, kStepUid);
  }
  if (plan.cwd != nullptr && chdir(plan.cwd) != 0) child_fail(plan, kStepChdir);
  if (plan.parent_death_signal != 0) {
    // After setuid: a credential change clears the parent-death signal.
    if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(plan.parent_death_signal)) != 0) {
      child_fail(plan, kStepPdeath);
    }
    // The parent may have died before prctl(): then no signal will ever come.
    if (getppid() != plan.parent) _exit(127);
  }
  execve(plan.path, plan.argv, plan.envp);
  child_fail(plan, kStepExec);
}

// Owns NUL-terminated copies of strings plus the char* array execve() wants.
class CStringArray {
 public:
  explicit CStringArray(const std::vector<std::string>& items) : items_(items) {
    for (auto& s : items_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char* const* get() const { return pointers_.data(); }

 private:
  std::vector<std::string> items_;
  std::vector<char*> pointers_;
};

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  for (const auto& entry : env) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 && entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
  }
  return {};
}

std::string resolve_program(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  if (argv.empty() || argv[0].empty()) throw std::runtime_error("run_command: empty argv");
  std::string path_list = env_value(env, "PATH");
  if (path_list.empty()) path_list = "/usr/local/bin:/usr/bin:/bin";
  std::string path = find_executable(argv[0], path_list);
  if (path.empty()) throw std::runtime_error("run_command: program not found: " + argv[0]);
  return path;
}

// fork()s and runs `plan` in the child; returns the pid once the exec succeeded, throws with the
// failed step otherwise.
pid_t start_child(ChildPlan plan, const std::vector<std::string>& argv) {
  Pipe report = make_pipe();
  plan.report_fd = report.write_end;
  plan.parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int saved = errno;
    close_fd(report.read_end);
    close_fd(report.write_end);
    throw std::runtime_error("fork: " + errno_text(saved));
  }
  if (pid == 0) run_child(plan);
  setpgid(pid, pid);  // also from the parent, so a kill(-pid) right after cannot miss
  close_fd(report.write_end);
  std::array<int, 2> failure{0, 0};
  ssize_t n;
  do {
    n = read(report.read_end, failure.data(), sizeof failure);
  } while (n < 0 && errno == EINTR);
  close_fd(report.read_end);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    waitpid(pid, &status, 0);
    throw std::runtime_error("cannot start " + format_command(argv) + ": " + step_name(failure[0]) + ": " +
                             errno_text(failure[1]));
  }
  return pid;
}

void decode_status(int status, CommandResult& result) {
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
    result.exit_code = 128 + result.term_signal;
  }
}

// Reads what is available; returns false on EOF or error.
bool drain(int fd, std::string& into) {
  std::array<char, 16384> buf{};
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n > 0) {
      into.append(buf.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

}  // namespace

std::optional<RunAs> lookup_user(const std::string& name) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return RunAs{pw.pw_uid, pw.pw_gid};
}

std::string CommandResult::describe() const {
  std::string text;
  if (timed_out) {
    text = "timed out";
  } else if (term_signal != 0) {
    text = "killed by signal " + std::to_string(term_signal);
  } else {
    text = "exit " + std::to_string(exit_code);
  }
  text += "\n--- stdout ---\n" + out + "\n--- stderr ---\n" + err;
  return text;
}

std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view item(*entry);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = item.substr(0, eq);
    bool libpq_variable = name.starts_with("PG") && !name.starts_with("PGWIRE_");
    if (libpq_variable || overrides.contains(std::string(name))) continue;
    env.emplace_back(item);
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  return env;
}

std::string find_executable(std::string_view name, std::string_view path_list) {
  if (name.find('/') != std::string_view::npos) return std::string(name);
  while (true) {
    size_t colon = path_list.find(':');
    std::string_view dir = path_list.substr(0, colon);
    if (!dir.empty()) {
      std::string candidate = std::string(dir) + "/" + std::string(name);
      struct stat st {};
      if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
    }
    if (colon == std::string_view::npos) return {};
    path_list.remove_prefix(colon + 1);
  }
}

std::string format_command(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& word : argv) {
    if (!text.empty()) text += ' ';
    bool plain = !word.empty() && word.find_first_not_of(
                                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789_@%+=:,./-") == std::string::npos;
    if (plain) {
      text += word;
      continue;
    }
    text += '\'';
    for (char c : word) {
      if (c == '\'') {
        text += "'\\''";
      } else {
        text += c;
      }
    }
    text += '\'';
  }
  return text;
}

pid_t spawn_process(const std::vector<std::string>& argv, const SpawnOptions& options) {
  ignore_sigpipe_once();
  std::string path = resolve_program(argv, options.env);
  CStringArray args(argv);
  CStringArray envp(options.env);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) throw std::runtime_error("open /dev/null: " + errno_text(errno));
  devnull = above_stdio(devnull);
  ChildPlan plan;
  plan.path = path.c_str();
  plan.argv = args.get();
  plan.envp = envp.get();
  plan.stdin_fd = devnull;
  plan.stdout_fd = options.output_fd >= 0 ? options.output_fd : devnull;
  plan.stderr_fd = plan.stdout_fd;
  plan.run_as = options.run_as ? &*options.run_as : nullptr;
  plan.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  plan.parent_death_signal = options.parent_death_signal;
  try {
    pid_t pid = start_child(plan, argv);
    close(devnull);
    return pid;
  } catch (...) {
    close(devnull);
    throw;
  }
}

CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options) {
  ignore_sigpipe_once();
  std::vector<std::string> env = child_environment(options.env);
  std::string path = resolve_program(argv, env);
  CStringArray args(argv);
  CStringArray envp(env);

  Pipe in = make_pipe();
  Pipe out = make_pipe();
  Pipe err = make_pipe();
  ChildPlan plan;
  plan.path = path.c_str();
  plan.argv = args.get();
  plan.envp = envp.get();
  plan.stdin_fd = in.read_end;
  plan.stdout_fd = out.write_end;
  plan.stderr_fd = err.write_end;
  plan.run_as = options.run_as ? &*options.run_as : nullptr;
  plan.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  plan.parent_death_signal = SIGKILL;

  pid_t pid = -1;
  try {
    pid = start_child(plan, argv);
  } catch (...) {
    for (int* fd : {&in.read_end, &in.write_end, &out.read_end, &out.write_end, &err.read_end, &err.write_end}) {
      close_fd(*fd);
    }
    throw;
  }
  close_fd(in.read_end);
  close_fd(out.write_end);
  close_fd(err.write_end);
  set_nonblocking(in.write_end);
  set_nonblocking(out.read_end);
  set_nonblocking(err.read_end);

  CommandResult result;
  size_t stdin_written = 0;
  if (options.stdin_data.empty()) close_fd(in.write_end);
  const auto deadline = Clock::now() + options.timeout;
  std::optional<Clock::time_point> exited_at;
  bool reaped = false;
  int status = 0;

  while (true) {
    if (!reaped) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = true;
        exited_at = Clock::now();
        close_fd(in.write_end);
      }
    }
    bool pipes_open = out.read_end >= 0 || err.read_end >= 0;
    auto now = Clock::now();
    // Once the child is gone, give its output a short grace period: a grandchild that kept the
    // pipes open must not make us wait for the full timeout.
    if (reaped && (!pipes_open || now - *exited_at > std::chrono::milliseconds(500))) break;
    if (!reaped && now >= deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      reaped = true;
      result.timed_out = true;
      exited_at = Clock::now();
      continue;
    }

    std::array<pollfd, 3> fds{};
    fds[0] = {in.write_end, POLLOUT, 0};
    fds[1] = {out.read_end, POLLIN, 0};
    fds[2] = {err.read_end, POLLIN, 0};
    int rc = poll(fds.data(), fds.size(), 20);
    if (rc < 0 && errno != EINTR) break;

    if (in.write_end >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const std::string& data = options.stdin_data;
      ssize_t n = write(in.write_end, data.data() + stdin_written, data.size() - stdin_written);
      if (n > 0) stdin_written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_written == data.size()) {
        close_fd(in.write_end);  // done, or the child stopped reading (EPIPE)
      }
    }
    if (out.read_end >= 0 && fds[1].revents != 0 && !drain(out.read_end, result.out)) {
      close_fd(out.read_end);
    }
    if (err.read_end >= 0 && fds[2].revents != 0 && !drain(err.read_end, result.err)) {
      close_fd(err.read_end);
    }
  }
  if (out.read_end >= 0) drain(out.read_end, result.out);
  if (err.read_end >= 0) drain(err.read_end, result.err);
  close_fd(in.write_end);
  close_fd(out.read_end);
  close_fd(err.read_end);
  kill(-pid, SIGKILL);            // whatever the command left behind in its process group
  decode_status(status, result);  // after a timeout: killed by SIGKILL
  return result;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds timeout) {
  CommandOptions options;
  options.env = env;
  options.timeout = timeout;
  return run_command(argv, options);
}

}  // namespace pgwire::test
