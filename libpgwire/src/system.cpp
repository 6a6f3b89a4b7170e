#include "pgwire/system.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <exception>
#include <system_error>

namespace pgwire {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int open_private(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
  if (fd < 0) return -1;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

WriteResult write_fully(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  WriteResult r;
  while (r.written < size) {
    const ssize_t n = ::write(fd, p + r.written, size - r.written);
    if (n > 0) {
      r.written += static_cast<size_t>(n);
      continue;
    }
    const int err = n == 0 ? EIO : errno;  // no progress and no error: do not spin
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, -1) >= 0 || errno == EINTR) continue;
      r.err = errno;
      return r;
    }
    r.err = err;
    return r;
  }
  return r;
}

int run_main(const char* tool, int fatal_exit, int (*body)(int argc, char** argv), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", tool, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: fatal: unknown exception\n", tool);
  }
  return fatal_exit;
}

}  // namespace pgwire
