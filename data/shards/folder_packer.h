#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/shards/manifest.h"

namespace facetrain::data {

// Options of the packers (pack_image_folder, pack_recordio).
struct PackOptions {
  std::int64_t image_size = 112;  // square faces of this size are expected
  std::int64_t shard_size = 100000;
  bool resize = false;    // resize (and re-encode) other sizes instead of failing
  int jpeg_quality = 95;  // for re-encoded images
  // A landmarks file (read_landmarks; paths relative to the input folder): every image is
  // aligned to the ArcFace template from its five landmarks before it is stored. Empty: the
  // images are stored as they are (already aligned).
  std::filesystem::path landmarks;
};

class JpegCodec;

// The JPEG to store for `bytes`: the same bytes for a JPEG of options.image_size square; other
// formats (PNG, BMP, TGA, GIF) encoded at options.jpeg_quality; images of another size resized
// and re-encoded when options.resize, else a DataError naming `source` and both sizes.
std::vector<std::uint8_t> conform_jpeg(JpegCodec& codec, std::vector<std::uint8_t> bytes,
                                       const PackOptions& options, const std::string& source);

// Packs an image folder with one sub-folder per identity (sorted by name: label i is the i-th
// sub-folder) of aligned JPEG faces into a dataset folder `out`, and writes out/classes.tsv
// ("label<TAB>folder name" per line). JPEG bytes are kept as they are; an image of another size
// is a DataError naming the file and both sizes unless `resize`; PNG, BMP, TGA and GIF images
// are encoded as JPEG. An input without identity sub-folders and an identity without images are
// DataErrors naming the folder. `progress(done, total)` is called as images are packed.
Manifest pack_image_folder(
    const std::filesystem::path& input, const std::filesystem::path& out,
    const PackOptions& options,
    const std::function<void(std::int64_t, std::int64_t)>& progress = nullptr);

}  // namespace facetrain::data
