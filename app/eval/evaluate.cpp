#include "app/eval/evaluate.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "data/image/face_images.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/ijb_protocol.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"
#include "models/embedding.h"
#include "models/preprocessing.h"

namespace facetrain::eval {
namespace {

// Flip-summed embeddings of `images`. The images are cut into batches of `batch_size`; with several
// ranks each rank takes a contiguous run of whole batches, so a batch holds the same images at any
// world size.
at::Tensor embed_images_of(models::BackboneImpl& backbone, const data::FaceImages& images,
                           std::int64_t batch_size, dist::Communicator* comm) {
  if (batch_size < 1) throw Error(fmt::format("batch size {} must be positive", batch_size));
  const int world = comm != nullptr ? comm->size() : 1;
  const int rank = comm != nullptr ? comm->rank() : 0;
  const std::int64_t count = images.count;
  const std::int64_t batches = (count + batch_size - 1) / batch_size;
  const std::int64_t first_batch = batches * rank / world;
  const std::int64_t end_batch = batches * (rank + 1) / world;
  const std::int64_t lo = std::min(count, first_batch * batch_size);
  const std::int64_t hi = std::min(count, end_batch * batch_size);

  data::FaceDecoder decoder(models::kPreprocessing.size, models::kPreprocessing.size);
  std::vector<at::Tensor> parts;
  for (std::int64_t first = lo; first < hi; first += batch_size) {
    const std::int64_t last = std::min(hi, first + batch_size);
    parts.push_back(models::embed_images(backbone, decoder.batch(images, first, last),
                                         /*flip=*/true, /*normalize=*/false)
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
  return embed_images_of(backbone, data::FaceImages::of(set), batch_size, comm);
}

at::Tensor embed_dataset(models::BackboneImpl& backbone, const data::ShardedDataset& dataset,
                         std::int64_t batch_size, dist::Communicator* comm) {
  return embed_images_of(backbone, data::FaceImages::of(dataset), batch_size, comm);
}

at::Tensor embed_ijb_images(models::BackboneImpl& backbone, const data::IjbProtocol& protocol,
                            std::int64_t batch_size, dist::Communicator* comm) {
  return embed_images_of(backbone,
                         data::FaceImages::photos(protocol.image_folder(), protocol.images,
                                                  protocol.meta("_name_5pts_score.txt").string()),
                         batch_size, comm);
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
