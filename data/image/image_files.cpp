#include "data/image/image_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>

#include "framework/core/error.h"

namespace facetrain::data {
namespace {

std::string lower_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool is_jpeg(const std::string& ext) {
  return ext == ".jpg" || ext == ".jpeg";
}
bool is_other_image(const std::string& ext) {
  return ext == ".png" || ext == ".bmp" || ext == ".webp" || ext == ".tif" || ext == ".tiff";
}

}  // namespace

std::vector<std::filesystem::path> list_jpeg_files(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  if (!fs::exists(root)) throw DataError(fmt::format("{}: no such file or folder", root.string()));
  std::vector<fs::path> out;
  auto consider = [&](const fs::path& p) {
    const std::string ext = lower_extension(p);
    if (is_jpeg(ext)) {
      out.push_back(p);
    } else if (is_other_image(ext)) {
      throw DataError(
          fmt::format("{}: {} images are not supported; facetrain reads JPEG only "
                      "(convert the file, e.g. with ImageMagick's convert)",
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
  if (out.empty()) throw DataError(fmt::format("{}: no JPEG images found", root.string()));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", path.string()));
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(fmt::format("{}: read error", path.string()));
  return bytes;
}

}  // namespace facetrain::data
