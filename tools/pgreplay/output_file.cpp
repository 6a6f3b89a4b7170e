#include "output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "pgwire/system.hpp"

namespace pgreplay {

namespace {

// errno of the write(2) that failed, 0 when all of `data` was written.
int write_all(int fd, std::string_view data) { return pgwire::write_fully(fd, data.data(), data.size()).err; }

std::string failed(const char* step, const std::string& file, int err) {
  return fmt::format("{} {}: {}", step, file, pgwire::errno_text(err));
}

// Not a regular file: written where it is (O_TRUNC means nothing to a device or a pipe).
std::optional<std::string> write_in_place(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return failed("open", path, errno);
  if (const int e = write_all(fd, data); e != 0) {
    ::close(fd);
    return failed("write", path, e);
  }
  if (::close(fd) != 0) return failed("close", path, errno);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> write_file_replacing(const std::string& path, std::string_view data) {
  if (path.empty()) return std::string("no file name");
  struct stat st {};
  std::string target = path;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return write_in_place(path, data);
    // A symbolic link to a file: replace the file, not the link.
    if (char* real = ::realpath(path.c_str(), nullptr)) {
      target = real;
      std::free(real);
    }
  }
  std::vector<char> name(target.begin(), target.end());
  for (char c : std::string_view(".XXXXXX")) name.push_back(c);
  name.push_back('\0');
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return failed("create", std::string(name.data()), errno);
  const std::string temp(name.data());
  auto give_up = [&](const char* step, int err) {
    ::unlink(temp.c_str());
    return failed(step, temp, err) + fmt::format("; {} left as it was", path);
  };
  if (const int e = write_all(fd, data); e != 0) {
    ::close(fd);
    return give_up("write", e);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    return give_up("fsync", e);
  }
  if (::close(fd) != 0) return give_up("close", errno);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    return fmt::format("rename {} to {}: {}; {} left as it was", temp, target, pgwire::errno_text(e), path);
  }
  return std::nullopt;
}

}  // namespace pgreplay
