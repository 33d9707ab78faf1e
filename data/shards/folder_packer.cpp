#include "data/shards/class_names.h"
#include "data/shards/folder_packer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/functional/upsampling.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "data/image/align_folder.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/checked.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace {

// Area-averaging (antialiased) resize of uint8 HWC RGB to size×size.
at::Tensor resize_square(const at::Tensor& hwc, std::int64_t size) {
  namespace F = torch::nn::functional;
  const at::Tensor nchw = hwc.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  const at::Tensor out = F::interpolate(nchw, F::InterpolateFuncOptions()
                                                  .size(std::vector<std::int64_t>{size, size})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false)
                                                  .antialias(true));
  return out.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
}

}  // namespace

std::vector<std::uint8_t> conform_jpeg(JpegCodec& codec, std::vector<std::uint8_t> bytes,
                                       const PackOptions& options, const std::string& source) {
  // JPEGs are measured from their header; other formats must be decoded to be measured.
  const bool jpeg = is_jpeg(bytes);
  at::Tensor image;
  std::int64_t width = 0, height = 0;
  if (jpeg) {
    std::tie(width, height) = codec.size(bytes.data(), bytes.size(), source);
  } else {
    image = decode_non_jpeg(bytes, source);
    width = image.size(1);
    height = image.size(0);
  }
  const bool right_size = width == options.image_size && height == options.image_size;
  if (!right_size && !options.resize) {
    throw DataError(
        fmt::format("{}: image is {}x{}, expected {}x{} aligned faces (pass --resize "
                    "to resize)",
                    source, width, height, options.image_size, options.image_size));
  }
  if (jpeg && right_size) return bytes;  // stored byte for byte
  if (!image.defined()) image = codec.decode(bytes, source);
  if (!right_size) image = resize_square(image, options.image_size);
  return codec.encode(image, options.jpeg_quality);
}

Manifest pack_image_folder(const std::filesystem::path& input, const std::filesystem::path& out,
                           const PackOptions& options,
                           const std::function<void(std::int64_t, std::int64_t)>& progress) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(input)) {
    throw DataError(fmt::format("{}: not a folder of identity sub-folders", input.string()));
  }
  std::vector<fs::path> identities;
  for (const auto& entry : fs::directory_iterator(input)) {
    if (entry.is_directory()) identities.push_back(entry.path());
  }
  std::sort(identities.begin(), identities.end());
  if (identities.empty()) {
    throw DataError(
        fmt::format("{}: no identity sub-folders (expected one folder of face "
                    "images per identity)",
                    input.string()));
  }
  std::vector<std::vector<fs::path>> files;
  std::int64_t total = 0;
  for (const auto& dir : identities) {
    try {
      files.push_back(list_image_files(dir));
    } catch (const DataError& e) {
      throw DataError(fmt::format("identity folder {}", e.what()));
    }
    total += static_cast<std::int64_t>(files.back().size());
  }

  std::map<std::string, FivePoints> landmarks;
  if (!options.landmarks.empty()) {
    for (const auto& e : read_landmarks(options.landmarks.string())) {
      landmarks[fs::path(e.path).lexically_normal().generic_string()] = e.points;
    }
  }
  // What an image becomes in the dataset: aligned from its landmarks, or as it is.
  const auto stored = [&](JpegCodec& codec, const fs::path& file) {
    if (options.landmarks.empty()) {
      return conform_jpeg(codec, read_file_bytes(file), options, file.string());
    }
    const std::string rel = fs::relative(file, input).lexically_normal().generic_string();
    const auto it = landmarks.find(rel);
    if (it == landmarks.end()) {
      throw DataError(
          fmt::format("{}: no landmarks for it in {} (expected a line '{} x1 y1 ... "
                      "x5 y5')",
                      file.string(), options.landmarks.string(), rel));
    }
    return aligned_jpeg(codec, read_file_bytes(file), it->second, options.image_size,
                        options.jpeg_quality, file.string());
  };

  ShardedDatasetWriter writer(out, options.image_size, options.image_size, options.shard_size);
  JpegCodec codec;
  std::vector<std::string> classes;
  std::int64_t done = 0;
  for (std::size_t label = 0; label < identities.size(); ++label) {
    classes.push_back(identities[label].filename().string());
    for (const auto& file : files[label]) {
      writer.add(checked::narrow<std::int32_t, DataError>(label, "identity folders"),
                 stored(codec, file));
      if (progress && (++done % 256 == 0 || done == total)) progress(done, total);
    }
  }
  const Manifest manifest = writer.finish(static_cast<std::int64_t>(identities.size()));
  write_file_atomic(out / "classes.tsv", class_names_tsv(classes));
  return manifest;
}

}  // namespace facetrain::data
