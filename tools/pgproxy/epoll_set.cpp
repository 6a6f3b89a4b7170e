#include "epoll_set.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "pgwire/system.hpp"

namespace pgproxy {

namespace {
constexpr size_t kMaxEventsPerWait = 1024;  // more stay ready for the next round (level-triggered)
}

EpollSet::EpollSet() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) error_ = pgwire::errno_text(errno);
}

EpollSet::~EpollSet() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

// The event carries the descriptor number and the registration's generation.
bool EpollSet::control(int op, int fd, const Interest& in) {
  ++changes_;
  epoll_event ev{};
  ev.events = static_cast<uint32_t>(static_cast<uint16_t>(in.events));
  ev.data.u64 = (uint64_t{in.generation} << 32) | static_cast<uint32_t>(fd);
  return epoll_ctl(epoll_fd_, op, fd, &ev) == 0;
}

void EpollSet::forget(int fd) {
  Interest& in = by_fd_[static_cast<size_t>(fd)];
  if (!in.registered) return;
  in = Interest{};
  --registered_;
}

bool EpollSet::set(int fd, short events, uint64_t key, uint8_t role, void* owner) {
  if (fd < 0) return true;
  if (static_cast<size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<size_t>(fd) + 1);
  Interest& in = by_fd_[static_cast<size_t>(fd)];
  const bool same_owner = in.registered && in.key == key;
  if (events == 0) {
    if (same_owner) remove(fd, key);
    return true;
  }
  if (same_owner) {
    in.owner = owner;
    in.role = role;
    if (in.events == events) return true;
    in.events = events;
    if (control(EPOLL_CTL_MOD, fd, in)) return true;
    const int err = errno;
    // The old registration must not stay behind, reporting for nobody.
    (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    forget(fd);
    errno = err;
    return false;
  }
  // A new descriptor, or a number closed and handed out again (closing it
  // took the old registration away, unless the file is still open elsewhere:
  // then it is replaced, under a new generation).
  if (!in.registered) ++registered_;
  in = Interest{key, owner, ++next_generation_, events, role, true};
  if (control(EPOLL_CTL_ADD, fd, in) || (errno == EEXIST && control(EPOLL_CTL_MOD, fd, in))) return true;
  const int err = errno;
  forget(fd);
  errno = err;
  return false;
}

void EpollSet::remove(int fd, uint64_t key) {
  if (fd < 0 || static_cast<size_t>(fd) >= by_fd_.size()) return;
  const Interest& in = by_fd_[static_cast<size_t>(fd)];
  if (!in.registered || in.key != key) return;
  ++changes_;
  (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);  // ENOENT, EBADF: closed already
  forget(fd);
}

int EpollSet::wait(std::vector<Ready>& ready, int timeout_ms) {
  ready.clear();
  events_.resize(std::clamp<size_t>(registered_, 16, kMaxEventsPerWait));
  int n = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) return -1;
  for (int k = 0; k < n; ++k) {
    const epoll_event& ev = events_[static_cast<size_t>(k)];
    const auto fd = static_cast<uint32_t>(ev.data.u64);
    const auto generation = static_cast<uint32_t>(ev.data.u64 >> 32);
    if (fd >= by_fd_.size() || !by_fd_[fd].registered || by_fd_[fd].generation != generation) {
      ++stale_events_;
      continue;
    }
    const Interest& in = by_fd_[fd];
    ready.push_back(Ready{static_cast<int>(fd), in.role, in.owner,
                          static_cast<short>(ev.events & (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP))});
  }
  return static_cast<int>(ready.size());
}

}  // namespace pgproxy
