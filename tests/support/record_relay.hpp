// A TCP relay for tests that records what passes through it.
//
//   RecordRelay relay("127.0.0.1", pg.port());   // listening and running from here on
//   ... point a client at 127.0.0.1:relay.port() ...
//   relay.wait_idle(std::chrono::seconds(5));
//   save_recording("x.rec", relay.recording());
//
// Every accepted connection is paired with a new connection to the upstream server; bytes are
// forwarded both ways unchanged by one background thread running a poll() loop over non-blocking
// sockets. Each recv() is recorded as one Chunk (direction, connection index in accept order,
// microseconds since the relay started). A half-close is passed on (EOF from one side becomes
// shutdown(SHUT_WR) towards the other once everything before it was written); an error on either
// side closes both. When a side's pending output passes a high-water mark the relay stops reading
// the other side until it drains.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "recording.hpp"

struct pollfd;

namespace pgwire::test {

class RecordRelay {
 public:
  // Listens on 127.0.0.1 (a free port) and starts the forwarding thread. `upstream_host` is an
  // IPv4 address literal. Throws std::runtime_error if the socket cannot be set up.
  RecordRelay(std::string upstream_host, uint16_t upstream_port);
  ~RecordRelay();
  RecordRelay(const RecordRelay&) = delete;
  RecordRelay& operator=(const RecordRelay&) = delete;

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

  // Waits until every connection that was made to the relay before this call has been accepted
  // and closed on both sides. False on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);

  // Stops the thread and closes every socket. Idempotent; the recording stays available.
  void stop();

  Recording recording() const;              // a snapshot; chunks only, no comments
  size_t connections_accepted() const;      // so far
  std::vector<std::string> errors() const;  // problems the loop met (upstream refused, ...)

 private:
  struct Connection;
  void run();
  void accept_pending(std::vector<Connection>& conns);
  void service(Connection& c, const struct pollfd& client, const struct pollfd& server);
  bool read_side(Connection& c, bool from_client);
  void wake();
  void note_error(std::string text);
  uint64_t now_usec() const;

  std::string host_ = "127.0.0.1";
  std::string upstream_host_;
  uint16_t upstream_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::thread thread_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::vector<Chunk> chunks_;
  std::vector<std::string> errors_;
  size_t accepted_ = 0;
  size_t open_ = 0;
  uint64_t ping_requested_ = 0;  // by wait_idle()
  uint64_t ping_handled_ = 0;    // the loop accepted everything pending after seeing this ping
  bool stopping_ = false;
};

}  // namespace pgwire::test
