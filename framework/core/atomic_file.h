#pragma once

#include <filesystem>
#include <string_view>

namespace facetrain {

// Writes `content` to `path` so that a reader sees either the old file or the whole new one, never
// a part: the bytes go to PATH.tmp-PID, are fsynced, renamed over `path`, and the folder is
// fsynced. Throws facetrain::Error naming the file on any failure (the old file is then intact).
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace facetrain
