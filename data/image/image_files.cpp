#include "data/image/image_files.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>

#include "data/image/image_limits.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::data {
namespace {

std::string lower_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool is_supported_image(const std::string& ext) {
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tga" ||
         ext == ".gif";
}
bool is_unsupported_image(const std::string& ext) {
  return ext == ".webp" || ext == ".tif" || ext == ".tiff" || ext == ".heic" || ext == ".jxl";
}

}  // namespace

std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  if (!fs::exists(root)) throw DataError(fmt::format("{}: no such file or folder", root.string()));
  std::vector<fs::path> out;
  auto consider = [&](const fs::path& p) {
    const std::string ext = lower_extension(p);
    if (is_supported_image(ext)) {
      out.push_back(p);
    } else if (is_unsupported_image(ext)) {
      throw DataError(
          fmt::format("{}: {} images are not supported (JPEG, PNG, BMP, TGA and GIF "
                      "are); convert the file, e.g. with ImageMagick's convert",
                      p.string(), ext.substr(1)));
    }
  };
  if (fs::is_regular_file(root)) {
    consider(root);
  } else {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.is_regular_file()) consider(entry.path());
    }
  }
  if (out.empty()) throw DataError(fmt::format("{}: no images found", root.string()));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
  const std::string bytes =
      InputFile::open_or_throw<DataError>(path).read_all<DataError>(kMaxImageFileBytes, "an image file");
  return {bytes.begin(), bytes.end()};
}

}  // namespace facetrain::data

namespace facetrain::data {

bool is_jpeg(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

at::Tensor decode_non_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  int width = 0, height = 0, channels = 0;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw DataError(fmt::format("{}: a {}-byte image file; facetrain decodes files under 2 GiB",
                                source, bytes.size()));
  }
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height,
                            &channels) == 0) {
    throw DataError(fmt::format("{}: cannot decode the image: {}", source, stbi_failure_reason()));
  }
  check_image_size(width, height, source);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height,
                            &channels, 3),
      stbi_image_free);
  if (!pixels) {
    throw DataError(fmt::format("{}: cannot decode the image: {}", source, stbi_failure_reason()));
  }
  return at::from_blob(pixels.get(), {height, width, 3}, at::kByte).clone();
}

}  // namespace facetrain::data
