#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "framework/core/input_file.h"

namespace facetrain {

// CRC-32 (zlib's polynomial, as in zip archives and the dataset manifest) of `bytes`.
std::uint32_t crc32_of(std::string_view bytes);

// CRC-32 of a whole open file, read in 1 MiB blocks.
std::uint32_t crc32_of(const InputFile& file);

// CRC-32 of the file at `path`; E names it when it is not a readable regular file.
template <class E>
std::uint32_t file_crc32(const std::filesystem::path& path) {
  return crc32_of(InputFile::open_or_throw<E>(path));
}

}  // namespace facetrain
