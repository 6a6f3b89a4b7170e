#include "pgwire/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "pgwire/system.hpp"

namespace pgwire {

std::optional<HostPort> parse_host_port(std::string_view text, std::string_view default_port, std::string& error) {
  HostPort hp;
  std::string_view rest;
  if (!text.empty() && text.front() == '/') {
    // A socket directory may itself contain ':'; only a trailing ":digits" is the port.
    size_t colon = text.rfind(':');
    bool has_port = colon != std::string_view::npos && colon + 1 < text.size() &&
                    text.find_first_not_of("0123456789", colon + 1) == std::string_view::npos;
    hp.host = std::string(text.substr(0, has_port ? colon : text.size()));
    while (hp.host.size() > 1 && hp.host.back() == '/') hp.host.pop_back();
    if (has_port) rest = text.substr(colon);
  } else if (!text.empty() && text.front() == '[') {
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
  std::vector<SocketAddress> out;
  if (hp.is_unix()) {
    std::string path = fmt::format("{}/.s.PGSQL.{}", hp.host == "/" ? "" : hp.host, hp.port);
    sockaddr_un un{};
    if (path.size() >= sizeof un.sun_path) {
      error = fmt::format("the Unix socket path '{}' is longer than {} bytes", path, sizeof un.sun_path - 1);
      return out;
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    SocketAddress a;
    std::memcpy(&a.storage, &un, sizeof un);
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    out.push_back(a);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* list = nullptr;
  int rc = getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), hp.port.c_str(), &hints, &list);
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
  if (addr->sa_family == AF_UNIX) {
    size_t base = offsetof(sockaddr_un, sun_path);
    if (length <= base) return "[local]";
    sockaddr_un un{};
    std::memcpy(&un, addr, std::min<size_t>(length, sizeof un));
    size_t n = strnlen(un.sun_path, std::min<size_t>(length - base, sizeof un.sun_path));
    return n == 0 ? "[local]" : std::string(un.sun_path, n);
  }
  return "?";
}

std::string unix_path(const SocketAddress& addr) {
  if (addr.family() != AF_UNIX) return {};
  std::string text = format_address(addr);
  return text == "[local]" ? std::string() : text;
}

bool set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void set_nodelay(int fd, int family) {
  if (family != AF_INET && family != AF_INET6) return;
  int one = 1;
  // Small protocol messages must not wait for Nagle; failure only costs latency.
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

namespace {

int stream_protocol(int family) { return family == AF_UNIX ? 0 : IPPROTO_TCP; }

// A Unix socket file left by a process that died: nothing accepts on it.
bool stale_unix_socket(const SocketAddress& addr) {
  struct stat st {};
  if (lstat(unix_path(addr).c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool stale = connect(fd, addr.get(), addr.length) != 0 && errno == ECONNREFUSED;
  close(fd);
  return stale;
}

}  // namespace

int listen_on(const SocketAddress& addr, int backlog, std::string& error, bool reuse_port) {
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, stream_protocol(addr.family()));
  if (fd < 0) {
    error = fmt::format("socket: {}", errno_text(errno));
    return -1;
  }
  int one = 1;
  if (addr.family() != AF_UNIX) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.family() == AF_INET6) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (reuse_port && addr.family() != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = fmt::format("SO_REUSEPORT on {}: {}", format_address(addr), errno_text(errno));
    close(fd);
    return -1;
  }
  int rc = bind(fd, addr.get(), addr.length);
  if (rc != 0 && errno == EADDRINUSE && addr.family() == AF_UNIX && stale_unix_socket(addr)) {
    (void)unlink(unix_path(addr).c_str());
    rc = bind(fd, addr.get(), addr.length);
  }
  if (rc != 0) {
    int err = errno;
    error = fmt::format("bind {}: {}{}", format_address(addr), errno_text(err),
                        err == EADDRINUSE && addr.family() == AF_UNIX ? " (another server is listening on it)" : "");
    close(fd);
    return -1;
  }
  // Like PostgreSQL's default unix_socket_permissions: who may connect is pg_hba's business.
  if (addr.family() == AF_UNIX) (void)chmod(unix_path(addr).c_str(), 0777);
  if (listen(fd, backlog) != 0) {
    error = fmt::format("listen {}: {}", format_address(addr), errno_text(errno));
    if (addr.family() == AF_UNIX) (void)unlink(unix_path(addr).c_str());
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
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, stream_protocol(addr.family()));
  if (fd < 0) {
    err = errno;
    return -1;
  }
  set_nodelay(fd, addr.family());
  if (connect(fd, addr.get(), addr.length) == 0) return fd;
  // A Unix socket connects at once or not at all (EAGAIN: the server's backlog is full).
  if ((errno == EINPROGRESS || errno == EINTR) &&
      addr.family() != AF_UNIX) {  // EINTR: the connect continues asynchronously
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

}  // namespace pgwire
