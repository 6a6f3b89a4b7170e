// TCP on 127.0.0.1 for tests that play a client or a server themselves (stand-in
// servers, raw clients): the socket set-up they all need, in one place.
#pragma once

#include <cstdint>

namespace pgwire::test {

// A listening socket on 127.0.0.1 on a port the kernel picks (returned in `port`).
// Throws std::runtime_error when it cannot be made.
int listen_on_loopback(uint16_t& port, int backlog = 8);

// A blocking connection to 127.0.0.1:port. `recv_timeout_s` / `send_timeout_s` > 0 bound a
// blocking recv / send, so a test never hangs on a peer that stopped; `rcvbuf` > 0 sets
// SO_RCVBUF before connecting. Throws std::runtime_error when it cannot connect.
int connect_to_loopback(uint16_t port, int recv_timeout_s = 0, int send_timeout_s = 0, int rcvbuf = 0);

}  // namespace pgwire::test
