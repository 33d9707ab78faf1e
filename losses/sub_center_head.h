#pragma once

#include <torch/nn/pimpl.h>

#include "losses/margin_head.h"

namespace facetrain::losses {

// Sub-center ArcFace (Deng et al., ECCV 2020): each class holds K centres, and a sample's
// cosine to a class is its largest cosine over that class's centres; then ArcFace:
// s·cos(θ_y + m) for the target, s·cos θ_j otherwise. Input columns are laid out class-major
// (column c·K + k is centre k of class c), so N = C·K and the logits are [B, C]; labels are
// class indices. Requires s > 0, 0 <= m < π, K >= 1.
class SubCenterArcFaceHeadImpl : public MarginHeadImpl {
 public:
  SubCenterArcFaceHeadImpl(double scale, double margin, std::int64_t k,
                           double interclass_filtering_threshold = 0.0);
  at::Tensor forward(const HeadInput& input) override;
  std::int64_t centres_per_class() const override { return k_; }

 private:
  double margin_;
  std::int64_t k_;
};
TORCH_MODULE(SubCenterArcFaceHead);

}  // namespace facetrain::losses
