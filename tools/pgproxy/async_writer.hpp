// The disk side of pgproxy: the event loop never touches the SQL log or the
// capture file. It appends formatted lines and encoded capture operations to a
// WriteBatch and hands whole batches to the AsyncWriter's thread through a
// bounded queue (a mutex and a condition variable). When the queue is above its
// high-water mark the event loop stops reading sockets until it drains: lines
// are never dropped for being late. A failed write (ENOSPC, EIO) is reported on
// stderr once per burst and counted; proxying goes on.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "pgwire/capture.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/protocol.hpp"

namespace pgproxy {

// SQL log lines and capture operations produced by one stretch of the event
// loop. Capture operations are encoded into `capture` (an in-process format,
// host byte order) so a batch is two byte strings however many frames it holds.
class WriteBatch {
 public:
  std::string log;      // complete lines, '\n' terminated
  std::string capture;  // encoded operations, see async_writer.cpp
  uint64_t log_lines = 0;
  uint64_t capture_records = 0;  // operations in `capture`
  bool reopen = false;           // reopen both files before writing this batch
  size_t accounted = 0;          // memory counted against the queue limit (set by submit)

  void capture_open(uint64_t session, int64_t ts_ns, std::string_view client, std::string_view server);
  void capture_frame(uint64_t session, int64_t ts_ns, pgwire::Direction dir, const pgwire::Frame& frame);
  void capture_close(uint64_t session, int64_t ts_ns, std::string_view reason);
  void capture_meta(uint64_t session, int64_t ts_ns, std::string_view key, pgwire::Bytes value);

  size_t size() const { return log.size() + capture.size(); }
  bool empty() const { return log.empty() && capture.empty() && !reopen; }
  void clear();
};

struct WriterOptions {
  std::string sql_log_path;  // "" = no SQL log, "-" = stdout
  std::string capture_path;  // "" = no capture, "-" = stdout
  pgwire::CaptureWriterOptions capture;
  // Queued memory (allocated, not just used) above which the event loop stops
  // reading, and below which it resumes.
  size_t high_water = size_t{16} << 20;
  size_t low_water = size_t{4} << 20;
};

struct WriterStats {
  std::atomic<uint64_t> lines_written{0};
  std::atomic<uint64_t> lines_lost{0};
  std::atomic<uint64_t> records_written{0};
  std::atomic<uint64_t> records_lost{0};
  std::atomic<uint64_t> write_errors{0};
};

class AsyncWriter {
 public:
  // Opens (creates, mode 0600) both files and starts the thread. Files are
  // opened here, synchronously, so a bad path fails at start-up.
  static std::unique_ptr<AsyncWriter> start(WriterOptions opts, std::string& error);
  ~AsyncWriter();
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  // Queues a batch (moved from; `batch` is left empty). Takes a mutex for a
  // moment, never waits for the disk.
  void submit(WriteBatch& batch);

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

 private:
  explicit AsyncWriter(WriterOptions opts);
  bool open_log(std::string& error);
  bool open_capture(std::string& error);
  void run();
  void process(const WriteBatch& batch);
  void write_log(const WriteBatch& batch);
  void write_capture(const WriteBatch& batch);
  void capture_failed(const pgwire::Status& st, uint64_t lost);
  void capture_succeeded();
  void reopen();
  void signal_wake();

  WriterOptions opts_;
  int log_fd_ = -1;
  bool log_owned_ = false;
  std::unique_ptr<pgwire::CaptureWriter> capture_;
  bool log_failing_ = false;  // inside a burst of log write failures
  uint64_t log_lost_in_burst_ = 0;
  bool capture_failing_ = false;
  uint64_t capture_lost_in_burst_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WriteBatch> queue_;
  bool stopping_ = false;
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<bool> finished_{false};
  bool throttled_ = false;  // event loop side only
  int wake_fd_ = -1;
  WriterStats stats_;
  std::thread thread_;
};

}  // namespace pgproxy
