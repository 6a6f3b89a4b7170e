// What every tool needs from the operating system and nothing else does:
// readable errno values, the two clocks, private files, and a main() that
// reports failures.
#pragma once

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

// Runs a tool's main body. An exception that escapes it (only set-up or
// allocation failures: the data paths do not throw) is reported on stderr as
// "<tool>: fatal: <what>" and the exit status is `fatal_exit`.
int run_main(const char* tool, int fatal_exit, int (*body)(int argc, char** argv), int argc, char** argv);

}  // namespace pgwire
