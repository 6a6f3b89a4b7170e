// Recorded real traffic (corpus/recorded/*.rec): a plain-text format that depends on nothing in
// libpgwire, so the library can be tested against it.
//
//   # free-form comment lines: what was run, server version, ...
//   <conn> <F|B> <usec> <hex bytes>
//
// One line per chunk, in the order the relay read them. <conn> is the connection index (0, 1, ...
// in accept order), F = frontend to backend (client -> server), B = backend to frontend, <usec>
// is microseconds since the relay started (monotonic clock), <hex bytes> the chunk exactly as one
// recv() returned it, lowercase hex without separators (never empty). Blank lines are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgwire::test {

struct Chunk {
  int conn = 0;
  char dir = 'F';  // 'F' frontend -> backend, 'B' backend -> frontend
  uint64_t usec = 0;
  std::vector<std::byte> bytes;
};

struct Recording {
  std::vector<std::string> comments;  // the header lines, without "# "
  std::vector<Chunk> chunks;
};

// Thrown by parse_recording / load_recording; what() is "<source>:<line>: <problem>".
class RecordingParseError : public std::runtime_error {
 public:
  RecordingParseError(const std::string& source, size_t line, const std::string& problem);
  size_t line() const { return line_; }

 private:
  size_t line_;
};

Recording parse_recording(std::string_view text, const std::string& source = "<text>");
// Throws RecordingParseError for a bad line, std::runtime_error if the file cannot be read.
Recording load_recording(const std::string& path);

std::string format_recording(const Recording& recording);
void save_recording(const std::string& path, const Recording& recording);

// Connection indices that occur in the recording, ascending.
std::vector<int> connections(const Recording& recording);
// All bytes of one direction of one connection, concatenated in order.
std::vector<std::byte> stream_bytes(const Recording& recording, int conn, char dir);

}  // namespace pgwire::test
