#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>

#include "app/eval/identification.h"
#include "app/eval/verification.h"
#include "framework/distributed/communicator.h"
#include "models/backbone.h"

namespace facetrain::data {
class VerificationSet;
class ShardedDataset;
struct IjbProtocol;
}  // namespace facetrain::data

namespace facetrain::eval {

// Embeddings [2N, D] (float32, CPU) of every image of `set`, each the sum of the image's and its
// horizontal mirror's embedding (as insightface evaluates), not normalised. Images are decoded
// (JPEG, or PNG/BMP/TGA/GIF) and must be 112×112; DataError naming the set and image otherwise.
// With `comm` (nullptr: this process alone), the images are split in contiguous runs of whole
// batches over the ranks, each rank embeds its run, and the rows are all-gathered, so every rank
// returns all 2N rows; every rank must call it with the same set and batch size.
at::Tensor embed_verification_set(models::BackboneImpl& backbone, const data::VerificationSet& set,
                                  std::int64_t batch_size, dist::Communicator* comm);

// The same for every image of a dataset folder ([num_samples, D], in sample order).
at::Tensor embed_dataset(models::BackboneImpl& backbone, const data::ShardedDataset& dataset,
                         std::int64_t batch_size, dist::Communicator* comm);

// The same for every image of an IJB protocol ([images, D], in the protocol's order): each photo
// aligned from its landmarks to the ArcFace template first, as insightface's eval_ijbc.py.
at::Tensor embed_ijb_images(models::BackboneImpl& backbone, const data::IjbProtocol& protocol,
                            std::int64_t batch_size, dist::Communicator* comm);

// verify_pairs of embed_verification_set of the verification set at `set`.
VerificationResult evaluate_verification_set(models::BackboneImpl& backbone,
                                             const std::filesystem::path& set,
                                             std::int64_t batch_size, dist::Communicator* comm,
                                             const VerificationOptions& options = {});

}  // namespace facetrain::eval
