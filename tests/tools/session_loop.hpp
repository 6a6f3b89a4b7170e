// The test harness of pgproxy_core's session tests: ProxySessions over
// socketpairs, driven one poll() round at a time as Proxy's loop drives them,
// with the test as both the client and the server; and readers of what the
// sessions produced (capture records, ErrorResponses).
#pragma once

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "async_writer.hpp"
#include "pgwire/capture.hpp"
#include "pgwire/system.hpp"
#include "proxy_session.hpp"
#include "send_batch.hpp"
#include "wire_builder.hpp"

namespace pgproxy::test {

namespace fs = std::filesystem;
using pgwire::Bytes;
using pgwire::test::W;
using pgwire::test::Wire;
using ByteVec = std::vector<std::byte>;

// A golden message from corpus/golden: hex with '#' comments.
inline ByteVec golden(const std::string& name) {
  std::ifstream in(fs::path(PGWIRE_CORPUS_DIR) / "golden" / name);
  std::string hex, line;
  while (std::getline(in, line)) hex += line.substr(0, line.find('#')) + " ";
  auto bytes = pgwire::from_hex(hex);
  if (!bytes || bytes->empty()) ADD_FAILURE() << "cannot read golden " << name;
  return bytes.value_or(ByteVec{});
}

inline ByteVec pattern(size_t n, uint32_t seed) {
  ByteVec out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x = x * 1103515245u + 12345u;
    b = std::byte(static_cast<uint8_t>(x >> 16));
  }
  return out;
}

inline std::string text(const ByteVec& b) { return std::string(pgwire::as_string_view(Bytes{b})); }

// ---------------------------------------------------------------------------
// A loop for the tests: sessions over socketpairs, one poll() round at a time,
// as Proxy's loop does it (events, timers, then the round's sends).

inline int make_pair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds); }

struct Peer {
  int fd = -1;
  ByteVec got;
  bool eof = false;
  bool manual = false;  // the test reads the socket itself (TLS): the loop leaves it alone
  // Reads what is there without waiting.
  void drain() {
    if (fd < 0 || manual) return;
    std::byte buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        got.insert(got.end(), buf, buf + n);
        continue;
      }
      if (n == 0) eof = true;
      return;
    }
  }
  void send_all(Bytes b) {
    ASSERT_GE(fd, 0) << "no peer";
    while (!b.empty()) {
      ssize_t n = send(fd, b.data(), b.size(), MSG_NOSIGNAL);
      if (n > 0) {
        b = b.subspan(static_cast<size_t>(n));
        continue;
      }
      ASSERT_TRUE(errno == EAGAIN || errno == EINTR) << strerror(errno);
      pollfd p{fd, POLLOUT, 0};
      ASSERT_GE(poll(&p, 1, 1000), 0);
    }
  }
  void close_fd() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

struct Entry {
  std::unique_ptr<ProxySession> session;
  Peer client;  // the client's end
  Peer server;  // the server's end, once the session connected
};

class Loop {
 public:
  // With io_uring every round's writes take the ring, even a single session's
  // (pgproxy itself sends a lone session's with send()).
  explicit Loop(bool io_uring = false) : batch_(true), sends_(io_uring, 1) {
    ctx.upstream.emplace_back();  // one address; connect() below ignores it
    ctx.upstream_text = "test-upstream";
    ctx.log_enabled = true;
    ctx.capture_enabled = true;
    ctx.capture_backend = true;
    ctx.batch = &batch_;
    ctx.scratch.resize(size_t{64} * 1024);
    ctx.connect = [this](const pgwire::SocketAddress&, bool& in_progress, int& err) {
      ++connects;
      if (refuse_connect) {
        err = ECONNREFUSED;
        return -1;
      }
      int fds[2];
      if (make_pair(fds) != 0) {
        err = errno;
        return -1;
      }
      in_progress = false;
      server_peers_.push_back(fds[1]);
      last_server_fd_ = fds[0];
      return fds[0];
    };
  }
  ~Loop() {
    for (auto& e : entries_) {
      e->session.reset();
      e->client.close_fd();
      e->server.close_fd();
    }
  }

  Entry& open(std::string reject = {}) {
    int fds[2];
    EXPECT_EQ(make_pair(fds), 0);
    auto e = std::make_unique<Entry>();
    e->client.fd = fds[1];
    e->session = std::make_unique<ProxySession>(ctx, ++next_id_, fds[0], "test-client", std::move(reject));
    entries_.push_back(std::move(e));
    return *entries_.back();
  }

