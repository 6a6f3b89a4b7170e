// What every tool needs from the operating system and nothing else does:
// readable errno values and the two clocks.
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

}  // namespace pgwire
