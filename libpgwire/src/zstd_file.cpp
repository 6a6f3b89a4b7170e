#include "pgwire/zstd_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <vector>

#include "pgwire/system.hpp"

namespace pgwire {

namespace {

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close(2) with its result: a delayed write error can show only here.
  int reset() {
    int r = 0;
    if (fd_ >= 0) r = ::close(fd_);
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

Status write_all(int fd, const std::byte* p, size_t n, const std::string& path) {
  if (const WriteResult w = write_fully(fd, p, n); w.err != 0) {
    return Error{Errc::kIo, 0, fmt::format("write {}: {}", path, errno_text(w.err))};
  }
  return {};
}

// Everything up to the rename: the compressed data in `tmp`, written and fsync'ed.
Status compress_into(int in, uint64_t size, int out, const std::string& src, const std::string& tmp, int level) {
  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (!cctx) return Error{Errc::kIo, 0, "cannot allocate a zstd compression context"};
  auto zstd_error = [&](size_t r, uint64_t at) {
    return Error{Errc::kBadValue, at, fmt::format("zstd compressing {}: {}", src, ZSTD_getErrorName(r))};
  };
  for (auto [param, value] : {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_checksumFlag, 1}}) {
    if (size_t r = ZSTD_CCtx_setParameter(cctx.get(), param, value); ZSTD_isError(r)) return zstd_error(r, 0);
  }
  // The size goes into the frame header; a file that grows meanwhile is an error, not a silent cut.
  if (size_t r = ZSTD_CCtx_setPledgedSrcSize(cctx.get(), size); ZSTD_isError(r)) return zstd_error(r, 0);

  std::vector<std::byte> ibuf(ZSTD_CStreamInSize());
  std::vector<std::byte> obuf(ZSTD_CStreamOutSize());
  uint64_t read_so_far = 0;
  for (;;) {
    ssize_t n = ::read(in, ibuf.data(), ibuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{Errc::kIo, read_so_far, fmt::format("read {}: {}", src, errno_text(errno))};
    }
    read_so_far += static_cast<uint64_t>(n);
    const ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_inBuffer input{ibuf.data(), static_cast<size_t>(n), 0};
    // Until this input is taken (continue), or the frame is finished (end).
    for (;;) {
      ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
      if (ZSTD_isError(left)) return zstd_error(left, read_so_far);
      if (Status s = write_all(out, obuf.data(), output.pos, tmp); !s) {
        return Error{s.error().code, read_so_far, s.error().message};
      }
      if (mode == ZSTD_e_end ? left == 0 : input.pos == input.size) break;
    }
    if (n == 0) break;
  }
  if (::fsync(out) != 0) return Error{Errc::kIo, read_so_far, fmt::format("fsync {}: {}", tmp, errno_text(errno))};
  return {};
}

}  // namespace

Status compress_file(const std::string& src, const std::string& dst, int level) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    return Error{Errc::kBadValue, 0,
                 fmt::format("zstd level {} is not between {} and {}", level, ZSTD_minCLevel(), ZSTD_maxCLevel())};
  }
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", src, errno_text(errno))};
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Error{Errc::kIo, 0, fmt::format("stat {}: {}", src, errno_text(errno))};
  if (!S_ISREG(st.st_mode)) return Error{Errc::kIo, 0, fmt::format("{} is not a regular file", src)};

  const std::string tmp = dst + ".tmp";
  // O_EXCL: a .tmp that exists is another compression at work, or the
  // remains of one that died: neither is overwritten.
  Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (out.get() < 0) return Error{Errc::kIo, 0, fmt::format("create {}: {}", tmp, errno_text(errno))};

  Status st_compress = compress_into(in.get(), static_cast<uint64_t>(st.st_size), out.get(), src, tmp, level);
  if (st_compress && out.reset() != 0) {
    st_compress = Error{Errc::kIo, 0, fmt::format("close {}: {}", tmp, errno_text(errno))};
  }
  if (st_compress && ::rename(tmp.c_str(), dst.c_str()) != 0) {
    st_compress = Error{Errc::kIo, 0, fmt::format("rename {} to {}: {}", tmp, dst, errno_text(errno))};
  }
  if (!st_compress) {
    out.reset();
    ::unlink(tmp.c_str());
    return st_compress;
  }

  // The rename is durable once the directory is: dst is whole either way,
  // but a failure here leaves the caller keeping src (a reader takes the
  // two, whose headers are the same, for one file).
  std::filesystem::path dir = std::filesystem::path(dst).parent_path();
  const std::string dir_name = dir.empty() ? std::string(".") : dir.string();
  Fd d(::open(dir_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0 || ::fsync(d.get()) != 0) {
    return Error{Errc::kIo, 0, fmt::format("fsync directory {}: {}", dir_name, errno_text(errno))};
  }
  return {};
}

}  // namespace pgwire
