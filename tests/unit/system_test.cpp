// pgwire/system.hpp: write_fully, which every writer of files that must not
// lose a byte quietly goes through (captures, pcap, reports, rotation).
#include "pgwire/system.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>

namespace pgwire {
namespace {

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

// A non-blocking pipe of one page, read slowly by another thread: write(2)
// takes a page at a time and says EAGAIN in between; all of it arrives, in order.
TEST(WriteFully, WaitsForAFullNonBlockingPipe) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_GE(::fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
  ASSERT_EQ(::fcntl(p[1], F_SETFL, ::fcntl(p[1], F_GETFL) | O_NONBLOCK), 0);
  const std::string data = pattern(1 << 20);
  std::string got;
  std::thread reader([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the pipe fills first
    char buf[3000];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  });
  const WriteResult r = write_fully(p[1], data.data(), data.size());
  ::close(p[1]);
  reader.join();
  ::close(p[0]);
  EXPECT_EQ(r.err, 0) << errno_text(r.err);
  EXPECT_EQ(r.written, data.size());
  EXPECT_TRUE(got == data) << got.size() << " bytes arrived of " << data.size();
}

TEST(WriteFully, SaysWhyAndHowMuchWentOut) {
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full < 0) GTEST_SKIP() << "no /dev/full";
  const std::string data = pattern(10000);
  const WriteResult r = write_fully(full, data.data(), data.size());
  ::close(full);
  EXPECT_EQ(r.err, ENOSPC);
  EXPECT_EQ(r.written, 0u);

  // A pipe whose reader is gone after 4096 bytes: those went out, then EPIPE.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_GE(::fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
  ASSERT_EQ(::fcntl(p[1], F_SETFL, ::fcntl(p[1], F_GETFL) | O_NONBLOCK), 0);
  void (*old)(int) = std::signal(SIGPIPE, SIG_IGN);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::close(p[0]);
  });
  const WriteResult cut = write_fully(p[1], data.data(), data.size());
  closer.join();
  std::signal(SIGPIPE, old);
  ::close(p[1]);
  EXPECT_EQ(cut.err, EPIPE) << errno_text(cut.err);
  EXPECT_EQ(cut.written, 4096u);

  const WriteResult nothing = write_fully(-1, data.data(), data.size());
  EXPECT_EQ(nothing.err, EBADF);
  EXPECT_EQ(nothing.written, 0u);
}

}  // namespace
}  // namespace pgwire
