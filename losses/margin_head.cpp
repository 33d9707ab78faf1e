#include "losses/margin_head.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "framework/core/error.h"

namespace facetrain::losses {

void require(bool ok, const char* head, const char* name, double value, const char* rule) {
  if (!ok) throw ConfigError(fmt::format("{}: {} = {}: must be {}", head, name, value, rule));
}

MarginHeadImpl::MarginHeadImpl(double scale, double interclass_filtering_threshold)
    : scale_(scale), filter_threshold_(interclass_filtering_threshold) {
  require(scale > 0 && std::isfinite(scale), "margin head", "scale", scale, "> 0");
  require(interclass_filtering_threshold >= 0 && interclass_filtering_threshold < 1, "margin head",
          "interclass_filtering_threshold", interclass_filtering_threshold, "in [0, 1)");
}

at::Tensor MarginHeadImpl::filtered(const HeadInput& input) const {
  if (filter_threshold_ <= 0) return input.cosine;
  at::Tensor dirty = input.cosine.detach() > filter_threshold_;
  const at::Tensor valid = input.labels >= 0;
  // A sample's own class is never filtered.
  const at::Tensor own =
      at::zeros_like(dirty).scatter_(1, input.labels.clamp_min(0).unsqueeze(1), valid.unsqueeze(1));
  dirty = dirty.logical_and(own.logical_not());
  return input.cosine.masked_fill(dirty, 0.0);
}

at::Tensor MarginHeadImpl::gather_target(const at::Tensor& cosine, const at::Tensor& labels) {
  return cosine.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1);
}

at::Tensor MarginHeadImpl::replace_target(const at::Tensor& cosine, const at::Tensor& labels,
                                          const at::Tensor& target) {
  const at::Tensor valid = labels >= 0;
  const at::Tensor index = labels.clamp_min(0).unsqueeze(1);
  const at::Tensor kept = at::where(valid, target, gather_target(cosine, labels));
  return cosine.scatter(1, index, kept.unsqueeze(1));
}

at::Tensor MarginHeadImpl::from_class_owners(const HeadInput& input, const at::Tensor& values) {
  // A row's class lives on exactly one rank, so the sum over ranks is the owner's value.
  at::Tensor owned =
      at::where(input.labels >= 0, values.detach(), at::zeros({}, values.options())).contiguous();
  if (input.sum_over_ranks) input.sum_over_ranks(owned);
  return owned;
}

at::Tensor safe_acos(const at::Tensor& cosine) {
  const double eps = cosine.scalar_type() == at::kDouble ? 1e-12 : 1e-7;
  return at::acos(cosine.clamp(-1.0 + eps, 1.0 - eps));
}

at::Tensor angular_margin_cos(const at::Tensor& cosine, double m1, const at::Tensor& m2) {
  const at::Tensor theta = safe_acos(cosine);
  const at::Tensor angle = theta * m1 + m2;
  const at::Tensor theta_star = (M_PI - m2) / m1;
  const at::Tensor beyond = cosine - at::cos(theta_star) - 1.0;
  return at::where(angle <= M_PI, at::cos(angle), beyond);
}

}  // namespace facetrain::losses
