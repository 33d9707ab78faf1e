#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/core/input_file.h"
#include "data/hdf5/h5_file.h"
#include "data/shards/manifest.h"

namespace facetrain::data {

// Writes a dataset folder: images (already JPEG-encoded) and labels go into shard-NNNNN.h5 files
// of `shard_size` samples, each written under a temporary name and renamed when complete, and
// manifest.json last (docs/dataset-format.md). A crash leaves only whole shards and no
// manifest, which `data verify` reports.
class ShardedDatasetWriter {
 public:
  // `dir` must not hold a dataset yet (DataError otherwise); it is created when missing.
  ShardedDatasetWriter(const std::filesystem::path& dir, std::int64_t image_height,
                       std::int64_t image_width, std::int64_t shard_size);
  // A writer abandoned before finish() (an error while packing) removes the shards it wrote,
  // and the folder when it created it and it is left empty: no half dataset stays behind.
  ~ShardedDatasetWriter();
  ShardedDatasetWriter(const ShardedDatasetWriter&) = delete;
  ShardedDatasetWriter& operator=(const ShardedDatasetWriter&) = delete;
  void add(std::int32_t label, const std::uint8_t* jpeg, std::size_t length);
  void add(std::int32_t label, const std::vector<std::uint8_t>& jpeg) {
    add(label, jpeg.data(), jpeg.size());
  }
  // Writes the last shard and the manifest; labels must lie in [0, num_classes).
  Manifest finish(std::int64_t num_classes);
  std::int64_t samples_written() const {
    return written_ + static_cast<std::int64_t>(labels_.size());
  }

 private:
  void flush();

  std::filesystem::path dir_;
  std::int64_t shard_size_;
  Manifest manifest_;
  std::vector<std::uint8_t> bytes_;
  std::vector<std::int64_t> offsets_{0};
  std::vector<std::int32_t> labels_;
  std::int64_t written_ = 0;
  bool created_dir_ = false;
  bool finished_ = false;
};

// A dataset folder opened for reading: the manifest, every shard's offsets and labels in memory
// (12 bytes per sample), and one contiguous read of each image's bytes on demand. Opening checks
// that every shard exists and holds what the manifest says (DataError naming the shard);
// `data verify` (verify_dataset) checks everything else. Reads may come from several threads
// (HDF5 serialises them).
class ShardedDataset {
 public:
  explicit ShardedDataset(const std::filesystem::path& dir);
  ~ShardedDataset();
  ShardedDataset(const ShardedDataset&) = delete;
  ShardedDataset& operator=(const ShardedDataset&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  std::int64_t size() const { return manifest_.num_samples; }
  std::int64_t num_classes() const { return manifest_.num_classes; }
  // int32 [size()]: every sample's label.
  const at::Tensor& labels() const { return labels_; }

  // The JPEG bytes of sample `index` (global, in shard order).
  void read(std::int64_t index, std::vector<std::uint8_t>& out) const;
  std::vector<std::uint8_t> read(std::int64_t index) const;
  // "shard-00003.h5: sample 17" for messages about a global index.
  std::string describe(std::int64_t index) const;

 private:
  std::pair<std::size_t, std::int64_t> locate(std::int64_t index) const;

  std::filesystem::path dir_;
  Manifest manifest_;
  std::vector<std::unique_ptr<H5File>> files_;
  // Per shard: the file opened plainly and /jpeg's file offset, so image reads bypass HDF5's
  // global lock and per-call cost (/jpeg is stored contiguously); null falls back to HDF5.
  std::vector<std::unique_ptr<InputFile>> plain_;
  std::vector<std::int64_t> jpeg_offsets_;
  std::vector<at::Tensor> offsets_;   // int64 [n + 1] per shard
  std::vector<std::int64_t> starts_;  // global index of each shard's first sample, + total
  at::Tensor labels_;
};

// Every problem of a dataset folder, each naming the shard and sample: manifest against files
// (missing shards, sizes, checksums, counts, label ranges), offsets, labels in range, and that
// every image decodes to the manifest's size. Empty when the dataset is sound. `progress` is
// called with (samples checked, total).
std::vector<std::string> verify_dataset(
    const std::filesystem::path& dir,
    const std::function<void(std::int64_t, std::int64_t)>& progress = nullptr);

}  // namespace facetrain::data
