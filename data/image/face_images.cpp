#include "data/image/face_images.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstring>
#include <memory>

#include "data/image/align_folder.h"
#include "data/image/image_files.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace fs = std::filesystem;

FaceImages FaceImages::of(const VerificationSet& set) {
  return {2 * set.num_pairs(), [&set](std::int64_t i) { return set.image(i); },
          [](std::int64_t i) { return fmt::format("pair {} image {}", i / 2, i % 2); }, set.path()};
}

FaceImages FaceImages::of(const ShardedDataset& dataset) {
  return {dataset.size(), [&dataset](std::int64_t i) { return dataset.read(i); },
          [&dataset](std::int64_t i) { return dataset.describe(i); }, dataset.dir().string()};
}

FaceImages FaceImages::files(const fs::path& root) {
  auto paths = std::make_shared<const std::vector<fs::path>>(list_image_files(root));
  const fs::path base = fs::is_directory(root) ? root : root.parent_path();
  return {
      static_cast<std::int64_t>(paths->size()),
      [paths](std::int64_t i) { return read_file_bytes((*paths)[static_cast<std::size_t>(i)]); },
      [paths, base](std::int64_t i) {
        return fs::relative((*paths)[static_cast<std::size_t>(i)], base).string();
      },
      base.string()};
}

FaceImages FaceImages::photos(const fs::path& folder, const std::vector<LandmarkEntry>& entries,
                              const std::string& list) {
  FaceImages images;
  images.count = static_cast<std::int64_t>(entries.size());
  images.bytes = [folder, &entries](std::int64_t i) {
    return read_file_bytes(folder / entries[static_cast<std::size_t>(i)].path);
  };
  images.name = [list, &entries](std::int64_t i) {
    const auto& e = entries[static_cast<std::size_t>(i)];
    return fmt::format("{}:{}: {}", list, e.line, e.path);
  };
  images.landmarks = [&entries](std::int64_t i) {
    return entries[static_cast<std::size_t>(i)].points;
  };
  return images;
}

FaceDecoder::FaceDecoder(std::int64_t height, std::int64_t width, bool jpeg_only)
    : height_(height), width_(width), jpeg_only_(jpeg_only) {
  if (height < 1 || width < 1) {
    throw DataError(fmt::format("face decoder: size {}x{}: must be positive", width, height));
  }
}

void FaceDecoder::decode_into(const std::vector<std::uint8_t>& bytes, std::uint8_t* pixels,
                              const std::string& name) {
  if (is_jpeg(bytes)) {
    codec_.decode_into(bytes.data(), bytes.size(), pixels, static_cast<int>(width_),
                       static_cast<int>(height_), name);
    return;
  }
  if (jpeg_only_) throw DataError(fmt::format("{}: not a JPEG image", name));
  const at::Tensor image = decode_non_jpeg(bytes, name);
  if (image.size(0) != height_ || image.size(1) != width_) {
    throw DataError(fmt::format("{}: image is {}x{}, expected {}x{}", name, image.size(1),
                                image.size(0), width_, height_));
  }
  std::memcpy(pixels, image.contiguous().data_ptr<std::uint8_t>(),
              static_cast<std::size_t>(height_ * width_ * 3));
}

at::Tensor FaceDecoder::batch(const FaceImages& images, std::int64_t first, std::int64_t last) {
  at::Tensor out = at::empty({last - first, height_, width_, 3}, at::kByte);
  auto* pixels = out.data_ptr<std::uint8_t>();
  const std::int64_t image_bytes = height_ * width_ * 3;
  for (std::int64_t i = first; i < last; ++i) {
    const std::string name = images.origin.empty()
                                 ? images.name(i)
                                 : fmt::format("{}: {}", images.origin, images.name(i));
    std::uint8_t* out_pixels = pixels + (i - first) * image_bytes;
    if (images.landmarks) {
      if (height_ != width_) {
        throw DataError(
            fmt::format("{}: aligned faces are square, not {}x{}", name, width_, height_));
      }
      // Photos with landmarks are evaluation data (IJB's loose crops): aligned as
      // insightface's evaluation aligns them.
      const auto face = aligned_face_pixels(codec_, images.bytes(i), images.landmarks(i), height_,
                                            name, LandmarkRule::kAsInsightface);
      std::memcpy(out_pixels, face.data(), static_cast<std::size_t>(image_bytes));
    } else {
      decode_into(images.bytes(i), out_pixels, name);
    }
  }
  return out;
}

}  // namespace facetrain::data
