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
  // `use_io_uring` false: plain send() always.
  explicit SendBatch(bool use_io_uring);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  // Sends what each session queued and clears `dirty`.
  void flush(std::vector<ProxySession*>& dirty);

  bool uses_io_uring() const { return ring_ != nullptr; }
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
  std::string fallback_reason_;
  std::vector<Entry> entries_;
  std::vector<ProxySession*> plain_;  // the round's sessions, without io_uring
};

}  // namespace pgproxy
