#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace facetrain::data {

// One shard as the manifest records it.
struct ShardInfo {
  std::string file;  // "shard-00000.h5", relative to the dataset folder
  std::int64_t num_samples = 0;
  std::int64_t label_min = 0;  // smallest and largest label in the shard
  std::int64_t label_max = -1;
  std::int64_t bytes = 0;   // file size
  std::uint32_t crc32 = 0;  // CRC-32 (zlib) of the whole file
};

// manifest.json of a facetrain dataset folder (docs/dataset-format.md): format name and
// version, classes, samples, image geometry and encoding, and the shard list.
struct Manifest {
  static constexpr const char* kFormat = "facetrain-shards";
  static constexpr int kVersion = 1;

  std::int64_t num_classes = 0;
  std::int64_t num_samples = 0;
  std::int64_t image_height = 112;
  std::int64_t image_width = 112;
  std::int64_t channels = 3;
  std::string encoding = "jpeg";
  std::vector<ShardInfo> shards;

  // Reads DIR/manifest.json; DataError naming the file and the bad key otherwise (missing
  // file, invalid JSON, another format or a newer version, wrong types, counts that do not add
  // up).
  static Manifest read(const std::filesystem::path& dir);
  // Writes DIR/manifest.json atomically.
  void write(const std::filesystem::path& dir) const;
};

}  // namespace facetrain::data
