#include "framework/eval/evaluate.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"
#include "models/embedding.h"
#include "models/preprocessing.h"

namespace facetrain::eval {
namespace {

constexpr int kImageSize = static_cast<int>(models::kPreprocessing.size);

// Flip-summed embeddings of images [0, count), read by `bytes_of` and named by `name_of` in
// errors. The images are cut into batches of `batch_size`; with several ranks each rank takes a
// contiguous run of whole batches, so a batch holds the same images at any world size.
at::Tensor embed_images_of(models::BackboneImpl& backbone, std::int64_t count,
                           std::int64_t batch_size, dist::Communicator* comm,
                           const std::function<std::vector<std::uint8_t>(std::int64_t)>& bytes_of,
                           const std::function<std::string(std::int64_t)>& name_of) {
  if (batch_size < 1) throw Error(fmt::format("batch size {} must be positive", batch_size));
  const int world = comm != nullptr ? comm->size() : 1;
  const int rank = comm != nullptr ? comm->rank() : 0;
  const std::int64_t batches = (count + batch_size - 1) / batch_size;
  const std::int64_t first_batch = batches * rank / world;
  const std::int64_t end_batch = batches * (rank + 1) / world;
  const std::int64_t lo = std::min(count, first_batch * batch_size);
  const std::int64_t hi = std::min(count, end_batch * batch_size);

  data::JpegCodec codec;
  std::vector<at::Tensor> parts;
  for (std::int64_t first = lo; first < hi; first += batch_size) {
    const std::int64_t last = std::min(hi, first + batch_size);
    at::Tensor batch = at::empty({last - first, kImageSize, kImageSize, 3}, at::kByte);
    for (std::int64_t i = first; i < last; ++i) {
      const auto bytes = bytes_of(i);
      const std::string source = name_of(i);
      if (data::is_jpeg(bytes)) {
        codec.decode_into(bytes.data(), bytes.size(), batch[i - first].data_ptr<std::uint8_t>(),
                          kImageSize, kImageSize, source);
      } else {
        const at::Tensor image = data::decode_non_jpeg(bytes, source);
        if (image.size(0) != kImageSize || image.size(1) != kImageSize) {
          throw DataError(fmt::format("{}: image is {}x{}, expected {}x{}", source, image.size(1),
                                      image.size(0), kImageSize, kImageSize));
        }
        batch[i - first].copy_(image);
      }
    }
    parts.push_back(models::embed_images(backbone, batch, /*flip=*/true, /*normalize=*/false)
                        .to(at::kFloat)
                        .cpu());
  }
  at::Tensor mine =
      parts.empty() ? at::empty({0, backbone.embedding_size()}, at::kFloat) : at::cat(parts);
  if (comm == nullptr || world == 1) return mine;
  return comm->all_gather(mine);
}

}  // namespace

at::Tensor embed_verification_set(models::BackboneImpl& backbone, const data::VerificationSet& set,
                                  std::int64_t batch_size, dist::Communicator* comm) {
  return embed_images_of(
      backbone, 2 * set.num_pairs(), batch_size, comm, [&](std::int64_t i) { return set.image(i); },
      [&](std::int64_t i) {
        return fmt::format("{}: pair {} image {}", set.path(), i / 2, i % 2);
      });
}

at::Tensor embed_dataset(models::BackboneImpl& backbone, const data::ShardedDataset& dataset,
                         std::int64_t batch_size, dist::Communicator* comm) {
  return embed_images_of(
      backbone, dataset.size(), batch_size, comm, [&](std::int64_t i) { return dataset.read(i); },
      [&](std::int64_t i) { return dataset.describe(i); });
}

VerificationResult evaluate_verification_set(models::BackboneImpl& backbone,
                                             const std::filesystem::path& set,
                                             std::int64_t batch_size, dist::Communicator* comm,
                                             const VerificationOptions& options) {
  const data::VerificationSet pairs(set);
  const at::Tensor embeddings = embed_verification_set(backbone, pairs, batch_size, comm);
  const auto& flags = pairs.issame();
  const at::Tensor issame = at::from_blob(const_cast<std::uint8_t*>(flags.data()),
                                          {static_cast<std::int64_t>(flags.size())}, at::kByte)
                                .clone();
  return verify_pairs(embeddings, issame, options);
}

}  // namespace facetrain::eval
