// Sockets for the tools: host:port and Unix-socket addresses as libpq writes
// them (parsing, resolution, printing), non-blocking connect and listen.
// Errors are returned as strings for stderr.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwire {

struct HostPort {
  std::string host;  // "" = any address (listen only); "/..." = a Unix-socket directory
  std::string port;

  bool is_unix() const { return !host.empty() && host.front() == '/'; }
};

// "127.0.0.1:6432", "[::1]:6432", "db.example:5432", "*:6432". A bare
// "host" takes `default_port`. As in libpq, a host that starts with '/' is the
// directory of a Unix socket: "/var/run/postgresql:5432" is the socket
// /var/run/postgresql/.s.PGSQL.5432. Returns nullopt and fills `error` when malformed.
std::optional<HostPort> parse_host_port(std::string_view text, std::string_view default_port, std::string& error);

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

// getaddrinfo for TCP, or the one Unix-socket path; `passive` for addresses to listen on.
std::vector<SocketAddress> resolve(const HostPort& hp, bool passive, std::string& error);

// "127.0.0.1:5432", "[::1]:5432", a Unix socket's path, or "[local]" for an
// unnamed Unix socket (a client's end; PostgreSQL's own word for it).
std::string format_address(const sockaddr* addr, socklen_t length);
inline std::string format_address(const SocketAddress& a) { return format_address(a.get(), a.length); }

// A listening socket (SO_REUSEADDR, IPV6_V6ONLY, non-blocking); -1 and `error` on failure.
// A Unix socket is created mode 0777 like PostgreSQL's; a stale socket file that
// nobody listens on is replaced, a live one is an error. `reuse_port`: also
// SO_REUSEPORT on a TCP socket, so that several processes of the same user can
// listen on one address and the kernel spreads new connections among them
// (a Unix socket's path stays one listener's).
int listen_on(const SocketAddress& addr, int backlog, std::string& error, bool reuse_port = false);
// The path of a Unix-socket address; empty for other families.
std::string unix_path(const SocketAddress& addr);
// The address a socket is bound to, printable.
std::string local_address(int fd);

bool set_nonblocking(int fd);
// TCP_NODELAY on a TCP socket; nothing on a Unix socket.
void set_nodelay(int fd, int family);

// Starts a non-blocking connect. Returns the fd, with `in_progress` set when
// the connection completes later (POLLOUT, then socket_error()); -1 on error.
int connect_nonblocking(const SocketAddress& addr, bool& in_progress, int& err);
// SO_ERROR of a socket (0 = connected).
int socket_error(int fd);

}  // namespace pgwire
