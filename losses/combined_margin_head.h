#pragma once

#include <torch/nn/pimpl.h>

#include "losses/margin_head.h"

namespace facetrain::losses {

// The combined margin of insightface: the target logit is s·(cos(m1·θ + m2) − m3) and every
// other logit s·cos θ. One head covers the family:
//   ArcFace (1, m, 0), CosFace (1, 0, m), SphereFace (m, 0, 0), their mixes, and the plain
//   normalised softmax (1, 0, 0).
// Requires s > 0, m1 >= 1, 0 <= m2 < π, 0 <= m3 < 1. θ·m1 + m2 beyond π: see MarginHeadImpl.
class CombinedMarginHeadImpl : public MarginHeadImpl {
 public:
  CombinedMarginHeadImpl(double scale, double m1, double m2, double m3,
                         double interclass_filtering_threshold = 0.0);
  at::Tensor forward(const HeadInput& input) override;

  double m1() const { return m1_; }
  double m2() const { return m2_; }
  double m3() const { return m3_; }

 private:
  double m1_, m2_, m3_;
};
TORCH_MODULE(CombinedMarginHead);

}  // namespace facetrain::losses
