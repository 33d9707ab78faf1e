#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace facetrain::data {

// The JPEG files (.jpg, .jpeg, any case) under `root`, recursively, sorted by path; `root` may
// also be a single JPEG file. Other image formats (.png, .bmp, .webp, .tif) are an error naming
// the file, since facetrain reads JPEG only; files of other kinds are skipped. A missing root or
// one without any JPEG is a DataError.
std::vector<std::filesystem::path> list_jpeg_files(const std::filesystem::path& root);

// Every byte of `path`; DataError naming the file when it cannot be read.
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);

}  // namespace facetrain::data
