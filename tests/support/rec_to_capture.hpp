// Turns a recorded real conversation (corpus/recorded/*.rec) into a capture
// file, framing each connection as pgproxy does: frames with the recorded
// time of the chunk that completed them, a session per connection.
#pragma once

#include <string>

#include "pgwire/capture.hpp"

namespace pgwire::test {

// Base time added to the recording's microsecond offsets (a fixed date, so
// outputs are reproducible). Returns false with `error` set on failure.
bool recording_to_capture(const std::string& rec_path, const std::string& capture_path, bool with_backend,
                          std::string* error, int64_t base_ns = 1764298800000000000);

}  // namespace pgwire::test
