#include "async_writer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "diag.hpp"
#include "pgwire/system.hpp"

namespace pgproxy {

namespace {

// Emptied batches kept for reuse; one that grew past the second limit in a
// burst is freed instead, so a quiet proxy gives the memory back.
constexpr size_t kKeptBatches = 8;
constexpr size_t kMaxKeptBatchMemory = size_t{2} << 20;

size_t count_lines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

size_t whole_log_prefix(std::string_view written, bool csv) {
  if (!csv) {
    const size_t nl = written.rfind('\n');
    return nl == std::string_view::npos ? 0 : nl + 1;
  }
  // A doubled quote inside a field flips twice: only the field's own quotes count.
  size_t whole = 0;
  bool quoted = false;
  for (size_t i = 0; i < written.size(); ++i) {
    if (written[i] == '"') {
      quoted = !quoted;
    } else if (written[i] == '\n' && !quoted) {
      whole = i + 1;
    }
  }
  return whole;
}

void WriteBatch::clear() {
  log.clear();
  log_lines = 0;
  capture.clear();
  reopen = false;
  rotate_log = false;
  rotate_capture = false;
  accounted = 0;
}

// ---------------------------------------------------------------------------

namespace {

// The SQL log and the capture hold an exclusive flock() while this process
// writes them, so that a second pgproxy given the same file (easily done with
// --reuse-port) refuses to start instead of truncating, renaming or
// interleaving the first one's file. Only regular files: stdout, /dev/null or
// a FIFO may well be shared on purpose.

// What lock_regular() did. kBusy: another process holds the lock; kNone:
// nothing taken (not a regular file, or an error).
enum class FileLock { kTaken, kBusy, kNone };

// flock(op | LOCK_NB) on `fd`, if it is a regular file.
FileLock lock_regular(int fd, int op) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return FileLock::kNone;
  if (flock(fd, op | LOCK_NB) == 0) return FileLock::kTaken;
  return errno == EWOULDBLOCK ? FileLock::kBusy : FileLock::kNone;
}

// A descriptor of its own for the lock on `path` (none if it cannot be opened).
int open_for_lock(const std::string& path) { return open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK); }

// Whether another process holds the lock on the regular file at `path`.
bool locked_by_another(const std::string& path) {
  int fd = open_for_lock(path);
  if (fd < 0) return false;
  bool locked = lock_regular(fd, LOCK_SH) == FileLock::kBusy;
  close(fd);
  return locked;
}

std::string in_use(std::string_view what, const std::string& path, std::string_view option) {
  return fmt::format("the {} {} is being written by another process (another pgproxy? each one needs its own {})", what,
                     path, option);
}

}  // namespace

AsyncWriter::AsyncWriter(WriterOptions opts) : opts_(std::move(opts)), closed_(opts_.rotation) {}

std::unique_ptr<AsyncWriter> AsyncWriter::start(WriterOptions opts, std::string& error) {
  std::unique_ptr<AsyncWriter> w(new AsyncWriter(std::move(opts)));
  w->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake_fd_ < 0) {
    error = "eventfd: " + pgwire::errno_text(errno);
    return nullptr;
  }
  const std::string& cap = w->opts_.capture_path;
  bool capture_file = !cap.empty() && cap != "-";
  if (capture_file && w->opts_.capture.set_id == 0) {
    // Every file this process writes at that path is one set: a reader
    // follows a session from one file into the next.
    uint64_t id = 0;
    while (id == 0) {
      if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id))
        id = static_cast<uint64_t>(pgwire::realtime_ns());
    }
    w->opts_.capture.set_id = id;
  }
  if (capture_file && locked_by_another(cap)) {
    error = in_use("capture", cap, "--capture");
    return nullptr;
  }
  // A capture left by an earlier run (a restart) joins the closed files
  // instead of being overwritten.
  if (capture_file && !w->set_aside_existing(cap)) {
    error = fmt::format("cannot rename the existing capture {} out of the way: {}", cap, pgwire::errno_text(errno));
    return nullptr;
  }
  if (!w->open_log(error) || !w->open_capture(error)) return nullptr;
  w->log_initial_size_ = w->log_size_;
  if (w->log_initial_size_ > 0) w->log_started_ns_ = file_start_ns(w->opts_.sql_log_path);
  w->log_rotatable_ = w->log_owned_ && w->log_regular_;
  struct stat st {};
  w->capture_rotatable_ = capture_file && stat(cap.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (w->opts_.rotation.enabled() || w->opts_.rotation.keep != 0) {
    // Rotated names (and --rotate-keep's removals) next to /dev/null would be
    // files in /dev: only regular files are rotated.
    if (w->log_rotatable_) w->queue_leftovers(w->opts_.sql_log_path);
    if (w->capture_rotatable_) w->queue_leftovers(cap);
  }
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  return w;
}

