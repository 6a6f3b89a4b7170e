// Writing a file pgreplay produces (the --report JSON) so that a failure
// names the step that failed and its cause, and never leaves a part of the
// file where a whole one is expected.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgreplay {

// Writes `data` to `path`. A regular file, or a path that does not exist yet,
// is written to a new file beside it (mode 0600), synced, and renamed over it:
// whoever reads `path` sees the previous file or the whole new one. Anything
// else that exists (a terminal, a pipe, /dev/stdout) is written in place.
// Returns nothing on success, else what failed: the step, the file it was
// done to, and the error of that very call ("write /x/r.json.Qx1bzZ: File
// too large; /x/r.json left as it was").
std::optional<std::string> write_file_replacing(const std::string& path, std::string_view data);

}  // namespace pgreplay
