// Rotation of pgproxy's SQL log and capture without logrotate: the active file
// keeps its configured name; a closed one is renamed after the UTC time it was
// opened (pgproxy.log -> pgproxy-20261202T174000Z.log), then compressed with
// zstd if asked (…Z.log.zst) and the oldest removed beyond --rotate-keep.
// The event loop decides when (size, interval, a failed capture); the writer
// thread renames and reopens; a thread of its own here compresses and prunes,
// so neither of the others ever waits for that.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pgproxy {

struct RotationOptions {
  uint64_t size = 0;       // rotate a file once this many bytes went into it (0 = never)
  int64_t interval_s = 0;  // rotate at every multiple of this since the epoch, UTC (0 = never)
  uint32_t keep = 0;       // closed files kept per file (0 = all)
  bool compress = false;   // zstd closed files
  int compress_level = 3;
  bool enabled() const { return size != 0 || interval_s != 0; }
};

// "DIR/STEM-20261202T174000Z.EXT" for "DIR/STEM.EXT" opened at start_ns;
// attempt > 0 appends "-N" before the extension (two rotations in one second).
std::string rotated_name(const std::string& path, int64_t start_ns, int attempt = 0);
// The closed files of `path` (compressed or not), oldest first.
std::vector<std::string> rotated_files(const std::string& path);
// Renames `path` to its rotated name for start_ns, after any closed file of
// the same second; "" if it could not (errno set; ENOENT: nothing at `path`).
std::string rename_to_rotated(const std::string& path, int64_t start_ns);
// The next multiple of interval_s seconds after now_ns (UTC-aligned).
int64_t next_rotation_ns(int64_t now_ns, int64_t interval_s);
// When the file was created (statx birth time) or else last modified; 0 if unknown.
int64_t file_start_ns(const std::string& path);

struct ClosedFileStats {
  std::atomic<uint64_t> compressed{0};
  std::atomic<uint64_t> compress_errors{0};
  std::atomic<uint64_t> removed{0};
};

// Compresses closed files and prunes the old ones, on its own thread.
class ClosedFiles {
 public:
  explicit ClosedFiles(RotationOptions opts) : opts_(opts) {}
  ~ClosedFiles() { stop(); }
  ClosedFiles(const ClosedFiles&) = delete;
  ClosedFiles& operator=(const ClosedFiles&) = delete;

  // `closed` was the active file `active` until now.
  void add(const std::string& active, const std::string& closed);
  // Finishes the file being compressed, leaves the others as they are (they
  // are complete files, compressed at the next start) and joins.
  void stop();
  const ClosedFileStats& stats() const { return stats_; }

 private:
  struct Job {
    std::string active, closed;
  };
  void run();
  void handle(const Job& job);
  void prune(const std::string& active);

  RotationOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
  ClosedFileStats stats_;
};

}  // namespace pgproxy