AsyncWriter::~AsyncWriter() {
  begin_stop();
  join();
  if (log_owned_ && log_fd_ >= 0) close(log_fd_);
  if (capture_lock_fd_ >= 0) close(capture_lock_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool AsyncWriter::open_log(std::string& error) {
  if (opts_.sql_log_path.empty()) return true;
  if (opts_.sql_log_path == "-") {
    log_fd_ = STDOUT_FILENO;
    log_owned_ = false;
    return true;
  }
  int fd = open(opts_.sql_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = fmt::format("cannot open SQL log {}: {}", opts_.sql_log_path, pgwire::errno_text(errno));
    return false;
  }
  struct stat st {};
  const bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (regular) {
    struct stat old {};
    if (log_owned_ && log_fd_ >= 0 && fstat(log_fd_, &old) == 0 && old.st_dev == st.st_dev && old.st_ino == st.st_ino) {
      // The same file again (SIGHUP without a rotation): its lock is held by
      // the old descriptor, and goes with it.
      close(log_fd_);
      log_fd_ = -1;
    }
    if (lock_regular(fd, LOCK_EX) == FileLock::kBusy) {
      close(fd);
      error = in_use("SQL log", opts_.sql_log_path, "--sql-log");
      return false;
    }
  }
  if (log_owned_ && log_fd_ >= 0) close(log_fd_);
  log_fd_ = fd;
  log_owned_ = true;
  log_regular_ = regular;
  log_size_ = log_regular_ ? static_cast<uint64_t>(st.st_size) : 0;
  log_started_ns_ = pgwire::realtime_ns();
  return true;
}

bool AsyncWriter::open_capture(std::string& error) {
  if (opts_.capture_path.empty()) return true;
  struct stat cur {};
  if (capture_lock_fd_ >= 0 && stat(opts_.capture_path.c_str(), &cur) == 0 && cur.st_dev == capture_dev_ &&
      cur.st_ino == capture_ino_) {
    // Our own file, written anew after a failure: our lock is no other process's.
    close(capture_lock_fd_);
    capture_lock_fd_ = -1;
  }
  if (opts_.capture_path != "-" && locked_by_another(opts_.capture_path)) {
    error = in_use("capture", opts_.capture_path, "--capture");
    return false;
  }
  auto created = opts_.capture_path == "-" ? pgwire::CaptureWriter::from_fd(STDOUT_FILENO, false, opts_.capture)
                                           : pgwire::CaptureWriter::create(opts_.capture_path, opts_.capture);
  if (!created.ok()) {
    error = fmt::format("cannot create capture {}: {}", opts_.capture_path, created.error().describe());
    return false;
  }
  close_capture();
  capture_ = std::move(created.value());
  capture_started_ns_ = pgwire::realtime_ns();
  if (opts_.capture_path != "-") {
    // The lock is taken on a descriptor of its own: the writer's is inside CaptureWriter.
    int lock = open_for_lock(opts_.capture_path);
    if (lock >= 0 && lock_regular(lock, LOCK_EX) != FileLock::kTaken) {
      close(lock);
      lock = -1;
    }
    if (capture_lock_fd_ >= 0) close(capture_lock_fd_);
    capture_lock_fd_ = lock;
  }
  ++opts_.capture.set_index;  // of the next file
  struct stat st {};
  if (opts_.capture_path != "-" && stat(opts_.capture_path.c_str(), &st) == 0) {
    capture_dev_ = st.st_dev;
    capture_ino_ = st.st_ino;
  }
  capture_down_ = false;
  // A new file: a failing burst of the old one ends here, reported when the
  // new one writes (or fails) next.
  return true;
}

void AsyncWriter::submit(WriteBatch& batch) {
  if (batch.empty()) return;
  batch.accounted = batch.memory();
  WriteBatch fresh = new_batch();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      // Only reachable by a bug in the caller; count rather than lose silently.
      stats_.lines_lost += batch.log_lines;
      refused_records_ += batch.capture.count();
      stats_.records_lost += batch.capture.count();
      batch.clear();
      return;
    }
    queued_bytes_ += batch.accounted;
    queue_.push_back(std::move(batch));
    if (!free_.empty()) {
      fresh = std::move(free_.back());
      free_.pop_back();
      ++stats_.batches_recycled;
    }
  }
  cv_.notify_one();
  batch = std::move(fresh);
}

