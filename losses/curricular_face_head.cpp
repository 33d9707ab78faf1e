#include "losses/curricular_face_head.h"

#include <ATen/ATen.h>
#include <torch/nn.h>

#include <cmath>

namespace facetrain::losses {

CurricularFaceHeadImpl::CurricularFaceHeadImpl(double scale, double margin, double alpha,
                                               double interclass_filtering_threshold)
    : MarginHeadImpl(scale, interclass_filtering_threshold), margin_(margin), alpha_(alpha) {
  require(margin >= 0 && margin < M_PI, "CurricularFace", "m", margin, "in [0, pi)");
  require(alpha > 0 && alpha <= 1, "CurricularFace", "alpha", alpha, "in (0, 1]");
  t_ = register_buffer("t", torch::zeros({1}, torch::kFloat));
}

at::Tensor CurricularFaceHeadImpl::forward(const HeadInput& input) {
  const at::Tensor cosine = filtered(input);
  const at::Tensor valid = input.labels >= 0;
  const at::Tensor target = gather_target(cosine, input.labels);
  const at::Tensor target_m =
      angular_margin_cos(target, 1.0, at::full({}, margin_, target.options()));
  // Each row's target and margined target, from the rank that holds its class (one exchange), so
  // every rank judges its own negatives against them and t is the global batch's mean.
  at::Tensor owned;
  {
    torch::NoGradGuard no_grad;
    owned = from_class_owners(input, at::stack({target_m, target, at::ones_like(target)}));
  }
  const at::Tensor has_target = owned[2] > 0;
  if (is_training()) {
    torch::NoGradGuard no_grad;
    const at::Tensor count = owned[2].sum();
    const at::Tensor mean = (owned[1].sum() / count.clamp_min(1.0)).to(t_.scalar_type());
    t_.copy_(at::where(count > 0, t_ * (1.0 - alpha_) + mean * alpha_, t_));
  }
  const at::Tensor t = t_.to(cosine.scalar_type());
  // A row whose class no rank holds has no target to compare against: nothing is hard there.
  const at::Tensor bar = at::where(has_target, owned[0], at::full({}, 2.0, target.options()));
  const at::Tensor hard = cosine > bar.unsqueeze(1);
  const at::Tensor modulated = at::where(hard, cosine * (t + cosine), cosine);
  return replace_target(modulated, input.labels, target_m) * scale_;
}

}  // namespace facetrain::losses
