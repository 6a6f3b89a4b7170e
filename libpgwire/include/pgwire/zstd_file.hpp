// Compressing a closed capture file with zstd, for a writer that rotates its
// captures (pgproxy --rotate-compress). CaptureReader reads the result as it
// reads the original: it recognises zstd data by its frame magic.
#pragma once

#include <string>

#include "pgwire/result.hpp"

namespace pgwire {

// Compresses `src` into `dst` (one zstd frame, with its content size and
// checksum, at `level`: 1 to 19 are the usual ones, up to ZSTD_maxCLevel()).
// The data goes to `dst` + ".tmp", created with O_EXCL and mode 0600 (a
// leftover .tmp, or another compression of the same file, is an error),
// fsync'ed, then renamed to `dst` (replacing it) and the directory fsync'ed.
// On any failure before the rename the .tmp is removed; `src` is never
// changed: the caller unlinks it once this succeeded. Errors are kIo with
// the file's name and the errno text (offset: the bytes of `src` read so
// far), or kBadValue for a level out of range or a zstd failure (`src`
// changed size while it was read, for one).
Status compress_file(const std::string& src, const std::string& dst, int level);

}  // namespace pgwire