bool AsyncWriter::should_throttle() {
  size_t q = queued_bytes();
  if (throttled_) {
    if (q < opts_.low_water) throttled_ = false;
  } else if (q > opts_.high_water) {
    throttled_ = true;
  }
  return throttled_;
}

void AsyncWriter::clear_wake() {
  uint64_t v;
  while (read(wake_fd_, &v, sizeof v) > 0) {
  }
}

void AsyncWriter::signal_wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void AsyncWriter::begin_stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
}

void AsyncWriter::join() {
  if (thread_.joinable()) thread_.join();
}

void AsyncWriter::run() {
  std::vector<WriteBatch> work;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) break;  // stopping and drained
    work.swap(queue_);
    lock.unlock();
    bool was_high = queued_bytes() > opts_.low_water;
    for (WriteBatch& b : work) {
      process(b);
      queued_bytes_ -= b.accounted;
      b.clear();
    }
    if (capture_) capture_status(capture_->flush());
    if (was_high && queued_bytes() <= opts_.low_water) signal_wake();
    lock.lock();
    for (WriteBatch& b : work) {
      if (free_.size() < kKeptBatches && b.memory() <= kMaxKeptBatchMemory) free_.push_back(std::move(b));
    }
    work.clear();  // frees the rest; the vector keeps its slots for the next swap
  }
  lock.unlock();
  close_capture();
  closed_.stop();
  if (log_fd_ >= 0 && log_owned_) {
    if (fsync(log_fd_) != 0 && errno != EINVAL) {
      // EINVAL: a pipe or terminal; anything else is worth knowing.
      diag("SQL log fsync: {}", pgwire::errno_text(errno));
    }
  }
  finished_ = true;
  signal_wake();
}

void AsyncWriter::process(const WriteBatch& batch) {
  if (batch.reopen) reopen();
  if (batch.rotate_log) rotate_log();
  if (batch.rotate_capture) rotate_capture();
  if (!batch.log.empty()) write_log(batch);
  if (!batch.capture.empty()) write_capture(batch);
}

void AsyncWriter::reopen() {
  std::string error;
  if (!opts_.sql_log_path.empty() && opts_.sql_log_path != "-") {
    if (!open_log(error)) diag("SIGHUP: {}; still writing to the old file", error);
  }
  if (!opts_.capture_path.empty() && opts_.capture_path != "-") {
    // Not moved away (a reload, say, for new TLS certificates): a new file
    // there would overwrite the one being written.
    struct stat st {};
    if (capture_ && !capture_->failed() && stat(opts_.capture_path.c_str(), &st) == 0 && st.st_dev == capture_dev_ &&
        st.st_ino == capture_ino_) {
      return;
    }
    if (!open_capture(error)) diag("SIGHUP: {}; still writing to the old file", error);
  }
}

