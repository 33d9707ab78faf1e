#include "losses/sub_center_head.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "framework/core/error.h"

namespace facetrain::losses {

SubCenterArcFaceHeadImpl::SubCenterArcFaceHeadImpl(double scale, double margin, std::int64_t k,
                                                   double interclass_filtering_threshold)
    : MarginHeadImpl(scale, interclass_filtering_threshold), margin_(margin), k_(k) {
  require(margin >= 0 && margin < M_PI, "sub-center ArcFace", "m", margin, "in [0, pi)");
  require(k >= 1, "sub-center ArcFace", "K", static_cast<double>(k), ">= 1");
}

at::Tensor SubCenterArcFaceHeadImpl::forward(const HeadInput& input) {
  const auto n = input.cosine.size(1);
  if (n % k_ != 0) {
    throw ConfigError(
        fmt::format("sub-center ArcFace: {} columns are not a multiple of K = {}", n, k_));
  }
  const at::Tensor per_class =
      std::get<0>(input.cosine.view({input.cosine.size(0), n / k_, k_}).max(2));
  HeadInput reduced{per_class, input.labels, input.norms};
  const at::Tensor cosine = filtered(reduced);
  const at::Tensor target = angular_margin_cos(gather_target(cosine, input.labels), 1.0,
                                               at::full({}, margin_, cosine.options()));
  return replace_target(cosine, input.labels, target) * scale_;
}

}  // namespace facetrain::losses
