#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace facetrain::data {

// The image files under `root`, recursively, sorted by path; `root` may also be a single file.
// Images are JPEG (.jpg, .jpeg) and, decoded with stb_image, PNG, BMP, TGA and GIF (any case).
// Other image formats (.webp, .tif, .tiff, .heic) are an error naming the file; files of other
// kinds are skipped. A missing root or one without any image is a DataError.
std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& root);

// True when `bytes` start like a JPEG (FF D8 FF).
bool is_jpeg(const std::vector<std::uint8_t>& bytes);

// Decodes a PNG, BMP, TGA or GIF (first frame) to uint8 [height, width, 3] RGB; DataError naming
// `source` and stb_image's reason otherwise.
at::Tensor decode_non_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& source);

// Every byte of `path`; DataError naming the file when it cannot be read.
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);

}  // namespace facetrain::data