// A capture file found at start: renamed after its own start time and handed
// to the closed files (compressed, pruned as they are). False if it could not be.
bool AsyncWriter::set_aside_existing(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return true;
  std::string closed = rename_to_rotated(path, file_start_ns(path));
  if (closed.empty()) return false;
  diag("an earlier capture was at {}: renamed to {}", path, closed);
  closed_.add(path, closed);
  return true;
}

// Closed files an earlier run left uncompressed (it stopped while they were
// waiting), and the pruning --rotate-keep asks for.
void AsyncWriter::queue_leftovers(const std::string& path) {
  if (opts_.rotation.compress) {
    for (const std::string& f : rotated_files(path)) {
      if (f.size() >= 4 && f.compare(f.size() - 4, 4, ".zst") == 0) continue;
      (void)unlink((f + ".zst.tmp").c_str());  // a compression cut short by a kill
      closed_.add(path, f);
    }
  }
  closed_.add(path, "");  // prune only
}

void AsyncWriter::rotate_log() {
  if (log_fd_ < 0 || !log_rotatable_) return;
  // Renamed while open: the descriptor follows the file, so if the new one
  // cannot be opened the lines keep going to the old one, renamed back.
  std::string closed = rename_to_rotated(opts_.sql_log_path, log_started_ns_);
  if (closed.empty() && errno != ENOENT) {
    diag("cannot rotate the SQL log {}: {}; still writing to it", opts_.sql_log_path, pgwire::errno_text(errno));
    return;
  }
  std::string error;
  if (!open_log(error)) {
    if (!closed.empty()) (void)rename(closed.c_str(), opts_.sql_log_path.c_str());
    diag("cannot rotate the SQL log: {}; still writing to the old file", error);
    return;
  }
  ++stats_.log_rotations;
  if (!closed.empty()) closed_.add(opts_.sql_log_path, closed);
}

void AsyncWriter::rotate_capture() {
  if (opts_.capture_path.empty() || opts_.capture_path == "-") return;
  std::string closed;
  bool restart = capture_ == nullptr || capture_->failed();
  // A file that failed before its first record holds nothing worth keeping:
  // it is overwritten, so a disk that stays full does not fill a directory
  // with empty files, one a second.
  bool worthless = restart && capture_ != nullptr && capture_->records_written() == 0;
  if (!capture_rotatable_ && !restart) return;  // written where it is, never renamed
  if (capture_ != nullptr && !worthless && capture_rotatable_) {
    closed = rename_to_rotated(opts_.capture_path, capture_started_ns_);
    if (closed.empty() && errno != ENOENT) {
      diag("cannot rotate the capture {}: {}; still writing to it", opts_.capture_path, pgwire::errno_text(errno));
      return;
    }
  }
  if (capture_ != nullptr) {
    close_capture();
    capture_down_ = true;
  }
  std::string error;
  if (!open_capture(error)) {
    // Records are counted lost until a later attempt succeeds.
    if (!capture_failing_) {
      capture_failing_ = true;
      capture_lost_at_burst_ = stats_.records_lost;
      diag("ERROR: {}; records are being LOST (proxying continues; a new file is tried every second)", error);
    }
    capture_down_ = true;
  } else if (restart) {
    // capture_status() says "writable again" once the new file takes records.
    ++stats_.capture_restarts;
  } else {
    ++stats_.capture_rotations;
  }
  if (!closed.empty()) closed_.add(opts_.capture_path, closed);
}

