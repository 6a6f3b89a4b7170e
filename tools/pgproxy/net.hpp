// Socket helpers for pgproxy: address parsing and resolution, non-blocking
// sockets, printable addresses. Errors are returned as strings for stderr.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgproxy {

struct HostPort {
  std::string host;  // "" = any address (listen only)
  std::string port;
};

// "127.0.0.1:6432", "[::1]:6432", "db.example:5432", "*:6432". A bare
// "host" takes `default_port`. Returns nullopt and fills `error` when malformed.
std::optional<HostPort> parse_host_port(std::string_view text, std::string_view default_port, std::string& error);

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

// getaddrinfo for TCP; `passive` for addresses to listen on.
std::vector<SocketAddress> resolve(const HostPort& hp, bool passive, std::string& error);

// "127.0.0.1:5432" or "[::1]:5432".
std::string format_address(const sockaddr* addr, socklen_t length);
inline std::string format_address(const SocketAddress& a) {
  return format_address(a.get(), a.length);
}

// A listening socket (SO_REUSEADDR, IPV6_V6ONLY, non-blocking); -1 and `error` on failure.
int listen_on(const SocketAddress& addr, int backlog, std::string& error);
// The address a socket is bound to, printable.
std::string local_address(int fd);

bool set_nonblocking(int fd);
void set_nodelay(int fd);

// Starts a non-blocking connect. Returns the fd, with `in_progress` set when
// the connection completes later (POLLOUT, then socket_error()); -1 on error.
int connect_nonblocking(const SocketAddress& addr, bool& in_progress, int& err);
// SO_ERROR of a socket (0 = connected).
int socket_error(int fd);

std::string errno_text(int err);

}  // namespace pgproxy
