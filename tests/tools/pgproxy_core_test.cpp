// pgproxy's core without a server: OutBuf, the send batch (io_uring and
// send() paths), ProxySession's phases over socketpairs, and the writer's
// batches. The peers are the test itself, speaking bytes written from the
// protocol documentation (corpus/golden and the test-only Wire builder).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "async_writer.hpp"
#include "epoll_set.hpp"
#include "metrics.hpp"
#include "pgwire/capture.hpp"
#include "pgwire/system.hpp"
#include "proxy_session.hpp"
#include "send_batch.hpp"
#include "session_loop.hpp"
#include "test_files.hpp"
#include "wire_builder.hpp"

namespace pgproxy {
namespace {

using namespace pgproxy::test;  // NOLINT(google-build-using-namespace): the harness

namespace fs = std::filesystem;
using pgwire::Bytes;
using pgwire::test::W;
using pgwire::test::Wire;
using Phase = ProxySession::Phase;
using ByteVec = std::vector<std::byte>;

// ---------------------------------------------------------------------------
// The SQL log's torn write (a full disk) is cut back to whole lines, or to
// whole csvlog records, whose quoted fields may hold newlines.

TEST(WholeLogPrefix, LinesAndCsvlogRecords) {
  EXPECT_EQ(whole_log_prefix("a\nb\nc", false), 4u);
  EXPECT_EQ(whole_log_prefix("abc", false), 0u);
  // Records as PostgreSQL's csvlog writes them (corpus/csvlog): a statement
  // of two lines, a message with doubled quotes, one record torn inside its SQL.
  const std::string_view two = "1,\"statement: select 1,\n2 as two\",x\n";
  const std::string_view quotes = "2,\"column \"\"c\"\" does not exist\",y\n";
  const std::string_view torn = "3,\"statement: select\n1\n";
  const std::string log = std::string(two) + std::string(quotes) + std::string(torn);
  EXPECT_EQ(whole_log_prefix(log, true), two.size() + quotes.size());
  EXPECT_EQ(whole_log_prefix(two.substr(0, two.find("2 as")), true), 0u);  // cut after the inner newline
  EXPECT_EQ(whole_log_prefix(log, false), log.size());                     // as lines, everything is whole
}

// ---------------------------------------------------------------------------
// OutBuf

TEST(OutBuf, KeepsOrderAcrossCompaction) {
  OutBuf b;
  ByteVec first = pattern(1000, 1), second = pattern(3000, 2);
  b.append(first);
  b.consume(600);  // past half: the next append compacts first
  b.append(second);
  ByteVec want(first.begin() + 600, first.end());
  want.insert(want.end(), second.begin(), second.end());
  EXPECT_EQ(ByteVec(b.view().begin(), b.view().end()), want);
  EXPECT_EQ(b.size(), want.size());
}

TEST(OutBuf, FullFromHighWaterUntilDrainedToLowWater) {
  OutBuf b;
  ByteVec chunk(OutBuf::kHighWater - 1, std::byte{'x'});
  b.append(chunk);
  EXPECT_FALSE(b.full());
  b.append(ByteVec(1, std::byte{'y'}));
  EXPECT_TRUE(b.full());  // reached high water
  b.consume(OutBuf::kHighWater - OutBuf::kLowWater - 1);
  EXPECT_EQ(b.size(), OutBuf::kLowWater + 1);
  EXPECT_TRUE(b.full());  // hysteresis: still full above low water
  b.consume(1);
  EXPECT_FALSE(b.full());
  b.append(ByteVec(OutBuf::kHighWater - OutBuf::kLowWater - 1, std::byte{'z'}));
  EXPECT_FALSE(b.full());  // below high water again: not full until it reaches it
}

TEST(OutBuf, GivesMemoryBackWhenABurstDrains) {
  OutBuf b;
  b.append(ByteVec(size_t{1} << 20, std::byte{'x'}));
  EXPECT_GE(b.capacity(), size_t{1} << 20);
  b.consume(b.size());
  EXPECT_TRUE(b.empty());
  EXPECT_LE(b.capacity(), OutBuf::kKeepCapacity);
  b.append(ByteVec(100, std::byte{'x'}));
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_FALSE(b.full());
}

// ---------------------------------------------------------------------------
// Session phases

TEST(ProxySession, StartupIsForwardedThenTrafficBothWaysAndLogged) {
  Loop loop;
  Entry& e = loop.open();
  ByteVec startup = golden("frontend/startup_v30.hex");
  e.client.send_all(startup);
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size(); }));
  EXPECT_EQ(e.server.got, startup);
  EXPECT_EQ(loop.connects, 1);
  EXPECT_EQ(e.session->phase(), Phase::kForwarding);

  Wire greeting = auth_ok_ready();
  e.server.send_all(greeting.bytes());
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= greeting.bytes().size(); }));
  EXPECT_EQ(e.client.got, greeting.bytes());

  ByteVec query = golden("frontend/query.hex");
  e.client.send_all(query);
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size() + query.size(); }));
  Wire answer = W().msg('T', W().i16(0)).msg('C', W().str("SELECT 1")).msg('Z', W().byte('I'));
  e.server.send_all(answer.bytes());
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= greeting.bytes().size() + answer.bytes().size(); }));

  e.client.send_all(golden("frontend/terminate.hex"));
  e.client.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_TRUE(e.server.eof);
  EXPECT_EQ(e.session->close_reason(), "client closed the connection");

  const std::string& log = loop.batch().log;
  EXPECT_EQ(loop.batch().log_lines, 1u);
  EXPECT_NE(log.find("user=alice db=shop query ok"), std::string::npos) << log;
  EXPECT_NE(log.find("sql: SELECT 1;"), std::string::npos) << log;

  auto recs = records_of(loop.batch().capture);
  ASSERT_GE(recs.size(), 4u);
  EXPECT_EQ(recs[0], "open test-client test-upstream");
  EXPECT_EQ(recs[1], "meta capture_backend=1");
  EXPECT_EQ(recs[2], "F " + pgwire::to_hex(startup));
  EXPECT_TRUE(contains(recs, "F " + pgwire::to_hex(query)));
  EXPECT_TRUE(contains(recs, "B " + pgwire::to_hex(W().msg('Z', W().byte('I')).bytes())));
  EXPECT_EQ(recs.back(), "close client closed the connection");
}

