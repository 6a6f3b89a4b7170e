#include "async_writer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "diag.hpp"
#include "net.hpp"

namespace pgproxy {

// ---------------------------------------------------------------------------
// In-process encoding of capture operations. Each operation:
//   u8 op, u64 session, i64 ts_ns, then
//   kOpen:  str client, str server
//   kFrame: u8 dir, u8 kind, u8 type, u8 flags(first=1,last=2), u32 length,
//           u32 body_offset, u64 offset, str body
//   kClose: str reason
//   kMeta:  str key, str value
// where str = u32 size + bytes. Host byte order: it never leaves the process.
namespace {

enum class Op : uint8_t { kOpen = 1, kFrame = 2, kClose = 3, kMeta = 4 };

template <class T>
void put(std::string& out, T v) {
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  out.append(raw, sizeof(T));
}
void put_str(std::string& out, std::string_view s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}
void put_head(std::string& out, Op op, uint64_t session, int64_t ts) {
  put<uint8_t>(out, static_cast<uint8_t>(op));
  put<uint64_t>(out, session);
  put<int64_t>(out, ts);
}

// Reads what put() wrote; the data was produced by this process, so running
// out of bytes means a bug: the decoder then stops (ok() false).
class OpReader {
 public:
  explicit OpReader(std::string_view data) : data_(data) {}
  template <class T>
  T get() {
    T v{};
    if (data_.size() - pos_ < sizeof(T)) {
      bad_ = true;
      pos_ = data_.size();
      return v;
    }
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view str() {
    auto n = get<uint32_t>();
    if (data_.size() - pos_ < n) {
      bad_ = true;
      pos_ = data_.size();
      return {};
    }
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool at_end() const { return pos_ >= data_.size(); }
  bool ok() const { return !bad_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool bad_ = false;
};

size_t count_lines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

void WriteBatch::capture_open(uint64_t session, int64_t ts_ns, std::string_view client, std::string_view server) {
  put_head(capture, Op::kOpen, session, ts_ns);
  put_str(capture, client);
  put_str(capture, server);
  ++capture_records;
}

void WriteBatch::capture_frame(uint64_t session, int64_t ts_ns, pgwire::Direction dir, const pgwire::Frame& frame) {
  put_head(capture, Op::kFrame, session, ts_ns);
  put<uint8_t>(capture, static_cast<uint8_t>(dir));
  put<uint8_t>(capture, static_cast<uint8_t>(frame.kind));
  put<uint8_t>(capture, frame.type);
  put<uint8_t>(capture, static_cast<uint8_t>((frame.first ? 1 : 0) | (frame.last ? 2 : 0)));
  put<uint32_t>(capture, frame.length);
  put<uint32_t>(capture, frame.body_offset);
  put<uint64_t>(capture, frame.offset);
  put_str(capture, pgwire::as_string_view(frame.body));
  ++capture_records;
}

void WriteBatch::capture_close(uint64_t session, int64_t ts_ns, std::string_view reason) {
  put_head(capture, Op::kClose, session, ts_ns);
  put_str(capture, reason);
  ++capture_records;
}

void WriteBatch::capture_meta(uint64_t session, int64_t ts_ns, std::string_view key, pgwire::Bytes value) {
  put_head(capture, Op::kMeta, session, ts_ns);
  put_str(capture, key);
  put_str(capture, pgwire::as_string_view(value));
  ++capture_records;
}

void WriteBatch::clear() {
  log.clear();
  capture.clear();
  log_lines = 0;
  capture_records = 0;
  reopen = false;
  accounted = 0;
}

// ---------------------------------------------------------------------------

AsyncWriter::AsyncWriter(WriterOptions opts) : opts_(std::move(opts)) {}

std::unique_ptr<AsyncWriter> AsyncWriter::start(WriterOptions opts, std::string& error) {
  std::unique_ptr<AsyncWriter> w(new AsyncWriter(std::move(opts)));
  w->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake_fd_ < 0) {
    error = "eventfd: " + errno_text(errno);
    return nullptr;
  }
  if (!w->open_log(error) || !w->open_capture(error)) return nullptr;
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  return w;
}

AsyncWriter::~AsyncWriter() {
  begin_stop();
  join();
  if (log_owned_ && log_fd_ >= 0) close(log_fd_);
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
    error = fmt::format("cannot open SQL log {}: {}", opts_.sql_log_path, errno_text(errno));
    return false;
  }
  if (log_owned_ && log_fd_ >= 0) close(log_fd_);
  log_fd_ = fd;
  log_owned_ = true;
  return true;
}

bool AsyncWriter::open_capture(std::string& error) {
  if (opts_.capture_path.empty()) return true;
  auto created = opts_.capture_path == "-" ? pgwire::CaptureWriter::from_fd(STDOUT_FILENO, false, opts_.capture)
                                           : pgwire::CaptureWriter::create(opts_.capture_path, opts_.capture);
  if (!created.ok()) {
    error = fmt::format("cannot create capture {}: {}", opts_.capture_path, created.error().describe());
    return false;
  }
  if (capture_) {
    pgwire::Status st = capture_->close();
    if (!st.ok()) capture_failed(st, 0);
  }
  capture_ = std::move(created.value());
  return true;
}

void AsyncWriter::submit(WriteBatch& batch) {
  if (batch.empty()) return;
  size_t n = batch.log.capacity() + batch.capture.capacity() + sizeof(WriteBatch);
  batch.accounted = n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      // Only reachable by a bug in the caller; count rather than lose silently.
      stats_.lines_lost += batch.log_lines;
      stats_.records_lost += batch.capture_records;
      batch.clear();
      return;
    }
    queue_.push_back(std::exchange(batch, WriteBatch{}));
    queued_bytes_ += n;
  }
  cv_.notify_one();
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
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) break;  // stopping and drained
    std::deque<WriteBatch> work;
    work.swap(queue_);
    lock.unlock();
    bool was_high = queued_bytes() > opts_.low_water;
    for (const WriteBatch& b : work) {
      process(b);
      queued_bytes_ -= b.accounted;
    }
    if (capture_) {
      pgwire::Status st = capture_->flush();
      if (!st.ok()) capture_failed(st, 0);
    }
    if (was_high && queued_bytes() <= opts_.low_water) signal_wake();
    lock.lock();
  }
  lock.unlock();
  if (capture_) {
    pgwire::Status st = capture_->close();
    if (!st.ok()) capture_failed(st, 0);
    capture_.reset();
  }
  if (log_fd_ >= 0 && log_owned_) {
    if (fsync(log_fd_) != 0 && errno != EINVAL) {
      // EINVAL: a pipe or terminal; anything else is worth knowing.
      diag("SQL log fsync: {}", errno_text(errno));
    }
  }
  finished_ = true;
  signal_wake();
}

