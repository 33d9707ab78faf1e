#include "data/recordio/recordio_packer.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "data/image/jpeg_codec.h"
#include "data/recordio/recordio_reader.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace facetrain::data {

Manifest pack_recordio(const std::filesystem::path& input, const std::filesystem::path& out,
                       const PackOptions& options,
                       const std::function<void(std::int64_t, std::int64_t)>& progress) {
  RecordIOReader reader(input);
  std::vector<std::uint64_t> images;
  const bool has_header = reader.has(0) && reader.read_image(0).flag > 0;
  if (has_header) {
    const ImageRecord header = reader.read_image(0);
    const double first_past = header.labels.at(0);
    const auto indexed = static_cast<double>(reader.keys().size());
    if (!std::isfinite(first_past) || first_past < 1 || first_past > indexed) {
      throw DataError(
          fmt::format("{}: the header record says images end before record {}, "
                      "expected a number in [1, {}] (the index's records)",
                      reader.rec_path().string(), first_past, indexed));
    }
    const auto end = static_cast<std::uint64_t>(std::llround(first_past));
    for (std::uint64_t key = 1; key < end; ++key) {
      if (!reader.has(key)) {
        throw DataError(
            fmt::format("{}: the header record says images are records 1 … {}, but "
                        "record {} is not in the index",
                        reader.rec_path().string(), end - 1, key));
      }
      images.push_back(key);
    }
  } else {
    images = reader.keys();
  }
  // Labels first (the header only), to map them to contiguous ids before writing.
  std::vector<std::int64_t> original(images.size());
  std::map<std::int64_t, std::int32_t> ids;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const ImageRecord r = reader.read_image(images[i]);
    const float label = r.labels.at(0);
    if (!std::isfinite(label) || label < 0 || label != std::floor(label) ||
        label >= 2147483648.0f) {
      throw DataError(fmt::format("{}: record {}: label {} is not an integer in [0, 2^31)",
                                  reader.rec_path().string(), images[i], label));
    }
    original[i] = static_cast<std::int64_t>(label);
    ids.emplace(original[i], 0);
  }
  std::string map_text;
  std::int32_t next = 0;
  for (auto& [label, id] : ids) {
    id = next++;
    map_text += fmt::format("{}\t{}\n", id, label);
  }

  ShardedDatasetWriter writer(out, options.image_size, options.image_size, options.shard_size);
  JpegCodec codec;
  const auto total = static_cast<std::int64_t>(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const std::string where = fmt::format("{}: record {}", reader.rec_path().string(), images[i]);
    ImageRecord r = reader.read_image(images[i]);
    writer.add(ids.at(original[i]), conform_jpeg(codec, std::move(r.payload), options, where));
    const auto done = static_cast<std::int64_t>(i + 1);
    if (progress && (done % 256 == 0 || done == total)) progress(done, total);
  }
  const Manifest manifest = writer.finish(next);
  write_file_atomic(out / "labels.tsv", map_text);
  return manifest;
}

}  // namespace facetrain::data
