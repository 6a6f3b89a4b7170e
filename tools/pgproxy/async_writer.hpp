// The disk side of pgproxy: the event loop never touches the SQL log or the
// capture file. It appends finished SQL log lines and encoded capture records
// (pgwire::CaptureRecords, the bytes that go into the file) to a WriteBatch and
// hands whole batches to the AsyncWriter's thread through a bounded queue (a
// mutex and a condition variable); the thread only writes them. Batches come
// back emptied but with their memory, so a busy loop does not allocate. When
// the queue is above its high-water mark the event loop stops reading sockets
// until it drains: lines are never dropped for being late. A failed write
// (ENOSPC, EIO) is reported on stderr once per burst and counted; proxying
// goes on.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pgwire/capture.hpp"
#include "rotation.hpp"

namespace pgproxy {

// SQL log lines and capture records produced by one stretch of the event loop.
struct WriteBatch {
  explicit WriteBatch(bool redact_secrets = true) : capture(redact_secrets) {}

  std::string log;  // complete lines, '\n' terminated
  uint64_t log_lines = 0;
  pgwire::CaptureRecords capture;  // encoded records, as they go into the file
  bool reopen = false;             // reopen both files before writing this batch (SIGHUP)
  bool rotate_log = false;         // close the SQL log under its rotated name, start a new one
  bool rotate_capture = false;     // the same for the capture
  size_t accounted = 0;            // memory counted against the queue limit (set by submit)

  size_t size() const { return log.size() + capture.size(); }
  bool empty() const { return log.empty() && capture.empty() && !reopen && !rotate_log && !rotate_capture; }
  // Memory held, whether used or not.
  size_t memory() const { return sizeof(WriteBatch) + log.capacity() + capture.capacity(); }
  void clear();  // keeps the memory
};

struct WriterOptions {
  std::string sql_log_path;              // "" = no SQL log, "-" = stdout
  std::string capture_path;              // "" = no capture, "-" = stdout
  pgwire::CaptureWriterOptions capture;  // set_id: of the rotated set (each new file: set_index + 1)
  RotationOptions rotation;
  // The SQL log is csvlog, whose records may hold newlines inside quoted
  // fields: a torn write is cut back to the last whole record, not line.
  bool log_csv = false;
  // Queued memory (allocated, not just used) above which the event loop stops
  // reading, and below which it resumes.
  size_t high_water = size_t{16} << 20;
  size_t low_water = size_t{4} << 20;
};

// How much of `written` (the start of a batch of whole lines or csvlog
// records) is whole lines, or whole records when `csv`.
size_t whole_log_prefix(std::string_view written, bool csv);

struct WriterStats {
  std::atomic<uint64_t> lines_written{0};
  std::atomic<uint64_t> lines_lost{0};
  std::atomic<uint64_t> records_written{0};
  std::atomic<uint64_t> records_lost{0};
  std::atomic<uint64_t> write_errors{0};
  std::atomic<uint64_t> batches_recycled{0};  // submits that got an emptied batch back
  std::atomic<uint64_t> log_rotations{0};
  std::atomic<uint64_t> capture_rotations{0};
  std::atomic<uint64_t> capture_restarts{0};  // new files begun after a failed one
};

class AsyncWriter {
 public:
  // Opens (creates, mode 0600) both files and starts the thread. Files are
  // opened here, synchronously, so a bad path fails at start-up.
  static std::unique_ptr<AsyncWriter> start(WriterOptions opts, std::string& error);
  ~AsyncWriter();
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  // Queues `batch` and leaves an empty one in its place: one the thread has
  // written and emptied, with its memory, when there is one. Takes a mutex for
  // a moment, never waits for the disk.
  void submit(WriteBatch& batch);
  // An empty batch for the event loop to fill (capture records redacted as the options say).
  WriteBatch new_batch() const { return WriteBatch(opts_.capture.redact_secrets); }

  // Hysteresis on the queue size: true from above high water until below low water.
  bool should_throttle();
  size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }

  // Readable (eventfd) when the queue drained or the thread finished.
  int wake_fd() const { return wake_fd_; }
  void clear_wake();

  // After this, no more submits: the thread writes everything queued, flushes,
  // closes the files and exits; finished() turns true and wake_fd() fires.
  void begin_stop();
  bool finished() const { return finished_.load(); }
  void join();

  const WriterStats& stats() const { return stats_; }
  bool has_log() const { return !opts_.sql_log_path.empty(); }
  bool has_capture() const { return !opts_.capture_path.empty(); }
  // Whether a file can be rotated: only a regular file is. /dev/null, a FIFO
  // or a terminal is written where it is and never renamed (run as root,
  // renaming /dev/null and creating a regular file in its place would break
  // the whole machine). Known at start().
  bool log_rotatable() const { return log_rotatable_; }
  bool capture_rotatable() const { return capture_rotatable_; }
  // Bytes already in the SQL log when it was opened (appended to), for size rotation.
  uint64_t log_initial_size() const { return log_initial_size_; }
  // The capture has no working file (a write failed, or creating one did):
  // the event loop asks for a new one (rotate_capture) now and then.
  bool capture_down() const { return capture_down_.load(std::memory_order_relaxed); }
  const ClosedFileStats& closed_file_stats() const { return closed_.stats(); }

 private:
  explicit AsyncWriter(WriterOptions opts);
  bool open_log(std::string& error);
  bool open_capture(std::string& error);
  void close_capture();
  void run();
  void process(const WriteBatch& batch);
  void write_log(const WriteBatch& batch);
  void write_capture(const WriteBatch& batch);
  void capture_status(const pgwire::Status& st);
  void update_capture_counts();
  void reopen();
  void rotate_log();
  void rotate_capture();
  bool set_aside_existing(const std::string& path);
  void queue_leftovers(const std::string& path);
  void signal_wake();

  WriterOptions opts_;
  int log_fd_ = -1;
  int capture_lock_fd_ = -1;  // holds the capture file's flock() (see locked_by_another)
  bool log_owned_ = false;
  bool log_regular_ = false;  // a regular file: a torn last line can be cut off
  bool log_rotatable_ = false;
  bool capture_rotatable_ = false;
  uint64_t log_size_ = 0;  // of a regular file, as written so far
  uint64_t log_initial_size_ = 0;
  int64_t log_started_ns_ = 0;      // when the current SQL log was begun (its rotated name)
  int64_t capture_started_ns_ = 0;  // the same for the capture
  dev_t capture_dev_ = 0;           // which file the capture is (SIGHUP: was it moved away?)
  ino_t capture_ino_ = 0;
  std::atomic<bool> capture_down_{false};
  ClosedFiles closed_;
  std::unique_ptr<pgwire::CaptureWriter> capture_;
  bool log_failing_ = false;  // inside a burst of log write failures
  uint64_t log_lost_in_burst_ = 0;
  bool capture_failing_ = false;
  uint64_t capture_lost_at_burst_ = 0;  // records_lost when the burst began
  // Records of capture files closed (SIGHUP) and of batches no writer took.
  uint64_t records_written_before_ = 0;
  uint64_t records_lost_before_ = 0;
  std::atomic<uint64_t> refused_records_{0};  // submitted after begin_stop(): a caller's bug

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WriteBatch> queue_;
  std::vector<WriteBatch> free_;  // written and emptied, for submit() to hand back
  bool stopping_ = false;
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<bool> finished_{false};
  bool throttled_ = false;  // event loop side only
  int wake_fd_ = -1;
  WriterStats stats_;
  std::thread thread_;
};

}  // namespace pgproxy
