#include "pgwire/system.hpp"

#include <cstdio>
#include <ctime>
#include <exception>
#include <system_error>

namespace pgwire {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int run_main(const char* tool, int fatal_exit, int (*body)(int argc, char** argv), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", tool, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: fatal: unknown exception\n", tool);
  }
  return fatal_exit;
}

}  // namespace pgwire
