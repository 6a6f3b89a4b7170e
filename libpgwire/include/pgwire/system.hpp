// What every tool needs from the operating system and nothing else does:
// readable errno values, the two clocks, and a main() that reports failures.
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

// Runs a tool's main body. An exception that escapes it (only set-up or
// allocation failures: the data paths do not throw) is reported on stderr as
// "<tool>: fatal: <what>" and the exit status is `fatal_exit`.
int run_main(const char* tool, int fatal_exit, int (*body)(int argc, char** argv), int argc, char** argv);

}  // namespace pgwire
