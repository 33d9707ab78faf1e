#include "app/eval/identification.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "framework/core/error.h"

namespace facetrain::eval {

IdentificationResult identify(const at::Tensor& gallery, const at::Tensor& gallery_labels,
                              const at::Tensor& probe, const at::Tensor& probe_labels,
                              std::int64_t probe_chunk) {
  if (gallery.dim() != 2 || probe.dim() != 2 || gallery.size(1) != probe.size(1)) {
    throw Error(fmt::format("identify: gallery [{}] and probes [{}] must be [G, D] and [P, D]",
                            fmt::join(gallery.sizes(), ", "), fmt::join(probe.sizes(), ", ")));
  }
  if (gallery_labels.dim() != 1 || gallery_labels.size(0) != gallery.size(0) ||
      probe_labels.dim() != 1 || probe_labels.size(0) != probe.size(0)) {
    throw Error(
        fmt::format("identify: {} gallery rows with labels [{}], {} probes with labels [{}]",
                    gallery.size(0), fmt::join(gallery_labels.sizes(), ", "), probe.size(0),
                    fmt::join(probe_labels.sizes(), ", ")));
  }
  if (gallery.size(0) == 0) throw Error("identify: the gallery is empty");
  if (probe_chunk < 1) throw Error("identify: probe_chunk must be positive");

  const auto unit = [](const at::Tensor& x) {
    const at::Tensor d = x.to(at::kDouble);
    return d / d.norm(2, 1, true).clamp_min(1e-300);
  };
  const at::Tensor g = unit(gallery);
  const at::Tensor gl = gallery_labels.to(at::kLong);
  const at::Tensor p = unit(probe);
  const at::Tensor pl = probe_labels.to(at::kLong);
  const std::int64_t top = std::min<std::int64_t>(5, g.size(0));

  IdentificationResult r;
  r.num_gallery = g.size(0);
  double hits1 = 0, hits5 = 0, ap_sum = 0;
  for (std::int64_t lo = 0; lo < p.size(0); lo += probe_chunk) {
    const std::int64_t hi = std::min(p.size(0), lo + probe_chunk);
    const at::Tensor labels = pl.slice(0, lo, hi).unsqueeze(1);                  // [c, 1]
    const at::Tensor order = p.slice(0, lo, hi).matmul(g.t()).argsort(1, true);  // [c, G]
    const at::Tensor match = gl.index({order}).eq(labels).to(at::kDouble);       // ranked
    const at::Tensor relevant = match.sum(1);
    const at::Tensor scored = relevant.gt(0);
    // Average precision: the mean over relevant items of the precision at their rank.
    const at::Tensor ranks = at::arange(1, g.size(0) + 1, at::kDouble);
    const at::Tensor precision = match.cumsum(1) / ranks;
    const at::Tensor ap = (precision * match).sum(1) / relevant.clamp_min(1);
    r.num_probes += scored.sum().item<std::int64_t>();
    hits1 += (match.select(1, 0).gt(0) & scored).sum().item<double>();
    hits5 += (match.slice(1, 0, top).sum(1).gt(0) & scored).sum().item<double>();
    ap_sum += ap.masked_select(scored).sum().item<double>();
  }
  r.num_probes_without_match = p.size(0) - r.num_probes;
  if (r.num_probes > 0) {
    r.rank1 = hits1 / r.num_probes;
    r.rank5 = hits5 / r.num_probes;
    r.mean_average_precision = ap_sum / r.num_probes;
  }
  return r;
}

}  // namespace facetrain::eval
