#pragma once

#include <torch/nn/pimpl.h>

#include "losses/margin_head.h"

namespace facetrain::losses {

// CurricularFace (Huang et al., CVPR 2020). The target logit is s·cos(θ_y + m) as in ArcFace;
// a negative j that is harder than the margined target (cos θ_j > cos(θ_y + m)) gets
// s·cos θ_j·(t + cos θ_j), other negatives s·cos θ_j. t is a running mean of the target
// cosine, t ← α·mean(cos θ_y) + (1 − α)·t, updated in training mode (no gradient), starting at 0:
// easy samples dominate early, hard negatives weigh more as t grows. Under Partial FC the rank
// holding a row's class shares its target (HeadInput::sum_over_ranks): every rank finds the hard
// negatives among its own columns, and t, the global batch's mean, is the same on every rank —
// all as in a single process.
// Requires s > 0, 0 <= m < π, 0 < α <= 1.
class CurricularFaceHeadImpl : public MarginHeadImpl {
 public:
  CurricularFaceHeadImpl(double scale, double margin, double alpha = 0.01,
                         double interclass_filtering_threshold = 0.0);
  at::Tensor forward(const HeadInput& input) override;

  const at::Tensor& t() const { return t_; }

 private:
  double margin_;
  double alpha_;
  at::Tensor t_;
};
TORCH_MODULE(CurricularFaceHead);

}  // namespace facetrain::losses
