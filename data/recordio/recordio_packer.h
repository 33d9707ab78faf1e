#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "data/shards/folder_packer.h"
#include "data/shards/manifest.h"

namespace facetrain::data {

// Packs an insightface RecordIO dataset (train.rec + train.idx, e.g. MS1MV3, Glint360K) into a
// dataset folder. When record 0 is insightface's header (flag > 0, labels [a, b]), the images
// are records 1 … a−1; otherwise (a headerless file) every indexed record is an image. Each
// image's label is its header's (first) label; labels are remapped to contiguous ids 0 … C−1 in
// ascending order of the original labels, and out/labels.tsv records "id<TAB>original label".
// Image bytes are stored as they are (see conform_jpeg for other sizes).
Manifest pack_recordio(const std::filesystem::path& input, const std::filesystem::path& out,
                       const PackOptions& options,
                       const std::function<void(std::int64_t, std::int64_t)>& progress = nullptr);

}  // namespace facetrain::data
