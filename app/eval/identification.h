#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace facetrain::eval {

// 1:N identification of probes against a gallery by cosine similarity.
struct IdentificationResult {
  // Fraction of probes whose most similar gallery item (rank-1), or one of whose five most
  // similar items (rank-5), has the probe's label.
  double rank1 = 0;
  double rank5 = 0;
  // Mean over probes of the average precision of the gallery ranked by similarity (relevant
  // items: those with the probe's label).
  double mean_average_precision = 0;
  std::int64_t num_gallery = 0;
  // Probes scored, and probes skipped because no gallery item has their label.
  std::int64_t num_probes = 0;
  std::int64_t num_probes_without_match = 0;
};

// Identification metrics: gallery [G, D] with labels [G], probes [P, D] with labels [P] (any
// floating dtype for embeddings, not normalised; integral labels). Probes are processed in
// chunks of `probe_chunk` rows, so memory stays O(probe_chunk · G). Probes whose label has no
// gallery item are left out of every metric and counted. Throws facetrain::Error when shapes
// disagree or the gallery is empty.
IdentificationResult identify(const at::Tensor& gallery, const at::Tensor& gallery_labels,
                              const at::Tensor& probe, const at::Tensor& probe_labels,
                              std::int64_t probe_chunk = 1024);

}  // namespace facetrain::eval
