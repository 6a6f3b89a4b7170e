// Sends the output of every session touched in one poll() round together.
//
// Where io_uring can be set up, all the round's socket writes go to the kernel
// in one io_uring_enter() instead of one send() each. That saves system calls,
// but mostly it saves context switches: a send() that wakes a backend or a
// client on this CPU gets the proxy preempted on its way back to user space,
// once per send; inside one io_uring_enter() the wake-ups pile up and the
// proxy is switched out at most once per round. The writes are non-blocking
// (MSG_DONTWAIT): what a socket does not take stays queued, and POLLOUT picks
// it up as before. Without io_uring (an old kernel, or a seccomp filter that
// refuses it, as container runtimes often do) each write is a plain send().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "proxy_session.hpp"

namespace pgproxy {

class SendBatch {
 public:
  // `use_io_uring` false: plain send() always. With io_uring, a round with
  // fewer than `ring_from` sessions to write for is sent with send() too: a
  // lone write has no wake-ups to pile up, and one send() costs less than an
  // io_uring_enter() with one entry (pgbench -S with 1 client, bench/proxy.sh:
  // 1-5% more tps and up to 4 us less CPU per transaction with send()).
  explicit SendBatch(bool use_io_uring, size_t ring_from = 2);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  // Sends what each session queued and clears `dirty`.
  void flush(std::vector<ProxySession*>& dirty);

  bool uses_io_uring() const { return ring_ != nullptr; }
  uint64_t ring_rounds() const { return ring_rounds_; }    // rounds sent with io_uring
  uint64_t plain_rounds() const { return plain_rounds_; }  // rounds sent with send()
  // Why io_uring is not used ("" when it is, or was not asked for).
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  struct Entry {
    ProxySession* session;
    bool to_client;
    PendingWrite write;
    int result;  // bytes written, or -errno
  };
  struct Ring;

  void submit(size_t begin, size_t end);

  std::unique_ptr<Ring> ring_;
  size_t ring_from_;
  uint64_t ring_rounds_ = 0;
  uint64_t plain_rounds_ = 0;
  std::string fallback_reason_;
  std::vector<Entry> entries_;
  std::vector<ProxySession*> plain_;  // the round's sessions, without io_uring
};

}  // namespace pgproxy
