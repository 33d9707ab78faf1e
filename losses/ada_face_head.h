#pragma once

#include <torch/nn/pimpl.h>

#include "losses/margin_head.h"

namespace facetrain::losses {

// AdaFace (Kim et al., CVPR 2022): a margin that adapts to image quality, read from the
// embedding norm ‖z‖. With the norm standardised against running batch statistics,
//   ẑ = clip(h·(‖z‖ − μ)/(σ + ε), −1, 1),  g_angle = −m·ẑ,  g_add = m·ẑ + m,
// the target logit is s·(cos(clip(θ_y + g_angle, ε, π − ε)) − g_add) and every other logit
// s·cos θ_j. μ and σ are running means (factor α, starting at 20 and 100) of the batch's mean
// and standard deviation of the norms (clipped to [0.001, 100], no gradient), updated in
// training mode. Requires s > 0, 0 <= m < π/2, h > 0, 0 < α <= 1, and HeadInput::norms.
class AdaFaceHeadImpl : public MarginHeadImpl {
 public:
  AdaFaceHeadImpl(double scale, double margin = 0.4, double h = 0.333, double alpha = 0.01,
                  double interclass_filtering_threshold = 0.0);
  at::Tensor forward(const HeadInput& input) override;

  const at::Tensor& batch_mean() const { return batch_mean_; }
  const at::Tensor& batch_std() const { return batch_std_; }

 private:
  double margin_, h_, alpha_;
  at::Tensor batch_mean_, batch_std_;
};
TORCH_MODULE(AdaFaceHead);

}  // namespace facetrain::losses