  // One round: poll what the sessions want, hand them the events, run their
  // timers, send what they queued.
  void round(int timeout_ms = 200) {
    std::vector<pollfd> pfds;
    std::vector<std::pair<ProxySession*, bool>> who;
    for (auto& e : entries_) {
      ProxySession* s = e->session.get();
      if (s->done()) continue;
      if (short ev = s->client_events(false)) {
        pfds.push_back({s->client_fd(), ev, 0});
        who.emplace_back(s, true);
      }
      if (short ev = s->server_events(false)) {
        pfds.push_back({s->server_fd(), ev, 0});
        who.emplace_back(s, false);
      }
    }
    if (poll(pfds.data(), pfds.size(), timeout_ms) > 0) {
      for (size_t i = 0; i < pfds.size(); ++i) {
        if (pfds[i].revents == 0 || who[i].first->done()) continue;
        if (who[i].second) {
          who[i].first->on_client_event(pfds[i].revents);
        } else {
          who[i].first->on_server_event(pfds[i].revents);
        }
      }
    }
    for (auto& e : entries_) e->session->on_timer(pgwire::monotonic_ms());
    sends_.flush(ctx.dirty);
    adopt_server_peers();
    for (auto& e : entries_) {
      e->client.drain();
      e->server.drain();
    }
  }

  // Rounds until `done` holds (false after `limit` rounds).
  bool until(const std::function<bool()>& done, int limit = 100) {
    for (int i = 0; i < limit; ++i) {
      if (done()) return true;
      round(50);
    }
    return done();
  }

  SessionContext ctx;
  int connects = 0;
  bool refuse_connect = false;
  SendBatch& sends() { return sends_; }
  WriteBatch& batch() { return batch_; }

 private:
  // The server end of each new upstream connection goes to its session's entry.
  void adopt_server_peers() {
    if (server_peers_.empty()) return;
    for (auto& e : entries_) {
      if (e->server.fd < 0 && e->session->server_fd() == last_server_fd_ && last_server_fd_ >= 0) {
        e->server.fd = server_peers_.back();
        server_peers_.pop_back();
        last_server_fd_ = -1;
      }
    }
  }

  WriteBatch batch_;
  SendBatch sends_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<int> server_peers_;
  int last_server_fd_ = -1;
  uint64_t next_id_ = 0;
};

// The records of a batch, read back with the library's reader.
inline std::vector<std::string> records_of(const pgwire::CaptureRecords& records) {
  std::vector<std::string> out;
  int fd = memfd_create("capture", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  {
    auto w = pgwire::CaptureWriter::from_fd(fd, false);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE((*w)->append(records).ok());
    EXPECT_TRUE((*w)->close().ok());
    EXPECT_EQ((*w)->records_written(), records.count());
  }
  lseek(fd, 0, SEEK_SET);
  auto r = pgwire::CaptureReader::from_fd(fd, true, "memfd");
  EXPECT_TRUE(r.ok());
  pgwire::CaptureRecord rec;
  for (;;) {
    auto more = (*r)->next(rec);
    EXPECT_TRUE(more.ok());
    if (!more.ok() || !*more) break;
    switch (rec.type) {
      case pgwire::CaptureRecordType::kSessionOpen:
        out.push_back("open " + std::string(rec.client) + " " + std::string(rec.server));
        break;
      case pgwire::CaptureRecordType::kSessionMeta:
        out.push_back("meta " + std::string(rec.key) + "=" + std::string(pgwire::as_string_view(rec.value)));
        break;
      case pgwire::CaptureRecordType::kSessionClose: out.push_back("close " + std::string(rec.reason)); break;
      case pgwire::CaptureRecordType::kFrame:
        out.push_back(std::string(rec.direction == pgwire::Direction::kFrontend ? "F " : "B ") +
                      (rec.redacted() ? "redacted " : "") + pgwire::to_hex(rec.data));
        break;
    }
  }
  return out;
}

inline bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The SQLSTATE and message of the first ErrorResponse in `bytes` ("" if none).
inline std::string error_of(const ByteVec& bytes) {
  if (bytes.size() < 5 || bytes[0] != std::byte{'E'}) return "";
  std::string fields(pgwire::as_string_view(Bytes{bytes}.subspan(5)));
  std::string code, message;
  for (size_t i = 0; i < fields.size() && fields[i] != '\0';) {
    size_t end = fields.find('\0', i + 1);
    if (end == std::string::npos) break;
    if (fields[i] == 'C') code = fields.substr(i + 1, end - i - 1);
    if (fields[i] == 'M') message = fields.substr(i + 1, end - i - 1);
    i = end + 1;
  }
  return code + " " + message;
}

inline Wire auth_ok_ready() { return W().msg('R', W().i32(0)).msg('Z', W().byte('I')); }

}  // namespace pgproxy::test
