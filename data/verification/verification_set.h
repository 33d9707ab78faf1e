#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "data/hdf5/h5_file.h"

namespace facetrain::data {

// A 1:1 verification set (docs/verification-format.md): N pairs of face images and whether each
// pair shows the same person, in one HDF5 file — /jpeg (uint8, the 2N images' JPEG bytes back
// to back), /offsets (int64 [2N + 1]; pair i is images 2i and 2i + 1), /issame (uint8 [N]) and
// the attribute format = "facetrain-verification".
struct VerificationPairs {
  std::vector<std::vector<std::uint8_t>> images;  // 2N JPEGs
  std::vector<std::uint8_t> issame;               // N flags
};

// Writes `pairs` to `path` atomically (temporary file, then rename). DataError when the counts
// do not match (images must be twice the flags).
void write_verification_set(const std::filesystem::path& path, const VerificationPairs& pairs);

// A verification set opened for reading. Opening checks the format attribute and that offsets,
// images and flags agree (DataError naming the file otherwise).
class VerificationSet {
 public:
  explicit VerificationSet(const std::filesystem::path& path);
  std::int64_t num_pairs() const { return static_cast<std::int64_t>(issame_.size()); }
  const std::vector<std::uint8_t>& issame() const { return issame_; }
  // The file, as given when opening it.
  const std::string& path() const { return file_->path(); }
  // JPEG bytes of image `i` (0 … 2N − 1).
  std::vector<std::uint8_t> image(std::int64_t i) const;

 private:
  std::unique_ptr<H5File> file_;
  std::vector<std::int64_t> offsets_;
  std::vector<std::uint8_t> issame_;
};

}  // namespace facetrain::data
