#include "record_relay.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "pgwire/system.hpp"

namespace pgwire::test {
namespace {

// Stop reading a side while this much is still waiting to be written to the other one.
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kReadSize = size_t{64} * 1024;

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Bytes waiting to be written to one socket; written from the front.
struct Pending {
  std::vector<std::byte> data;
  size_t offset = 0;

  size_t size() const { return data.size() - offset; }
  void append(const std::byte* p, size_t n) {
    if (offset > 0 && offset == data.size()) {
      data.clear();
      offset = 0;
    }
    data.insert(data.end(), p, p + n);
  }
  // Writes what the socket takes. False on a hard error (peer gone).
  bool flush(int fd) {
    while (size() > 0) {
      ssize_t n = send(fd, data.data() + offset, size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        offset += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    data.clear();
    offset = 0;
    return true;
  }
};

}  // namespace

struct RecordRelay::Connection {
  int index = 0;
  int client_fd = -1;
  int server_fd = -1;
  bool connecting = false;  // non-blocking connect to upstream still in progress
  Pending to_server;        // read from the client, not yet written upstream
  Pending to_client;        // read from upstream, not yet written to the client
  bool client_eof = false;  // the client sent FIN
  bool server_eof = false;
  bool server_shut = false;  // we sent FIN upstream (after client_eof and a flush)
  bool client_shut = false;
  bool done = false;

  void close_both() {
    close_fd(client_fd);
    close_fd(server_fd);
    done = true;
  }
};

RecordRelay::RecordRelay(std::string upstream_host, uint16_t upstream_port)
    : upstream_host_(std::move(upstream_host)),
      upstream_port_(upstream_port),
      start_(std::chrono::steady_clock::now()) {
  sockaddr_in probe{};
  if (inet_pton(AF_INET, upstream_host_.c_str(), &probe.sin_addr) != 1) {
    throw std::runtime_error("RecordRelay: upstream must be an IPv4 address: " + upstream_host_);
  }
  std::array<int, 2> wake{};
  if (pipe2(wake.data(), O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error("RecordRelay: pipe2: " + errno_text(errno));
  }
  wake_read_ = wake[0];
  wake_write_ = wake[1];

  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0 || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int saved = errno;
    close_fd(listen_fd_);
    close_fd(wake_read_);
    close_fd(wake_write_);
    throw std::runtime_error("RecordRelay: cannot listen on 127.0.0.1: " + errno_text(saved));
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

RecordRelay::~RecordRelay() { stop(); }

uint64_t RecordRelay::now_usec() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count());
}

void RecordRelay::wake() {
  char byte = 1;
  ssize_t ignored = write(wake_write_, &byte, 1);  // a full pipe is fine: the loop wakes anyway
  (void)ignored;
}

void RecordRelay::note_error(std::string text) {
  std::lock_guard lock(mutex_);
  errors_.push_back(std::move(text));
}

void RecordRelay::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    wake();
    thread_.join();
  }
  close_fd(listen_fd_);
  close_fd(wake_read_);
  close_fd(wake_write_);
}

bool RecordRelay::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (stopping_) return open_ == 0;
  uint64_t ping = ++ping_requested_;
  wake();
  return changed_.wait_for(lock, timeout, [&] { return stopping_ || (ping_handled_ >= ping && open_ == 0); });
}

Recording RecordRelay::recording() const {
  std::lock_guard lock(mutex_);
  Recording rec;
  rec.chunks = chunks_;
  return rec;
}

size_t RecordRelay::connections_accepted() const {
  std::lock_guard lock(mutex_);
  return accepted_;
}

std::vector<std::string> RecordRelay::errors() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

void RecordRelay::accept_pending(std::vector<Connection>& conns) {
  while (true) {
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) note_error("accept: " + errno_text(errno));
      return;
    }
    Connection c;
    {
      std::lock_guard lock(mutex_);
      c.index = static_cast<int>(accepted_++);
    }
    c.client_fd = client;
    set_nodelay(client);
    c.server_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(upstream_port_);
    inet_pton(AF_INET, upstream_host_.c_str(), &addr.sin_addr);
    int rc = c.server_fd < 0 ? -1 : connect(c.server_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) {
      note_error("connection " + std::to_string(c.index) + ": connect to upstream: " + errno_text(errno));
      c.close_both();
      continue;
    }
    set_nodelay(c.server_fd);
    c.connecting = rc != 0;
    {
      std::lock_guard lock(mutex_);
      ++open_;
    }
    conns.push_back(std::move(c));
  }
}