TEST(ProxySession, SslAndGssEncRequestsAreRefusedHereAndNeverReachTheServer) {
  for (const char* request : {"frontend/ssl_request.hex", "frontend/gssenc_request.hex"}) {
    SCOPED_TRACE(request);
    Loop loop;
    Entry& e = loop.open();
    e.client.send_all(golden(request));
    ASSERT_TRUE(loop.until([&] { return !e.client.got.empty(); }));
    EXPECT_EQ(text(e.client.got), "N");
    EXPECT_EQ(loop.connects, 0);
    EXPECT_EQ(e.session->phase(), Phase::kStartup);
    // The client goes on in plaintext on the same connection.
    ByteVec startup = golden("frontend/startup_v30.hex");
    e.client.send_all(startup);
    ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size(); }));
    EXPECT_EQ(e.server.got, startup);  // the request itself was never forwarded
    auto recs = records_of(loop.batch().capture);
    EXPECT_TRUE(contains(recs, "B 4e")) << "the proxy's own answer is in the capture";
  }
}

TEST(ProxySession, BytesSentBeforeTheAnswerToSslRequestEndTheSession) {
  Loop loop;
  Entry& e = loop.open();
  ByteVec bytes = golden("frontend/ssl_request.hex");
  ByteVec startup = golden("frontend/startup_v30.hex");
  bytes.insert(bytes.end(), startup.begin(), startup.end());  // did not wait for the answer
  e.client.send_all(bytes);
  ASSERT_TRUE(loop.until([&] { return e.session->done() && e.client.eof; }));
  EXPECT_EQ(loop.connects, 0);
  EXPECT_EQ(error_of(e.client.got).substr(0, 6), "08P01 ") << text(e.client.got);
  EXPECT_NE(e.session->close_reason().find("protocol violation"), std::string::npos);
}

TEST(ProxySession, CancelRequestIsForwardedAndNothingMayFollow) {
  Loop loop;
  Entry& e = loop.open();
  ByteVec cancel = golden("frontend/cancel_request_v30.hex");
  e.client.send_all(cancel);
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= cancel.size(); }));
  EXPECT_EQ(e.server.got, cancel);
  // The server closes a cancel connection without an answer.
  e.server.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.client.eof; }));
  EXPECT_TRUE(e.client.got.empty());
  e.client.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_EQ(loop.batch().log_lines, 0u);
}

