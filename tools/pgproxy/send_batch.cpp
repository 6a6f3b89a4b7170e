#include "send_batch.hpp"

#if PGWIRE_IO_URING
#include <liburing.h>
#endif
#include <sys/socket.h>

#include <cerrno>

#include "diag.hpp"
#include "pgwire/system.hpp"

namespace pgproxy {

namespace {
constexpr unsigned kRingEntries = 256;  // writes per io_uring_enter(); more go in further calls
}

// Built without io_uring (PGWIRE_IO_URING=0): ring_ is never set, so every
// write takes the send() path and the rest of this file is left out.
#if PGWIRE_IO_URING
struct SendBatch::Ring {
  io_uring ring{};
};
#else
struct SendBatch::Ring {};
#endif

SendBatch::SendBatch(bool use_io_uring, size_t ring_from) : ring_from_(ring_from) {
  if (!use_io_uring) return;
#if !PGWIRE_IO_URING
  fallback_reason_ = "built without io_uring";
#else
  auto r = std::make_unique<Ring>();
  int rc = io_uring_queue_init(kRingEntries, &r->ring, 0);
  if (rc < 0) {
    fallback_reason_ = pgwire::errno_text(-rc);
    return;
  }
  ring_ = std::move(r);
#endif
}

SendBatch::~SendBatch() {
#if PGWIRE_IO_URING
  if (ring_) io_uring_queue_exit(&ring_->ring);
#endif
}

void SendBatch::flush(std::vector<ProxySession*>& dirty) {
  if (dirty.empty()) return;
  if (!ring_ || dirty.size() < ring_from_) {
    ++plain_rounds_;
    // Swapped out first: a session's write result could list a session again.
    plain_.swap(dirty);
    for (ProxySession* s : plain_) s->flush_pending();
    plain_.clear();
    return;
  }
  ++ring_rounds_;
  entries_.clear();
  for (ProxySession* s : dirty) {
    s->clear_dirty();
    PendingWrite w;
    if (s->server_write(w)) entries_.push_back({s, false, w, -EAGAIN});
    if (s->client_write(w)) entries_.push_back({s, true, w, -EAGAIN});
  }
  dirty.clear();
  size_t i = 0;
  while (i < entries_.size()) {
    if (!ring_) {  // it failed in an earlier part of this round
      entries_[i++].session->flush_pending();
      continue;
    }
    size_t end = std::min(entries_.size(), i + kRingEntries);
    submit(i, end);
    i = end;
  }
}

// One io_uring_enter() for entries [begin, end), then the results, in order.
// Every write is non-blocking, so all of them have completed when the call
// returns; results are applied only then, since applying one can end a
// session whose other write is in the same call.
#if PGWIRE_IO_URING
void SendBatch::submit(size_t begin, size_t end) {
  io_uring* ring = &ring_->ring;
  unsigned want = 0;
  for (size_t i = begin; i < end; ++i) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (sqe == nullptr) break;  // cannot happen (the ring holds a whole part); the rest stays queued
    const PendingWrite& w = entries_[i].write;
    io_uring_prep_send(sqe, w.fd, w.data.data(), w.data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, i);
    ++want;
  }
  unsigned got = 0;
  int rc = 0;
  int stalls = 0;
  while (got < want) {
    rc = io_uring_submit_and_wait(ring, want - got);
    bool transient = rc == -EINTR || rc == -EAGAIN || rc == -EBUSY;
    if (rc < 0 && (!transient || ++stalls > 100)) break;
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
      uint64_t i = io_uring_cqe_get_data64(cqe);
      if (i >= begin && i < end) entries_[i].result = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(ring, seen);
    got += seen;
  }
  for (size_t i = begin; i < end; ++i) {
    Entry& e = entries_[i];
    int res = e.result;
    size_t written = res > 0 ? static_cast<size_t>(res) : 0;
    int err = (res < 0 && res != -EAGAIN && res != -EINTR) ? -res : 0;
    if (e.to_client) {
      e.session->client_written(written, err);
    } else {
      e.session->server_written(written, err);
    }
  }
  if (got < want) {
    // io_uring_enter() itself failed, which non-blocking sends should never
    // make it do. What did not complete counts as not written (it stays
    // queued for POLLOUT); from here on every write is a plain send().
    fallback_reason_ = fmt::format("io_uring_enter: {}", pgwire::errno_text(-rc));
    diag("{}; sending with send() from now on", fallback_reason_);
    io_uring_queue_exit(ring);
    ring_.reset();
  }
}
#else
void SendBatch::submit(size_t, size_t) {}  // unreachable: ring_ is never set
#endif

}  // namespace pgproxy
