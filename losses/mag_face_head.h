#pragma once

#include <torch/nn/pimpl.h>

#include "losses/margin_head.h"

namespace facetrain::losses {

// MagFace (Meng et al., CVPR 2021): the margin grows with the embedding norm a = clip(‖z‖, l_a,
// u_a), m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a); the target logit is s·cos(θ_y + m(a))
// and every other logit s·cos θ_j. The regulariser λ_g·mean(g(a)), g(a) = 1/a + a/u_a², pulls
// norms up so that the norm measures quality; gradients flow into the norms through both.
// Requires s > 0, 0 < l_a < u_a, 0 <= l_m <= u_m < π, λ_g >= 0, and HeadInput::norms.
struct MagFaceOptions {
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(double, l_a) = 10.0;
  TORCH_ARG(double, u_a) = 110.0;
  TORCH_ARG(double, l_m) = 0.45;
  TORCH_ARG(double, u_m) = 0.8;
  TORCH_ARG(double, lambda_g) = 35.0;
  TORCH_ARG(double, interclass_filtering_threshold) = 0.0;
};

class MagFaceHeadImpl : public MarginHeadImpl {
 public:
  explicit MagFaceHeadImpl(const MagFaceOptions& options);
  at::Tensor forward(const HeadInput& input) override;
  at::Tensor regularizer(const HeadInput& input) override;

  // m(a) for the given norms.
  at::Tensor margin(const at::Tensor& norms) const;

 private:
  MagFaceOptions options_;
};
TORCH_MODULE(MagFaceHead);

}  // namespace facetrain::losses
