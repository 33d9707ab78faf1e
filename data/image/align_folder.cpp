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

std::vector<std::uint8_t> aligned_face_pixels(JpegCodec& codec,
                                              const std::vector<std::uint8_t>& bytes,
                                              const FivePoints& landmarks, std::int64_t size,
                                              const std::string& where, LandmarkRule rule) {
  const at::Tensor image =
      (is_jpeg(bytes) ? codec.decode(bytes, where) : decode_non_jpeg(bytes, where)).contiguous();
  return align_face(image.data_ptr<std::uint8_t>(), image.size(0), image.size(1), landmarks, size,
                    where, rule);
}

std::vector<std::uint8_t> aligned_jpeg(JpegCodec& codec, const std::vector<std::uint8_t>& bytes,
                                       const FivePoints& landmarks, std::int64_t size, int quality,
                                       const std::string& where) {
  auto face = aligned_face_pixels(codec, bytes, landmarks, size, where);
  return codec.encode(at::from_blob(face.data(), {size, size, 3}, at::kByte), quality);
}

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
    const auto jpeg = aligned_jpeg(codec, read_file_bytes(images / rel), e.points, options.size,
                                   options.quality, where);
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