TEST(ProxySession, BadFirstPacketGetsProtocolViolationAndNoUpstream) {
  struct Case {
    const char* what;
    Wire bytes;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"length below 8", W().i32(3).i32(196608), "startup packet length 3 is below 8"});
  cases.push_back({"protocol 2.0", W().startup({{"user", "u"}}, 2 << 16), "protocol version 2.0 is not supported"});
  cases.push_back({"unknown request code", W().i32(8).i32(12345678), "unknown startup request code 12345678"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Loop loop;
    Entry& e = loop.open();
    e.client.send_all(c.bytes.bytes());
    ASSERT_TRUE(loop.until([&] { return e.session->done() && e.client.eof; }));
    EXPECT_EQ(loop.connects, 0);
    std::string err = error_of(e.client.got);
    EXPECT_EQ(err.substr(0, 6), "08P01 ") << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
  }
}

TEST(ProxySession, ClientClosingInTheStartupPhase) {
  {
    Loop loop;  // before any byte
    Entry& e = loop.open();
    e.client.close_fd();
    ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
    EXPECT_EQ(loop.connects, 0);
    EXPECT_EQ(e.session->close_reason(), "client closed the connection");
  }
  {
    Loop loop;  // in the middle of its startup packet
    Entry& e = loop.open();
    ByteVec startup = golden("frontend/startup_v30.hex");
    e.client.send_all(Bytes{startup}.first(10));
    loop.round(50);
    EXPECT_FALSE(e.session->done());
    e.client.close_fd();
    ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
    EXPECT_EQ(loop.connects, 0);
  }
}

// A session logged in through the test loop, in the forwarding phase.
Entry& logged_in(Loop& loop) {
  Entry& e = loop.open();
  ByteVec startup = golden("frontend/startup_v30.hex");
  e.client.send_all(startup);
  EXPECT_TRUE(loop.until([&] { return e.server.got.size() >= startup.size(); }));
  e.server.send_all(auth_ok_ready().bytes());
  EXPECT_TRUE(loop.until([&] { return e.client.got.size() >= auth_ok_ready().bytes().size(); }));
  e.client.got.clear();
  e.server.got.clear();
  return e;
}

TEST(ProxySession, ClientClosingWhileItsQueryRunsIsLoggedUnknown) {
  Loop loop;
  Entry& e = logged_in(loop);
  ByteVec query = golden("frontend/query.hex");
  e.client.send_all(query);
  e.client.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_EQ(e.server.got, query) << "what the client sent last still reaches the server";
  EXPECT_TRUE(e.server.eof);
  EXPECT_NE(loop.batch().log.find("query unknown"), std::string::npos) << loop.batch().log;
}

TEST(ProxySession, ServerClosingAfterItsLastBytesReachesTheClient) {
  Loop loop;
  Entry& e = logged_in(loop);
  ByteVec query = golden("frontend/query.hex");
  e.client.send_all(query);
  ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= query.size(); }));
  Wire fatal = W().msg('E', W().byte('S').str("FATAL").byte('C').str("57P01").byte('M').str("terminating").byte(0));
  e.server.send_all(fatal.bytes());
  e.server.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.client.eof; }));
  EXPECT_EQ(e.client.got, fatal.bytes());
  EXPECT_EQ(e.session->phase(), Phase::kLinger);  // waits for the client to close
  e.client.close_fd();
  ASSERT_TRUE(loop.until([&] { return e.session->done(); }));
  EXPECT_EQ(e.session->close_reason(), "server closed the connection");
  EXPECT_NE(loop.batch().log.find("query error"), std::string::npos) << loop.batch().log;
  EXPECT_NE(loop.batch().log.find("sqlstate=57P01"), std::string::npos) << loop.batch().log;
}

TEST(ProxySession, UpstreamThatCannotBeReachedIsReportedToTheClient) {
  Loop loop;
  loop.refuse_connect = true;
  Entry& e = loop.open();
  e.client.send_all(golden("frontend/startup_v30.hex"));
  ASSERT_TRUE(loop.until([&] { return e.session->done() && e.client.eof; }));
  std::string err = error_of(e.client.got);
  EXPECT_EQ(err.substr(0, 6), "08006 ") << err;
  EXPECT_NE(err.find("could not connect to the server test-upstream"), std::string::npos) << err;
}

