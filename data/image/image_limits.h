#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

#include "framework/core/error.h"

namespace facetrain::data {

// The largest image facetrain decodes: 2^26 pixels (8192 x 8192, a 67-megapixel photo; 192 MiB
// as RGB). A file whose header declares more — a decompression bomb, or no face photo — is
// refused from its header, before anything is allocated.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 26;

// The largest image file facetrain reads: an uncompressed image of kMaxImagePixels, and more.
inline constexpr std::int64_t kMaxImageFileBytes = std::int64_t{512} << 20;

// DataError naming `source` when a width × height image is empty or larger than kMaxImagePixels.
inline void check_image_size(std::int64_t width, std::int64_t height, const std::string& source) {
  if (width < 1 || height < 1 || width > kMaxImagePixels / height) {
    throw DataError(
        fmt::format("{}: the image declares {}x{} pixels; facetrain decodes images of "
                    "1 to {} pixels",
                    source, width, height, kMaxImagePixels));
  }
}

}  // namespace facetrain::data
