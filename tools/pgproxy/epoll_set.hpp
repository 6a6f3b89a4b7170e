// The kernel's interest list for the loop (epoll), kept between rounds.
//
// With poll() the loop hands the kernel every descriptor every round, and
// the kernel registers and removes a wait on each one every time: a round
// costs what is open, not what is ready. Measured with 500 idle sessions
// beside 8 busy clients (pgbench -S), that made 68 µs of proxy CPU per
// transaction instead of 10. With epoll the list stays in the kernel; the
// loop passes only what changed (a session that now wants POLLOUT, one that
// stops reading, a new or closed socket) and the wait costs what is ready.
// Level-triggered, so a descriptor with data left is reported again, as
// poll() would.
//
// Descriptor numbers are reused as soon as they are closed (closing one also
// takes its registration out of the kernel's list), so every registration
// carries a key naming its owner, and a number that comes back under another
// key is registered anew. Each registration also carries the owner's role
// and pointer, handed back when the descriptor is ready, and a generation
// that the kernel hands back with each event: an event of a registration
// that is not the current one for its number is counted, never delivered.
#pragma once

#include <poll.h>
#include <sys/epoll.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pgproxy {

class EpollSet {
 public:
  struct Ready {
    int fd;
    uint8_t role;
    void* owner;
    short revents;  // POLLIN, POLLOUT, POLLERR, POLLHUP as poll() reports them
  };

  EpollSet();
  ~EpollSet();
  EpollSet(const EpollSet&) = delete;
  EpollSet& operator=(const EpollSet&) = delete;

  bool ok() const { return epoll_fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Waits for `events` on `fd` for the owner `key` (0 events: stop waiting).
  // False (errno set) when the kernel refuses it (ENOMEM, ENOSPC past
  // fs.epoll.max_user_watches): the descriptor is then not waited for at
  // all, and its owner must give up on it.
  [[nodiscard]] bool set(int fd, short events, uint64_t key, uint8_t role, void* owner);
  // Forgets `fd` if it is still `key`'s: the descriptor may be closed
  // already, or its number another owner's by now.
  void remove(int fd, uint64_t key);
  // Waits up to timeout_ms (-1: no limit); `ready` gets what is ready.
  // Returns its size, or -1 with errno (EINTR included).
  int wait(std::vector<Ready>& ready, int timeout_ms);

  size_t registered() const { return registered_; }
  uint64_t changes() const { return changes_; }            // epoll_ctl calls so far
  uint64_t stale_events() const { return stale_events_; }  // events of registrations no longer current

 private:
  struct Interest {
    uint64_t key = 0;
    void* owner = nullptr;
    uint32_t generation = 0;
    short events = 0;
    uint8_t role = 0;
    bool registered = false;
  };
  bool control(int op, int fd, const Interest& in);
  void forget(int fd);

  int epoll_fd_ = -1;
  std::string error_;
  std::vector<Interest> by_fd_;  // indexed by descriptor number
  std::vector<epoll_event> events_;
  size_t registered_ = 0;
  uint32_t next_generation_ = 0;
  uint64_t changes_ = 0;
  uint64_t stale_events_ = 0;
};

}  // namespace pgproxy
