#include "diag.hpp"

#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>

#include "pgwire/system.hpp"

namespace pgproxy {

void diag_line(std::string_view message) {
  int64_t now = pgwire::realtime_ns();
  time_t secs = static_cast<time_t>(now / 1'000'000'000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[32];
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string line = fmt::format("{}.{:03d}Z pgproxy: {}\n", std::string_view(stamp, n),
                                 static_cast<int>((now / 1'000'000) % 1000), message);
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t w = write(STDERR_FILENO, rest.data(), rest.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // nowhere left to report to
    rest.remove_prefix(static_cast<size_t>(w));
  }
}

}  // namespace pgproxy
