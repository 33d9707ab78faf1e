#include "data/image/align_folder.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <string_view>

#include "data/image/alignment.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace fs = std::filesystem;

std::int64_t align_folder(const fs::path& images, const fs::path& landmarks, const fs::path& out,
                          const AlignFolderOptions& options) {
  const auto entries = read_landmarks(landmarks.string());
  JpegCodec codec;
  std::int64_t written = 0;
  for (const auto& e : entries) {
    const std::string where = fmt::format("{}:{}: {}", landmarks.string(), e.line, e.path);
    const fs::path rel(e.path);
    if (rel.is_absolute() || rel.lexically_normal().string().rfind("..", 0) == 0) {
      throw DataError(fmt::format("{}: the path must be relative to {} and stay inside it", where,
                                  images.string()));
    }
    const auto bytes = read_file_bytes(images / rel);
    const at::Tensor image =
        (is_jpeg(bytes) ? codec.decode(bytes, where) : decode_non_jpeg(bytes, where)).contiguous();
    const auto face = align_face(image.data_ptr<std::uint8_t>(), image.size(0), image.size(1),
                                 e.points, options.size, where);
    const at::Tensor rgb = at::from_blob(const_cast<std::uint8_t*>(face.data()),
                                         {options.size, options.size, 3}, at::kByte);
    const auto jpeg = codec.encode(rgb, options.quality);
    fs::path target = out / rel;
    target.replace_extension(".jpg");
    fs::create_directories(target.parent_path());
    write_file_atomic(target,
                      std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
    ++written;
  }
  return written;
}

}  // namespace facetrain::data