void AsyncWriter::process(const WriteBatch& batch) {
  if (batch.reopen) reopen();
  if (!batch.log.empty()) write_log(batch);
  if (!batch.capture.empty()) write_capture(batch);
}

void AsyncWriter::reopen() {
  std::string error;
  if (!opts_.sql_log_path.empty() && opts_.sql_log_path != "-") {
    if (!open_log(error)) diag("SIGHUP: {}; still writing to the old file", error);
  }
  if (!opts_.capture_path.empty() && opts_.capture_path != "-") {
    if (!open_capture(error)) diag("SIGHUP: {}; still writing to the old file", error);
  }
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
    size_t lines_done = count_lines(std::string_view(batch.log).substr(0, written));
    uint64_t lost = batch.log_lines > lines_done ? batch.log_lines - lines_done : 0;
    stats_.lines_lost += lost;
    stats_.lines_written += lines_done;
    ++stats_.write_errors;
    log_lost_in_burst_ += lost;
    if (!log_failing_) {
      log_failing_ = true;
      diag("ERROR: writing the SQL log {} failed: {}; lines are being LOST (proxying continues)", opts_.sql_log_path,
           errno_text(err));
    }
    return;
  }
  stats_.lines_written += batch.log_lines;
  if (log_failing_) {
    log_failing_ = false;
    diag("SQL log {} writable again; {} lines were lost", opts_.sql_log_path, log_lost_in_burst_);
    log_lost_in_burst_ = 0;
  }
}

void AsyncWriter::capture_failed(const pgwire::Status& st, uint64_t lost) {
  stats_.records_lost += lost;
  capture_lost_in_burst_ += lost;
  ++stats_.write_errors;
  if (!capture_failing_) {
    capture_failing_ = true;
    diag("ERROR: writing the capture {} failed: {}; records are being LOST (proxying continues)", opts_.capture_path,
         st.error().describe());
  }
}

void AsyncWriter::capture_succeeded() {
  if (capture_failing_) {
    capture_failing_ = false;
    diag("capture {} writable again; {} records were lost", opts_.capture_path, capture_lost_in_burst_);
    capture_lost_in_burst_ = 0;
  }
}

void AsyncWriter::write_capture(const WriteBatch& batch) {
  if (!capture_) {
    stats_.records_lost += batch.capture_records;
    return;
  }
  OpReader r(batch.capture);
  uint64_t done = 0;
  while (!r.at_end()) {
    auto op = static_cast<Op>(r.get<uint8_t>());
    auto session = r.get<uint64_t>();
    auto ts = r.get<int64_t>();
    pgwire::Status st;
    switch (op) {
      case Op::kOpen: {
        std::string_view client = r.str();
        std::string_view server = r.str();
        if (r.ok()) st = capture_->session_open(session, ts, client, server);
        break;
      }
      case Op::kFrame: {
        pgwire::Frame f;
        auto dir = static_cast<pgwire::Direction>(r.get<uint8_t>());
        f.kind = static_cast<pgwire::FrameKind>(r.get<uint8_t>());
        f.type = r.get<uint8_t>();
        auto flags = r.get<uint8_t>();
        f.first = (flags & 1) != 0;
        f.last = (flags & 2) != 0;
        f.length = r.get<uint32_t>();
        f.body_offset = r.get<uint32_t>();
        f.offset = r.get<uint64_t>();
        f.body = pgwire::as_bytes(r.str());
        if (r.ok()) st = capture_->frame(session, ts, dir, f);
        break;
      }
      case Op::kClose: {
        std::string_view reason = r.str();
        if (r.ok()) st = capture_->session_close(session, ts, reason);
        break;
      }
      case Op::kMeta: {
        std::string_view key = r.str();
        std::string_view value = r.str();
        if (r.ok()) st = capture_->session_meta(session, ts, key, pgwire::as_bytes(value));
        break;
      }
      default:  // unreachable: only this file encodes
        diag("internal error: bad capture operation {}", static_cast<int>(op));
        stats_.records_lost += batch.capture_records - done;
        return;
    }
    if (!r.ok()) {
      diag("internal error: truncated capture operation");
      stats_.records_lost += batch.capture_records - done;
      return;
    }
    ++done;
    if (st.ok()) {
      ++stats_.records_written;
      capture_succeeded();
    } else {
      capture_failed(st, 1);
    }
  }
}

}  // namespace pgproxy