void AsyncWriter::write_log(const WriteBatch& batch) {
  if (log_fd_ < 0) {
    stats_.lines_lost += batch.log_lines;
    return;
  }
  std::string_view rest = batch.log;
  while (!rest.empty()) {
    ssize_t w = write(log_fd_, rest.data(), rest.size());
    if (w > 0) {
      rest.remove_prefix(static_cast<size_t>(w));
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {  // stdout may be a non-blocking pipe: this thread may wait
      pollfd p{log_fd_, POLLOUT, 0};
      (void)poll(&p, 1, 1000);
      continue;
    }
    int err = w < 0 ? errno : EIO;
    // The partial line already written stays (an append-only log cannot take
    // it back); it and every line after it count as lost.
    size_t written = batch.log.size() - rest.size();
    // The torn line (record) is cut off, so that the next one, once the disk
    // has room again, starts a line of its own.
    const size_t whole = whole_log_prefix(std::string_view(batch.log).substr(0, written), opts_.log_csv);
    size_t lines_done = count_lines(std::string_view(batch.log).substr(0, whole));
    uint64_t lost = batch.log_lines > lines_done ? batch.log_lines - lines_done : 0;
    stats_.lines_lost += lost;
    stats_.lines_written += lines_done;
    if (log_regular_ && whole < written && ftruncate(log_fd_, static_cast<off_t>(log_size_ + whole)) != 0) {
      diag("cannot cut the torn last line of {}: {}", opts_.sql_log_path, pgwire::errno_text(errno));
    }
    log_size_ += whole;
    ++stats_.write_errors;
    log_lost_in_burst_ += lost;
    if (!log_failing_) {
      log_failing_ = true;
      diag("ERROR: writing the SQL log {} failed: {}; lines are being LOST (proxying continues)", opts_.sql_log_path,
           pgwire::errno_text(err));
    }
    return;
  }
  stats_.lines_written += batch.log_lines;
  log_size_ += batch.log.size();
  if (log_failing_) {
    log_failing_ = false;
    diag("SQL log {} writable again; {} lines were lost", opts_.sql_log_path, log_lost_in_burst_);
    log_lost_in_burst_ = 0;
  }
}

void AsyncWriter::write_capture(const WriteBatch& batch) {
  if (!capture_) {
    records_lost_before_ += batch.capture.count();
    update_capture_counts();
    return;
  }
  if (capture_->failed()) {
    // Refused whole: the writer stays failed until the next reopen.
    records_lost_before_ += batch.capture.count();
    update_capture_counts();
    return;
  }
  capture_status(capture_->append(batch.capture));
}

// Counts from the capture writer, which knows exactly which records reached
// the file: after a failure, whatever it accepted and did not write is lost.
void AsyncWriter::update_capture_counts() {
  uint64_t written = records_written_before_;
  uint64_t lost = records_lost_before_;
  if (capture_) {
    written += capture_->records_written();
    if (capture_->failed()) lost += capture_->records_accepted() - capture_->records_written();
  }
  stats_.records_written = written;
  stats_.records_lost = lost + refused_records_.load();
}

void AsyncWriter::capture_status(const pgwire::Status& st) {
  update_capture_counts();
  if (!st.ok() || (capture_ && capture_->failed())) capture_down_ = true;
  if (!st.ok()) {
    ++stats_.write_errors;
    if (!capture_failing_) {
      capture_failing_ = true;
      capture_lost_at_burst_ = stats_.records_lost;
      diag("ERROR: writing the capture {} failed: {}; records are being LOST (proxying continues)", opts_.capture_path,
           st.error().describe());
    }
  } else if (capture_failing_ && !capture_->failed()) {
    capture_failing_ = false;
    diag("capture {} writable again; {} records were lost", opts_.capture_path,
         stats_.records_lost - capture_lost_at_burst_);
  }
}

// Closes the current capture file; its counts become history.
void AsyncWriter::close_capture() {
  if (!capture_) return;
  capture_status(capture_->close());
  records_written_before_ += capture_->records_written();
  records_lost_before_ += capture_->records_accepted() - capture_->records_written();
  capture_.reset();
  update_capture_counts();
}

}  // namespace pgproxy
