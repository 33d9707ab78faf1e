#include "losses/ada_face_head.h"

#include <ATen/ATen.h>
#include <torch/nn.h>

#include <cmath>

#include "framework/core/error.h"

namespace facetrain::losses {

AdaFaceHeadImpl::AdaFaceHeadImpl(double scale, double margin, double h, double alpha,
                                 double interclass_filtering_threshold)
    : MarginHeadImpl(scale, interclass_filtering_threshold), margin_(margin), h_(h), alpha_(alpha) {
  require(margin >= 0 && margin < M_PI / 2, "AdaFace", "m", margin, "in [0, pi/2)");
  require(h > 0, "AdaFace", "h", h, "> 0");
  require(alpha > 0 && alpha <= 1, "AdaFace", "alpha", alpha, "in (0, 1]");
  batch_mean_ = register_buffer("batch_mean", torch::full({1}, 20.0));
  batch_std_ = register_buffer("batch_std", torch::full({1}, 100.0));
}

at::Tensor AdaFaceHeadImpl::forward(const HeadInput& input) {
  if (!input.norms.defined()) {
    throw ConfigError("AdaFace needs the embedding norms (HeadInput::norms)");
  }
  constexpr double kEps = 1e-3;
  const at::Tensor cosine = filtered(input);
  const at::Tensor norms = input.norms.detach().clamp(0.001, 100.0).to(cosine.scalar_type());
  if (is_training()) {
    torch::NoGradGuard no_grad;
    const auto n = norms.numel();
    batch_mean_.mul_(1.0 - alpha_).add_(norms.mean().to(batch_mean_.scalar_type()) * alpha_);
    if (n > 1) {
      batch_std_.mul_(1.0 - alpha_).add_(norms.std().to(batch_std_.scalar_type()) * alpha_);
    }
  }
  const at::Tensor mu = batch_mean_.to(cosine.scalar_type());
  const at::Tensor sigma = batch_std_.to(cosine.scalar_type());
  const at::Tensor z = ((norms - mu) / (sigma + kEps) * h_).clamp(-1.0, 1.0);
  const at::Tensor g_angle = -margin_ * z;
  const at::Tensor g_add = margin_ * z + margin_;
  const at::Tensor theta = safe_acos(gather_target(cosine, input.labels));
  const at::Tensor target = at::cos((theta + g_angle).clamp(kEps, M_PI - kEps)) - g_add;
  return replace_target(cosine, input.labels, target) * scale_;
}

}  // namespace facetrain::losses
