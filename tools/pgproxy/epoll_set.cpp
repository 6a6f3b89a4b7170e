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

bool EpollSet::control(int op, int fd, short events) {
  ++changes_;
  epoll_event ev{};
  ev.events = static_cast<uint32_t>(static_cast<uint16_t>(events));
  ev.data.fd = fd;
  return epoll_ctl(epoll_fd_, op, fd, &ev) == 0;
}

void EpollSet::set(int fd, short events, uint64_t key, uint8_t role, void* owner) {
  if (fd < 0) return;
  if (static_cast<size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<size_t>(fd) + 1);
  Interest& in = by_fd_[static_cast<size_t>(fd)];
  const bool same_owner = in.registered && in.key == key;
  if (events == 0) {
    if (same_owner) remove(fd, key);
    return;
  }
  bool ok = true;
  if (same_owner) {
    if (in.events != events) ok = control(EPOLL_CTL_MOD, fd, events);
  } else {
    // A new descriptor, or a number closed and handed out again (closing it
    // took the old registration away, unless the file is still open elsewhere).
    ok = control(EPOLL_CTL_ADD, fd, events) || (errno == EEXIST && control(EPOLL_CTL_MOD, fd, events));
    if (!in.registered) ++registered_;
  }
  in = Interest{key, owner, events, role, true};
  if (!ok) {
    failed_.push_back(Ready{fd, role, owner, POLLERR});
    in.registered = false;
    --registered_;
  }
}

void EpollSet::remove(int fd, uint64_t key) {
  if (fd < 0 || static_cast<size_t>(fd) >= by_fd_.size()) return;
  Interest& in = by_fd_[static_cast<size_t>(fd)];
  if (!in.registered || in.key != key) return;
  (void)control(EPOLL_CTL_DEL, fd, 0);  // ENOENT, EBADF: closed already, nothing left to remove
  in = Interest{};
  --registered_;
}

int EpollSet::wait(std::vector<Ready>& ready, int timeout_ms) {
  ready.clear();
  ready.swap(failed_);
  events_.resize(std::clamp<size_t>(registered_, 16, kMaxEventsPerWait));
  int n = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), ready.empty() ? timeout_ms : 0);
  if (n < 0) return ready.empty() ? -1 : static_cast<int>(ready.size());
  for (int k = 0; k < n; ++k) {
    const epoll_event& ev = events_[static_cast<size_t>(k)];
    const auto fd = static_cast<size_t>(ev.data.fd);
    if (fd >= by_fd_.size() || !by_fd_[fd].registered) continue;
    const Interest& in = by_fd_[fd];
    ready.push_back(Ready{ev.data.fd, in.role, in.owner,
                          static_cast<short>(ev.events & (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP))});
  }
  return static_cast<int>(ready.size());
}

}  // namespace pgproxy
