#include "losses/combined_margin_head.h"

#include <ATen/ATen.h>

#include <cmath>

namespace facetrain::losses {

CombinedMarginHeadImpl::CombinedMarginHeadImpl(double scale, double m1, double m2, double m3,
                                               double interclass_filtering_threshold)
    : MarginHeadImpl(scale, interclass_filtering_threshold), m1_(m1), m2_(m2), m3_(m3) {
  require(m1 >= 1 && std::isfinite(m1), "combined margin", "m1", m1, ">= 1");
  require(m2 >= 0 && m2 < M_PI, "combined margin", "m2", m2, "in [0, pi)");
  require(m3 >= 0 && m3 < 1, "combined margin", "m3", m3, "in [0, 1)");
}

at::Tensor CombinedMarginHeadImpl::forward(const HeadInput& input) {
  const at::Tensor cosine = filtered(input);
  at::Tensor target = gather_target(cosine, input.labels);
  if (m1_ != 1.0 || m2_ != 0.0) {
    target = angular_margin_cos(target, m1_, at::full({}, m2_, target.options()));
  }
  if (m3_ != 0.0) target = target - m3_;
  return replace_target(cosine, input.labels, target) * scale_;
}

}  // namespace facetrain::losses
