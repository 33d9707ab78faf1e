#include "framework/core/checksum.h"

#include <zlib.h>

#include <vector>

namespace facetrain {
namespace {

std::uint32_t extend(uLong crc, const char* data, std::size_t n) {
  // zlib takes 32-bit lengths: feed larger spans in pieces.
  while (n > 0) {
    const auto piece = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), piece);
    data += piece;
    n -= piece;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

std::uint32_t crc32_of(std::string_view bytes) {
  return extend(crc32(0L, Z_NULL, 0), bytes.data(), bytes.size());
}

std::uint32_t crc32_of(const InputFile& file) {
  std::vector<char> block(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::int64_t offset = 0;;) {
    const std::size_t n = file.read_at(offset, block.data(), block.size());
    if (n == 0) break;
    crc = extend(crc, block.data(), n);
    offset += static_cast<std::int64_t>(n);
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace facetrain
