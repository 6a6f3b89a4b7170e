// What every tool needs from the operating system and nothing else does:
// readable errno values, the two clocks, private files, and a main() that
// reports failures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pgwire {

// strerror(err), safe from any thread: "Connection refused".
std::string errno_text(int err);

// CLOCK_REALTIME in nanoseconds since the Unix epoch: capture and log timestamps.
int64_t realtime_ns();
// CLOCK_MONOTONIC: deadlines, rates and durations.
int64_t monotonic_ns();
inline int64_t monotonic_ms() { return monotonic_ns() / 1'000'000; }

// Opens `path` for writing (O_WRONLY | O_CREAT | O_CLOEXEC | `flags`, such as
// O_TRUNC or O_APPEND) for data that may hold secrets: created mode 0600, and
// an existing regular file is set to 0600 too (open() keeps an existing
// file's mode). Anything else keeps its mode: `-o /dev/null` run as root
// must leave /dev/null as it is. Returns the descriptor, or -1 with errno set.
int open_private(const std::string& path, int flags);

// What write_fully() did: `written` bytes went out; `err` is 0 when that is
// all of them, else the errno of the write(2) that failed (EIO for one that
// wrote nothing and reported no error).
struct WriteResult {
  size_t written = 0;
  int err = 0;
};

// write(2) of all `size` bytes at `data` to `fd`, for the writers that must
// not lose a byte quietly (captures, pcap, reports, compressed rotation):
// retries after EINTR and partial writes, and waits in poll() when `fd` is
// non-blocking and full (a pipe shared with a non-blocking reader).
WriteResult write_fully(int fd, const void* data, size_t size);

// Runs a tool's main body. An exception that escapes it (only set-up or
// allocation failures: the data paths do not throw) is reported on stderr as
// "<tool>: fatal: <what>" and the exit status is `fatal_exit`.
int run_main(const char* tool, int fatal_exit, int (*body)(int argc, char** argv), int argc, char** argv);

}  // namespace pgwire
