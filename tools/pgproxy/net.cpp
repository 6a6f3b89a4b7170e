#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace pgproxy {

std::string errno_text(int err) {
  return std::strerror(err);
}

std::optional<HostPort> parse_host_port(std::string_view text, std::string_view default_port, std::string& error) {
  HostPort hp;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = fmt::format("'{}': missing ']' after an IPv6 address", text);
      return std::nullopt;
    }
    hp.host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      error = fmt::format("'{}': expected ':PORT' after ']'", text);
      return std::nullopt;
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      error = fmt::format("'{}': write IPv6 addresses in brackets, e.g. [::1]:6432", text);
      return std::nullopt;
    }
    hp.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) rest = text.substr(colon);
  }
  if (rest.empty()) {
    hp.port = std::string(default_port);
  } else {
    hp.port = std::string(rest.substr(1));
  }
  if (hp.port.empty() || hp.port.size() > 5 || hp.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(hp.port) > 65535) {
    error = fmt::format("'{}': port must be a number from 0 to 65535", text);
    return std::nullopt;
  }
  if (hp.host == "*") hp.host.clear();
  return hp;
}

std::vector<SocketAddress> resolve(const HostPort& hp, bool passive, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* list = nullptr;
  int rc = getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), hp.port.c_str(), &hints, &list);
  std::vector<SocketAddress> out;
  if (rc != 0) {
    error = fmt::format("cannot resolve '{}': {}", hp.host, gai_strerror(rc));
    return out;
  }
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    bool dup = false;
    for (const auto& b : out) dup = dup || (b.length == a.length && std::memcmp(&b.storage, &a.storage, a.length) == 0);
    if (!dup) out.push_back(a);
  }
  freeaddrinfo(list);
  if (out.empty()) error = fmt::format("'{}' has no TCP address", hp.host);
  return out;
}

std::string format_address(const sockaddr* addr, socklen_t length) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, addr, sizeof in);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(in.sin_port));
  }
  if (addr->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, addr, sizeof in6);
    inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(in6.sin6_port));
  }
  if (addr->sa_family == AF_UNIX) return "unix";
  return "?";
}

bool set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void set_nodelay(int fd) {
  int one = 1;
  // Small protocol messages must not wait for Nagle; failure only costs latency.
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int listen_on(const SocketAddress& addr, int backlog, std::string& error) {
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    error = fmt::format("socket: {}", errno_text(errno));
    return -1;
  }
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.family() == AF_INET6) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, addr.get(), addr.length) != 0) {
    error = fmt::format("bind {}: {}", format_address(addr), errno_text(errno));
    close(fd);
    return -1;
  }
  if (listen(fd, backlog) != 0) {
    error = fmt::format("listen {}: {}", format_address(addr), errno_text(errno));
    close(fd);
    return -1;
  }
  return fd;
}

std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return format_address(reinterpret_cast<const sockaddr*>(&ss), len);
}

int connect_nonblocking(const SocketAddress& addr, bool& in_progress, int& err) {
  in_progress = false;
  err = 0;
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  set_nodelay(fd);
  if (connect(fd, addr.get(), addr.length) == 0) return fd;
  if (errno == EINPROGRESS || errno == EINTR) {  // EINTR: the connect continues asynchronously
    in_progress = true;
    return fd;
  }
  err = errno;
  close(fd);
  return -1;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace pgproxy
