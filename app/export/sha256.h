#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace facetrain::exporting {

// SHA-256 (FIPS 180-4) of `bytes`, as 64 lowercase hex digits — what `sha256sum` prints.
std::string sha256_hex(std::string_view bytes);

// SHA-256 of a file's contents; facetrain::Error naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& file);

}  // namespace facetrain::exporting
