#include "losses/mag_face_head.h"

#include <ATen/ATen.h>

#include <cmath>

#include "framework/core/error.h"

namespace facetrain::losses {
namespace {

const at::Tensor& need_norms(const HeadInput& input) {
  if (!input.norms.defined()) {
    throw ConfigError("MagFace needs the embedding norms (HeadInput::norms)");
  }
  return input.norms;
}

}  // namespace

MagFaceHeadImpl::MagFaceHeadImpl(const MagFaceOptions& o)
    : MarginHeadImpl(o.scale(), o.interclass_filtering_threshold()), options_(o) {
  require(o.l_a() > 0, "MagFace", "l_a", o.l_a(), "> 0");
  require(o.u_a() > o.l_a(), "MagFace", "u_a", o.u_a(), "> l_a");
  require(o.l_m() >= 0, "MagFace", "l_m", o.l_m(), ">= 0");
  require(o.u_m() >= o.l_m() && o.u_m() < M_PI, "MagFace", "u_m", o.u_m(), "in [l_m, pi)");
  require(o.lambda_g() >= 0, "MagFace", "lambda_g", o.lambda_g(), ">= 0");
}

at::Tensor MagFaceHeadImpl::margin(const at::Tensor& norms) const {
  const auto& o = options_;
  const at::Tensor a = norms.clamp(o.l_a(), o.u_a());
  return (a - o.l_a()) * ((o.u_m() - o.l_m()) / (o.u_a() - o.l_a())) + o.l_m();
}

at::Tensor MagFaceHeadImpl::forward(const HeadInput& input) {
  const at::Tensor cosine = filtered(input);
  const at::Tensor m = margin(need_norms(input).to(cosine.scalar_type()));
  const at::Tensor target = angular_margin_cos(gather_target(cosine, input.labels), 1.0, m);
  return replace_target(cosine, input.labels, target) * scale_;
}

at::Tensor MagFaceHeadImpl::regularizer(const HeadInput& input) {
  const auto& o = options_;
  const at::Tensor a = need_norms(input).clamp(o.l_a(), o.u_a());
  return (1.0 / a + a / (o.u_a() * o.u_a())).mean() * o.lambda_g();
}

}  // namespace facetrain::losses