TEST(ProxySession, OverTheConnectionLimitRefusedWith53300ButCancelsGoThrough) {
  {
    Loop loop;
    Entry& e = loop.open("too many connections (test)");
    EXPECT_FALSE(e.session->counted());
    e.client.send_all(golden("frontend/startup_v30.hex"));
    ASSERT_TRUE(loop.until([&] { return e.session->done() && e.client.eof; }));
    EXPECT_EQ(error_of(e.client.got), "53300 too many connections (test)");
    EXPECT_EQ(loop.connects, 0);
    EXPECT_TRUE(loop.batch().capture.empty()) << "refused sessions are not captured";
  }
  {
    Loop loop;
    Entry& e = loop.open("too many connections (test)");
    ByteVec cancel = golden("frontend/cancel_request_v30.hex");
    e.client.send_all(cancel);
    ASSERT_TRUE(loop.until([&] { return e.server.got.size() >= cancel.size(); }));
    EXPECT_EQ(e.server.got, cancel);
  }
}

// Regression: a session that ended in a round after it queued output stayed on
// the round's dirty list, from which the proxy sends after freeing ended sessions.
TEST(ProxySession, EndingSessionLeavesTheDirtyList) {
  Loop loop;
  Entry& e = logged_in(loop);
  e.server.send_all(W().msg('N', W().byte('M').str("notice").byte(0)).bytes());
  pollfd p{e.session->server_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 1000), 1);
  e.session->on_server_event(p.revents);  // queues the notice for the client
  ASSERT_EQ(std::count(loop.ctx.dirty.begin(), loop.ctx.dirty.end(), e.session.get()), 1);
  e.session->abort("proxy shutdown");
  EXPECT_TRUE(e.session->done());
  EXPECT_EQ(std::count(loop.ctx.dirty.begin(), loop.ctx.dirty.end(), e.session.get()), 0);
}

// ---------------------------------------------------------------------------
// The send batch, both ways

class SendBatchTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam() && !SendBatch(true).uses_io_uring()) {
      GTEST_SKIP() << "io_uring is not available here: " << SendBatch(true).fallback_reason();
    }
  }
};