bool RecordRelay::read_side(Connection& c, bool from_client) {
  std::array<std::byte, kReadSize> buf{};
  int fd = from_client ? c.client_fd : c.server_fd;
  ssize_t n;
  do {
    n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    auto size = static_cast<size_t>(n);
    Chunk chunk;
    chunk.conn = c.index;
    chunk.dir = from_client ? 'F' : 'B';
    chunk.bytes.assign(buf.begin(), buf.begin() + n);
    {
      std::lock_guard lock(mutex_);
      chunk.usec = now_usec();  // under the lock, so offsets never go backwards in the file
      chunks_.push_back(std::move(chunk));
    }
    (from_client ? c.to_server : c.to_client).append(buf.data(), size);
    return true;
  }
  if (n == 0) {
    (from_client ? c.client_eof : c.server_eof) = true;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
  note_error("connection " + std::to_string(c.index) + ": recv from " + (from_client ? "client: " : "server: ") +
             errno_text(errno));
  return false;
}

void RecordRelay::service(Connection& c, const pollfd& client, const pollfd& server) {
  constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
  if (c.connecting && (server.revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.server_fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      note_error("connection " + std::to_string(c.index) + ": connect to upstream: " + errno_text(err));
      c.close_both();
      return;
    }
    c.connecting = false;
  }
  if ((client.events & POLLIN) != 0 && (client.revents & kReadable) != 0 && !read_side(c, true)) {
    c.close_both();
    return;
  }
  if ((server.events & POLLIN) != 0 && (server.revents & kReadable) != 0 && !read_side(c, false)) {
    c.close_both();
    return;
  }
  if (!c.to_client.flush(c.client_fd) || (!c.connecting && !c.to_server.flush(c.server_fd))) {
    note_error("connection " + std::to_string(c.index) + ": send: " + errno_text(errno));
    c.close_both();
    return;
  }
  // Pass a half-close on only after everything that came before it has been written.
  if (c.client_eof && !c.connecting && c.to_server.size() == 0 && !c.server_shut) {
    shutdown(c.server_fd, SHUT_WR);
    c.server_shut = true;
  }
  if (c.server_eof && c.to_client.size() == 0 && !c.client_shut) {
    shutdown(c.client_fd, SHUT_WR);
    c.client_shut = true;
  }
  if (c.server_shut && c.client_shut) c.close_both();
}

void RecordRelay::run() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  while (true) {
    fds.clear();
    fds.push_back({wake_read_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& c : conns) {
      short client_events = 0;
      short server_events = 0;
      if (!c.client_eof && c.to_server.size() < kHighWater) client_events |= POLLIN;
      if (c.to_client.size() > 0) client_events |= POLLOUT;
      if (c.connecting) {
        server_events = POLLOUT;
      } else {
        if (!c.server_eof && c.to_client.size() < kHighWater) server_events |= POLLIN;
        if (c.to_server.size() > 0) server_events |= POLLOUT;
      }
      // An fd with nothing to wait for is left out: a closed peer would report POLLHUP forever.
      fds.push_back({client_events != 0 ? c.client_fd : -1, client_events, 0});
      fds.push_back({server_events != 0 ? c.server_fd : -1, server_events, 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      note_error("poll: " + errno_text(errno));
      break;
    }
    uint64_t ping = 0;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
      ping = ping_requested_;  // read after poll() returned: the ping's wake byte woke us
    }
    if (fds[0].revents != 0) {
      std::array<char, 64> drain{};
      while (read(wake_read_, drain.data(), drain.size()) > 0) {
      }
    }
    size_t polled = conns.size();
    // Always, not only on POLLIN: wait_idle() relies on every iteration accepting what is queued.
    accept_pending(conns);
    for (size_t i = 0; i < polled; ++i) service(conns[i], fds[2 + 2 * i], fds[3 + 2 * i]);

    size_t closed = std::erase_if(conns, [](const Connection& c) { return c.done; });
    {
      std::lock_guard lock(mutex_);
      open_ -= closed;
      ping_handled_ = ping;
    }
    changed_.notify_all();
  }
  for (auto& c : conns) c.close_both();
  {
    std::lock_guard lock(mutex_);
    open_ = 0;
  }
  changed_.notify_all();
}

}  // namespace pgwire::test
