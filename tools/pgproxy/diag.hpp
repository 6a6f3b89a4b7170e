// Diagnostics on stderr: one line per call, written with a single write(2) so
// lines from the event loop and the writer thread never interleave.
#pragma once

#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace pgproxy {

// "2024-05-01T12:00:00.123Z pgproxy: <message>\n"
void diag_line(std::string_view message);

template <class... Args>
void diag(fmt::format_string<Args...> format, Args&&... args) {
  diag_line(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace pgproxy
