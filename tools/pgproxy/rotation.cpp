#include "rotation.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>
#include <utility>

#include "diag.hpp"
#include "pgwire/system.hpp"
#include "pgwire/zstd_file.hpp"

namespace pgproxy {

namespace {

constexpr std::string_view kZst = ".zst";

struct PathParts {
  std::string dir;   // "" or ending in '/'
  std::string stem;  // the name up to its last '.', or all of it
  std::string ext;   // from the last '.' on ("" if none)
};

PathParts split(const std::string& path) {
  PathParts p;
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (slash != std::string::npos) p.dir = path.substr(0, slash + 1);
  size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) {
    p.stem = base;
  } else {
    p.stem = base.substr(0, dot);
    p.ext = base.substr(dot);
  }
  return p;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "20261202T174000Z" or "20261202T174000Z-3".
bool is_stamp(std::string_view s) {
  if (s.size() < 16 || s[8] != 'T' || s[15] != 'Z') return false;
  if (!all_digits(s.substr(0, 8)) || !all_digits(s.substr(9, 6))) return false;
  if (s.size() == 16) return true;
  return s[16] == '-' && all_digits(s.substr(17));
}

// The decimal number at the start of s (0 if none), capped far above any
// second's rotations.
int leading_number(std::string_view s) {
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || n > 1'000'000) break;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

std::string rotated_name(const std::string& path, int64_t start_ns, int attempt) {
  PathParts p = split(path);
  time_t secs = static_cast<time_t>(start_ns / 1'000'000'000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  std::string name = p.dir + p.stem + "-" + stamp;
  if (attempt > 0) name += "-" + std::to_string(attempt);
  return name + p.ext;
}

std::vector<std::string> rotated_files(const std::string& path) {
  PathParts p = split(path);
  std::vector<std::pair<std::string, int>> found;  // (stamp, attempt) order
  std::vector<std::string> out;
  DIR* d = opendir(p.dir.empty() ? "." : p.dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name.size() > kZst.size() && name.substr(name.size() - kZst.size()) == kZst) name.remove_suffix(kZst.size());
    if (name.size() < p.stem.size() + 1 + p.ext.size()) continue;
    if (name.substr(0, p.stem.size()) != p.stem || name[p.stem.size()] != '-') continue;
    if (name.substr(name.size() - p.ext.size()) != p.ext) continue;
    std::string_view stamp = name.substr(p.stem.size() + 1, name.size() - p.stem.size() - 1 - p.ext.size());
    if (!is_stamp(stamp)) continue;
    int attempt = stamp.size() > 16 ? leading_number(stamp.substr(17)) : 0;
    found.emplace_back(std::string(stamp.substr(0, 16)) + "\n" + e->d_name, attempt);
  }
  closedir(d);
  // Oldest first: by the stamp, then by the "-N" of a second's later rotations.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    std::string_view sa = std::string_view(a.first).substr(0, 16), sb = std::string_view(b.first).substr(0, 16);
    return sa != sb ? sa < sb : a.second != b.second ? a.second < b.second : a.first < b.first;
  });
  for (const auto& f : found) out.push_back(p.dir + f.first.substr(17));
  return out;
}

std::string rename_to_rotated(const std::string& path, int64_t start_ns) {
  // After every closed file of the same second, compressed ones included,
  // so that names keep sorting in the order the files were begun.
  std::string plain = rotated_name(path, start_ns);
  std::string prefix = plain.substr(0, plain.size() - split(path).ext.size());  // ".../STEM-STAMP"
  int attempt = 0;
  for (const std::string& f : rotated_files(path)) {
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    int n = f.size() > prefix.size() && f[prefix.size()] == '-'
                ? leading_number(std::string_view(f).substr(prefix.size() + 1))
                : 0;
    attempt = std::max(attempt, n + 1);
  }
  std::string closed = rotated_name(path, start_ns, attempt);
  if (rename(path.c_str(), closed.c_str()) != 0) return "";
  return closed;
}

int64_t next_rotation_ns(int64_t now_ns, int64_t interval_s) {
  int64_t step = interval_s * 1'000'000'000;
  return (now_ns / step + 1) * step;
}

int64_t file_start_ns(const std::string& path) {
  struct statx sx {};
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME | STATX_MTIME, &sx) != 0) return 0;
  const statx_timestamp& t = (sx.stx_mask & STATX_BTIME) != 0 ? sx.stx_btime : sx.stx_mtime;
  return t.tv_sec * 1'000'000'000 + t.tv_nsec;
}

// ---------------------------------------------------------------------------

void ClosedFiles::add(const std::string& active, const std::string& closed) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    jobs_.push_back(Job{active, closed});
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_one();
}

void ClosedFiles::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (opts_.compress && !jobs_.empty())
      diag("{} closed file(s) left uncompressed; they are compressed at the next start", jobs_.size());
    jobs_.clear();
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ClosedFiles::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
    if (jobs_.empty()) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    handle(job);
    lock.lock();
  }
}

void ClosedFiles::handle(const Job& job) {
  if (opts_.compress && !job.closed.empty() && access(job.closed.c_str(), F_OK) == 0) {
    std::string dst = job.closed + std::string(kZst);
    pgwire::Status st = pgwire::compress_file(job.closed, dst, opts_.compress_level);
    if (st.ok()) {
      if (unlink(job.closed.c_str()) != 0 && errno != ENOENT)
        diag("compressed {} but cannot remove it: {}", job.closed, pgwire::errno_text(errno));
      ++stats_.compressed;
    } else {
      ++stats_.compress_errors;
      diag("cannot compress {}: {}; it stays uncompressed", job.closed, st.error().describe());
    }
  }
  prune(job.active);
}

// Removes the oldest closed files beyond --rotate-keep.
void ClosedFiles::prune(const std::string& active) {
  if (opts_.keep == 0) return;
  std::vector<std::string> files = rotated_files(active);
  if (files.size() <= opts_.keep) return;
  for (size_t i = 0; i + opts_.keep < files.size(); ++i) {
    if (unlink(files[i].c_str()) == 0) {
      ++stats_.removed;
      diag("removed {} (--rotate-keep {})", files[i], opts_.keep);
    } else if (errno != ENOENT) {
      diag("cannot remove {}: {}", files[i], pgwire::errno_text(errno));
    }
  }
}

}  // namespace pgproxy
