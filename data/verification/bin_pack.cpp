#include "data/verification/bin_pack.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/verification/pickle_pack.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::data {

VerificationPairs parse_bin_pack(const std::vector<std::uint8_t>& bytes,
                                 const std::string& source) {
  PickledPack pack = parse_pickle_pack(bytes, source);
  VerificationPairs pairs;
  pairs.issame = std::move(pack.issame);
  JpegCodec codec;
  for (std::size_t i = 0; i < pack.images.size(); ++i) {
    auto& image = pack.images[i];
    if (!is_jpeg(image)) {
      image = codec.encode(decode_non_jpeg(image, fmt::format("{}: bins[{}]", source, i)), 95);
    }
    pairs.images.push_back(std::move(image));
  }
  return pairs;
}

VerificationPairs read_bin_pack(const std::filesystem::path& path) {
  // insightface's packs hold some thousands of pairs of small JPEGs (lfw.bin: 64 MB).
  constexpr std::int64_t kMaxPackBytes = std::int64_t{4} << 30;
  const std::string bytes = InputFile::open_or_throw<DataError>(path).read_all<DataError>(
      kMaxPackBytes, "a verification pack");
  return parse_bin_pack(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), path.string());
}

}  // namespace facetrain::data
