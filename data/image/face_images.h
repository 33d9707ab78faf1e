#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/image/alignment.h"
#include "data/image/jpeg_codec.h"

namespace facetrain::data {

class ShardedDataset;
class VerificationSet;

// A numbered collection of encoded faces, as evaluation and embedding read them: a verification
// set's pair images (2·i and 2·i + 1 are pair i), a dataset's samples or the image files under a
// folder (all aligned), or photos with five landmarks each, which the decoder aligns.
struct FaceImages {
  std::int64_t count = 0;
  std::function<std::vector<std::uint8_t>(std::int64_t)> bytes;  // image i's encoded bytes
  // Image i's name in outputs: "pair 3 image 1", "shard-00000.h5: sample 7", "a/b.jpg".
  std::function<std::string(std::int64_t)> name;
  std::string origin;  // the file or folder they come from, for messages
  // Set for unaligned photos: image i's five landmarks (in its own pixel coordinates).
  std::function<FivePoints(std::int64_t)> landmarks;

  static FaceImages of(const VerificationSet& set);
  static FaceImages of(const ShardedDataset& dataset);
  // list_image_files(root), named by their path relative to root (or root's folder).
  static FaceImages files(const std::filesystem::path& root);
  // The photos a landmarks file lists (paths relative to `folder`), named by their line in it.
  // `entries` must outlive the result.
  static FaceImages photos(const std::filesystem::path& folder,
                           const std::vector<LandmarkEntry>& entries, const std::string& list);
};

// Decodes encoded faces that must be width × height into uint8 RGB: JPEG with libjpeg-turbo and,
// unless `jpeg_only` (a dataset's shards hold JPEG only), PNG, BMP, TGA and GIF with stb_image.
// Another size, another format or an undecodable image is a DataError naming the image. Photos
// with landmarks (FaceImages::landmarks) may have any size and are aligned to the ArcFace
// template (height × height; needs a square size). One decoder per thread.
class FaceDecoder {
 public:
  FaceDecoder(std::int64_t height, std::int64_t width, bool jpeg_only = false);

  // Into `pixels` (height · width · 3 bytes).
  void decode_into(const std::vector<std::uint8_t>& bytes, std::uint8_t* pixels,
                   const std::string& name);
  // uint8 [last − first, height, width, 3] of images [first, last); errors name the image as
  // "ORIGIN: NAME".
  at::Tensor batch(const FaceImages& images, std::int64_t first, std::int64_t last);

 private:
  std::int64_t height_, width_;
  bool jpeg_only_;
  JpegCodec codec_;
};

}  // namespace facetrain::data
