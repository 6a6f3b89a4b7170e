// Files for tests: a private temporary directory removed with everything in
// it, and whole-file reads and writes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgwire::test {

// The whole file; empty if it cannot be read.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `data` as the whole file, replacing it; returns the path.
inline std::string spit(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}
inline std::string spit(const std::string& path, const std::vector<std::byte>& bytes) {
  return spit(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// A directory of its own (mode 0700, mkdtemp) under the temporary directory,
// named after `prefix`; removed with its contents when the object goes.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "pgwire-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(prefix) + ".XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` in the directory (nothing is created).
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // The names of the files in it, sorted.
  std::vector<std::string> names() const {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.insert(e.path().filename().string());
    return {names.begin(), names.end()};
  }
  // Writes `name` in the directory (text or bytes); returns its path.
  template <class Data>
  std::string write(const std::string& name, const Data& data) const {
    return spit(file(name), data);
  }

 private:
  std::string path_;
};

}  // namespace pgwire::test
