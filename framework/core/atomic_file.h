#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace facetrain {

// Writes `content` to `path` so that a reader sees either the old file or the whole new one, never
// a part: the bytes go to PATH.tmp-PID, are fsynced, renamed over `path`, and the folder is
// fsynced. Throws facetrain::Error naming the file on any failure (the old file is then intact).
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// The same for a file that `write` writes itself (HDF5, say) at the temporary path it is given
// and closes, checking the close: then it is fsynced, renamed over `path` and the folder fsynced.
// When `write` throws, the temporary file is removed and the exception passes on.
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

}  // namespace facetrain