TEST_P(SendBatchTest, PartialWritesStayQueuedAndArriveInOrder) {
  Loop loop(GetParam());
  EXPECT_EQ(loop.sends().uses_io_uring(), GetParam());
  Entry& e = logged_in(loop);
  int small = 4096;
  ASSERT_EQ(setsockopt(e.session->client_fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  const ByteVec data = pattern(size_t{600} * 1024, 7);
  const int client_fd = e.client.fd;
  e.client.fd = -1;  // the client reads nothing for now
  std::thread writer([&] { e.server.send_all(data); });
  size_t most = 0;
  for (int i = 0; i < 60; ++i) {
    loop.round(20);
    most = std::max(most, e.session->pending_to_client());
  }
  EXPECT_GT(e.session->pending_to_client(), 0u) << "the socket took only part of it";
  EXPECT_LE(most, OutBuf::kHighWater + loop.ctx.scratch.size()) << "backpressure: the server is not read";
  e.client.fd = client_fd;
  ASSERT_TRUE(loop.until([&] { return e.client.got.size() >= data.size(); }, 2000));
  writer.join();
  EXPECT_EQ(e.client.got, data);
  EXPECT_EQ(e.session->pending_to_client(), 0u);
  EXPECT_FALSE(e.session->done());
}

TEST_P(SendBatchTest, AnErrorOnOneSocketEndsOnlyItsSession) {
  Loop loop(GetParam());
  Entry& a = logged_in(loop);
  Entry& b = logged_in(loop);
  // a's client stops reading for good: a write to it fails (EPIPE), while
  // a read from it would still wait (its write side stays open).
  ASSERT_EQ(shutdown(a.client.fd, SHUT_RD), 0);
  const ByteVec for_a = pattern(20000, 1), for_b = pattern(20000, 2);
  a.server.send_all(for_a);
  b.server.send_all(for_b);
  // Both sessions read in the same round, so both writes go in one batch.
  pollfd p[2] = {{a.session->server_fd(), POLLIN, 0}, {b.session->server_fd(), POLLIN, 0}};
  ASSERT_TRUE(loop.until([&] { return poll(p, 2, 0) == 2; }, 10) || poll(p, 2, 1000) == 2);
  a.session->on_server_event(p[0].revents);
  b.session->on_server_event(p[1].revents);
  ASSERT_EQ(loop.ctx.dirty.size(), 2u);
  loop.sends().flush(loop.ctx.dirty);
  EXPECT_TRUE(loop.ctx.dirty.empty());
  EXPECT_NE(a.session->phase(), Phase::kForwarding);
  EXPECT_NE(a.session->close_reason().find("client connection error"), std::string::npos) << a.session->close_reason();
  ASSERT_TRUE(loop.until([&] { return b.client.got.size() >= for_b.size(); }));
  EXPECT_EQ(b.client.got, for_b);
  EXPECT_EQ(b.session->phase(), Phase::kForwarding);
  ASSERT_TRUE(loop.until([&] { return a.session->done(); }));
}

// pgproxy's own SendBatch sends a round with one session to write for with
// send(), and takes the ring from two on; what arrives is the same.
TEST(SendBatch, ALoneSessionsWritesGoWithSendAndTwoOrMoreThroughTheRing) {
  if (!SendBatch(true).uses_io_uring()) GTEST_SKIP() << "io_uring is not available here";
  Loop loop(true);
  Entry& a = logged_in(loop);
  Entry& b = logged_in(loop);
  SendBatch sends(true);  // ring_from = 2, as in pgproxy
  auto round_with = [&](std::vector<Entry*> who, uint8_t fill) {
    for (Entry* e : who) e->server.send_all(pattern(3000, fill));
    pollfd p[2] = {};
    for (size_t i = 0; i < who.size(); ++i) p[i] = {who[i]->session->server_fd(), POLLIN, 0};
    ASSERT_EQ(poll(p, who.size(), 1000), static_cast<int>(who.size()));
    for (size_t i = 0; i < who.size(); ++i) who[i]->session->on_server_event(p[i].revents);
    ASSERT_EQ(loop.ctx.dirty.size(), who.size());
    sends.flush(loop.ctx.dirty);
    EXPECT_TRUE(loop.ctx.dirty.empty());
  };
  round_with({&a}, 1);
  EXPECT_EQ(sends.plain_rounds(), 1u);
  EXPECT_EQ(sends.ring_rounds(), 0u);
  round_with({&a, &b}, 2);
  EXPECT_EQ(sends.plain_rounds(), 1u);
  EXPECT_EQ(sends.ring_rounds(), 1u);
  ASSERT_TRUE(loop.until([&] { return a.client.got.size() >= 6000 && b.client.got.size() >= 3000; }));
  ByteVec want_a = pattern(3000, 1);
  const ByteVec second = pattern(3000, 2);
  want_a.insert(want_a.end(), second.begin(), second.end());
  EXPECT_EQ(a.client.got, want_a);
  EXPECT_EQ(b.client.got, second);
}

INSTANTIATE_TEST_SUITE_P(Ways, SendBatchTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "io_uring" : "send"; });

// ---------------------------------------------------------------------------
// EpollSet: the loop's registrations, kept between rounds

struct Pair {
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0); }
  ~Pair() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  void put(std::string_view s) const { ASSERT_EQ(write(fd[1], s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // Moves the near end onto descriptor number `number` (free by now), as the
  // lowest free number handed out by accept() would be.
  void renumber(int number) {
    if (fd[0] == number) return;
    ASSERT_EQ(dup3(fd[0], number, O_CLOEXEC), number);
    close(fd[0]);
    fd[0] = number;
  }
  int fd[2] = {-1, -1};
};

using Ready = EpollSet::Ready;

TEST(EpollSet, ReportsWhatIsReadyLevelTriggeredAndFollowsChangedInterest) {
  EpollSet set;
  ASSERT_TRUE(set.ok()) << set.error();
  Pair a, b;
  int owner_a = 0, owner_b = 0;
  EXPECT_TRUE(set.set(a.fd[0], POLLIN, 1, 3, &owner_a));
  EXPECT_TRUE(set.set(b.fd[0], POLLIN, 2, 4, &owner_b));
  std::vector<Ready> ready;
  EXPECT_EQ(set.wait(ready, 0), 0) << "nothing sent yet";
  b.put("x");
  ASSERT_EQ(set.wait(ready, 1000), 1);
  EXPECT_EQ(ready[0].fd, b.fd[0]);
  EXPECT_EQ(ready[0].role, 4);
  EXPECT_EQ(ready[0].owner, &owner_b);
  EXPECT_EQ(ready[0].revents, POLLIN);
  ASSERT_EQ(set.wait(ready, 0), 1) << "not read: reported again, as poll() would";
  EXPECT_EQ(ready[0].owner, &owner_b);
  EXPECT_TRUE(set.set(b.fd[0], POLLIN | POLLOUT, 2, 4, &owner_b));
  ASSERT_EQ(set.wait(ready, 0), 1);
  EXPECT_EQ(ready[0].revents, POLLIN | POLLOUT);
  EXPECT_TRUE(set.set(a.fd[0], 0, 1, 3, &owner_a));  // stops waiting for `a`
  EXPECT_TRUE(set.set(b.fd[0], POLLOUT, 2, 4, &owner_b));
  a.put("y");
  ASSERT_EQ(set.wait(ready, 0), 1);
  EXPECT_EQ(ready[0].owner, &owner_b);
  EXPECT_EQ(ready[0].revents, POLLOUT);
  EXPECT_TRUE(set.set(a.fd[0], POLLIN, 1, 3, &owner_a));  // and again: what arrived meanwhile is reported
  set.remove(b.fd[0], 2);
  ASSERT_EQ(set.wait(ready, 0), 1);
  EXPECT_EQ(ready[0].owner, &owner_a);
  EXPECT_EQ(ready[0].revents, POLLIN);
  EXPECT_EQ(set.registered(), 1u);
}

TEST(EpollSet, PeerGoneIsReportedAsHangUp) {
  EpollSet set;
  ASSERT_TRUE(set.ok()) << set.error();
  Pair a;
  EXPECT_TRUE(set.set(a.fd[0], POLLIN, 7, 3, nullptr));
  std::vector<Ready> ready;
  EXPECT_EQ(set.wait(ready, 0), 0);
  close(a.fd[1]);
  a.fd[1] = -1;
  ASSERT_EQ(set.wait(ready, 1000), 1);
  EXPECT_TRUE(ready[0].revents & POLLHUP) << ready[0].revents;
}

// A descriptor closed and its number handed out again to another socket at
// once: the new owner must be waited for (closing took the old registration
// out of the kernel's list), and forgetting the old owner afterwards must not
// take the new one's registration away.
TEST(EpollSet, ADescriptorNumberReusedByAnotherOwnerIsWaitedForAnew) {
  EpollSet set;
  auto first = std::make_unique<Pair>();
  int old_owner = 0, new_owner = 0;
  const int number = first->fd[0];
  EXPECT_TRUE(set.set(number, POLLIN, 10, 3, &old_owner));
  std::vector<Ready> ready;
  EXPECT_EQ(set.wait(ready, 0), 0);
  first.reset();
  Pair second;
  second.renumber(number);
  EXPECT_TRUE(set.set(number, POLLIN, 11, 3, &new_owner));
  set.remove(number, 10);  // the old owner, ended, is forgotten after the new one came
  EXPECT_EQ(set.wait(ready, 0), 0) << "nothing sent on the new socket";
  second.put("z");
  ASSERT_EQ(set.wait(ready, 1000), 1);
  EXPECT_EQ(ready[0].owner, &new_owner);
  EXPECT_EQ(ready[0].revents, POLLIN);
}

// A descriptor the kernel will not wait for is refused, and left out: the
// proxy then ends the session that owns it rather than let it hang.
TEST(EpollSet, ARegistrationTheKernelRefusesIsReportedAndLeftOut) {
  EpollSet set;
  ASSERT_TRUE(set.ok()) << set.error();
  char path[] = "/tmp/epoll-set-test.XXXXXX";
  int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  errno = 0;
  EXPECT_FALSE(set.set(file, POLLIN, 30, 3, nullptr)) << "epoll does not take regular files";
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(set.registered(), 0u);
  Pair a;
  EXPECT_TRUE(set.set(a.fd[0], POLLIN, 31, 3, nullptr));
  a.put("v");
  std::vector<Ready> ready;
  ASSERT_EQ(set.wait(ready, 1000), 1) << "the refused one is not reported";
  EXPECT_EQ(ready[0].fd, a.fd[0]);
  EXPECT_EQ(set.stale_events(), 0u);
  close(file);
}

// ---------------------------------------------------------------------------
// The writer thread

using pgwire::test::TempDir;

// An AsyncWriter writing its SQL log and/or capture into a fresh directory.
struct WriterInDir {
  WriterInDir(bool log, bool capture) {
    if (log) opts.sql_log_path = dir.path() + "/sql.log";
    if (capture) opts.capture_path = dir.path() + "/c.pgwcap";
    std::string error;
    writer = AsyncWriter::start(opts, error);
    EXPECT_TRUE(writer) << error;
  }
  TempDir dir;
  WriterOptions opts;
  std::unique_ptr<AsyncWriter> writer;
};

bool wait_for(const std::function<bool()>& cond) {
  for (int i = 0; i < 500 && !cond(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return cond();
}

// Regression: every submit exchanged the batch for a new empty one, so the
// loop allocated its buffers again every 10 ms.
TEST(AsyncWriter, SubmitHandsBackAWrittenBatchWithItsMemory) {
  WriterInDir w(true, false);
  ASSERT_TRUE(w.writer);
  AsyncWriter* writer = w.writer.get();
  WriteBatch batch = writer->new_batch();
  const std::string line(10000, 'x');
  batch.log = line + "\n";
  batch.log_lines = 1;
  writer->submit(batch);
  EXPECT_TRUE(batch.empty());
  ASSERT_TRUE(wait_for([&] { return writer->stats().lines_written.load() == 1; }));
  batch.log = "second\n";
  batch.log_lines = 1;
  writer->submit(batch);
  EXPECT_TRUE(batch.empty());
  EXPECT_GE(batch.log.capacity(), line.size()) << "the first batch came back, with its memory";
  EXPECT_EQ(writer->stats().batches_recycled.load(), 1u);
  writer->begin_stop();
  writer->join();
  EXPECT_EQ(writer->stats().lines_written.load(), 2u);
}

TEST(AsyncWriter, WritesTheRecordsTheLoopEncodedAndCountsThem) {
  WriterInDir w(false, true);
  ASSERT_TRUE(w.writer);
  AsyncWriter* writer = w.writer.get();
  WriteBatch batch = writer->new_batch();
  ByteVec query = golden("frontend/query.hex");
  pgwire::Frame f;
  f.type = 'Q';
  f.length = static_cast<uint32_t>(query.size() - 1);
  f.body = Bytes{query}.subspan(5);
  ASSERT_TRUE(batch.capture.session_open(1, 1000, "c", "s").ok());
  ASSERT_TRUE(batch.capture.frame(1, 2000, pgwire::Direction::kFrontend, f).ok());
  ByteVec password = golden("frontend/password_cleartext.hex");
  f.type = 'p';
  f.length = static_cast<uint32_t>(password.size() - 1);
  f.body = Bytes{password}.subspan(5);
  ASSERT_TRUE(batch.capture.frame(1, 3000, pgwire::Direction::kFrontend, f).ok());
  ASSERT_TRUE(batch.capture.session_close(1, 4000, "eof").ok());
  writer->submit(batch);
  writer->begin_stop();
  writer->join();
  EXPECT_EQ(writer->stats().records_written.load(), 4u);
  EXPECT_EQ(writer->stats().records_lost.load(), 0u);
  EXPECT_EQ(fs::status(w.opts.capture_path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  auto r = pgwire::CaptureReader::open(w.opts.capture_path);
  ASSERT_TRUE(r.ok());
  pgwire::CaptureRecord rec;
  std::vector<std::string> seen;
  while (true) {
    auto more = (*r)->next(rec);
    ASSERT_TRUE(more.ok());
    if (!*more) break;
    if (rec.type == pgwire::CaptureRecordType::kFrame) {
      seen.push_back((rec.redacted() ? "redacted " : "") + pgwire::to_hex(rec.data));
    }
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], pgwire::to_hex(query));
  EXPECT_EQ(seen[1], "redacted " + pgwire::to_hex(Bytes{password}.first(5))) << "only the header of a password";
}

TEST(AsyncWriter, RecordsThatCannotBeWrittenAreCountedLost) {
  WriterInDir w(false, true);
  ASSERT_TRUE(w.writer);
  AsyncWriter* writer = w.writer.get();
  // The file may not grow past its header: writes fail with EFBIG (SIGXFSZ ignored).
  const auto header = static_cast<rlim_t>(fs::file_size(w.opts.capture_path));
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit tight = old;
  tight.rlim_cur = header;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &tight), 0);
  WriteBatch batch = writer->new_batch();
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(batch.capture.session_open(i, 1, "c", "s").ok());
  writer->submit(batch);
  writer->begin_stop();
  writer->join();
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_EQ(writer->stats().records_written.load(), 0u);
  EXPECT_EQ(writer->stats().records_lost.load(), 3u);
  EXPECT_GE(writer->stats().write_errors.load(), 1u);
}

// --- the metrics endpoint's pieces --------------------------------------------------------

TEST(Metrics, RequestsAreJudgedOnlyOnceTheirHeadIsComplete) {
  EXPECT_EQ(judge_metrics_request("GET /metrics HTTP/1.1\r\nHost: x\r\n"), MetricsVerdict::kIncomplete);
  EXPECT_EQ(judge_metrics_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), MetricsVerdict::kMetrics);
  EXPECT_EQ(judge_metrics_request("GET /metrics?name[]=up HTTP/1.0\n\n"), MetricsVerdict::kMetrics);
  EXPECT_EQ(judge_metrics_request("GET /metricsx HTTP/1.1\r\n\r\n"), MetricsVerdict::kNotFound);
  EXPECT_EQ(judge_metrics_request("GET / HTTP/1.1\r\n\r\n"), MetricsVerdict::kNotFound);
  EXPECT_EQ(judge_metrics_request("POST /metrics HTTP/1.1\r\n\r\n"), MetricsVerdict::kBadMethod);
  EXPECT_EQ(judge_metrics_request("GET /metrics\r\n\r\n"), MetricsVerdict::kBadRequest);
  EXPECT_EQ(judge_metrics_request("\x16\x03\x01\x02\x01\r\n\r\n"), MetricsVerdict::kBadRequest);
  EXPECT_EQ(judge_metrics_request(std::string(MetricsEndpoint::kMaxRequest - 1, 'a')), MetricsVerdict::kIncomplete);
  EXPECT_EQ(judge_metrics_request(std::string(MetricsEndpoint::kMaxRequest, 'a')), MetricsVerdict::kTooLarge);
}

pgwire::StatementEvent statement(pgwire::Outcome outcome, int64_t duration_ns, std::string sqlstate = {}) {
  pgwire::StatementEvent ev;
  ev.kind = pgwire::StatementKind::kExecute;
  ev.outcome = outcome;
  ev.sqlstate = std::move(sqlstate);
  ev.start_ns = 1'000'000'000;
  ev.end_ns = outcome == pgwire::Outcome::kUnknown ? 0 : ev.start_ns + duration_ns;
  return ev;
}

TEST(Metrics, DurationsFallInInclusiveBucketsAndOnlySeenOutcomesHaveOne) {
  StatementMetrics m;
  m.record(statement(pgwire::Outcome::kOk, 50'000));  // exactly 50 µs: the first bucket (le is inclusive)
  m.record(statement(pgwire::Outcome::kOk, 50'001));  // just above: the second
  m.record(statement(pgwire::Outcome::kError, 2'000'000, "22012"));  // 2 ms
  m.record(statement(pgwire::Outcome::kError, 3'000'000, "4x000"));  // not a SQLSTATE: "unknown"
  m.record(statement(pgwire::Outcome::kOk, 61'000'000'000));         // over 60 s: +Inf only
  m.record(statement(pgwire::Outcome::kUnknown, 0));                 // no duration
  m.record(statement(pgwire::Outcome::kNotExecuted, 0));             // skipped: seen, 0 s
  EXPECT_EQ(m.count(pgwire::StatementKind::kExecute, pgwire::Outcome::kOk), 3u);
  EXPECT_EQ(m.count(pgwire::StatementKind::kExecute, pgwire::Outcome::kUnknown), 1u);
  EXPECT_EQ(m.duration_count(), 6u);
  EXPECT_EQ(m.duration_buckets()[0], 2u);  // 50 µs and the skipped one's 0 s
  EXPECT_EQ(m.duration_buckets()[1], 1u);
  EXPECT_EQ(m.duration_buckets()[5], 1u);  // (1 ms, 2.5 ms]
  EXPECT_EQ(m.duration_buckets()[StatementMetrics::kBuckets.size()], 1u);
  ASSERT_EQ(m.error_classes().size(), 2u);
  EXPECT_EQ(m.error_classes().at("22"), 1u);
  EXPECT_EQ(m.error_classes().at("unknown"), 1u);

  MetricsSnapshot snap;
  snap.statements = &m;
  snap.client_bytes = 7;
  std::string text;
  render_metrics(snap, text);
  EXPECT_NE(text.find("\n# TYPE pgproxy_statement_duration_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statement_duration_seconds_bucket{le=\"5e-05\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\npgproxy_statement_duration_seconds_bucket{le=\"0.0001\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statement_duration_seconds_bucket{le=\"60\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statement_duration_seconds_bucket{le=\"+Inf\"} 6\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statement_duration_seconds_count 6\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statement_errors_total{sqlstate_class=\"22\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_statements_total{kind=\"execute\",outcome=\"unknown\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("\npgproxy_received_bytes_total{from=\"client\"} 7\n"), std::string::npos);
  EXPECT_EQ(text.find("tls"), std::string::npos);  // no TLS configured, no TLS lines
}

}  // namespace
}  // namespace pgproxy
