#include "app/train/loss_scaler.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/core/error.h"

namespace facetrain::train {

LossScaler::LossScaler(const LossScalerOptions& options)
    : enabled_(true), options_(options), scale_(options.initial_scale()) {
  if (!(options.min_scale() > 0) || !(options.initial_scale() >= options.min_scale()) ||
      options.growth_interval() <= 0 || !(options.growth_factor() > 1) ||
      !(options.backoff_factor() > 0 && options.backoff_factor() < 1)) {
    throw ConfigError(fmt::format(
        "loss scaler: initial scale {}, minimum {}, growth x{} every {} steps, back-off x{}: "
        "expected initial >= minimum > 0, growth > 1 every > 0 steps, 0 < back-off < 1",
        options.initial_scale(), options.min_scale(), options.growth_factor(),
        options.growth_interval(), options.backoff_factor()));
  }
}

bool LossScaler::update(bool overflow) {
  if (!enabled_) return true;
  if (overflow) {
    scale_ = std::max(options_.min_scale(), scale_ * options_.backoff_factor());
    good_steps_ = 0;
    return false;
  }
  if (++good_steps_ >= options_.growth_interval()) {
    scale_ *= options_.growth_factor();
    good_steps_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, std::int64_t good_steps) {
  if (!enabled_) return;
  scale_ = scale > 0 ? std::max(options_.min_scale(), scale) : options_.initial_scale();
  good_steps_ = std::max<std::int64_t>(0, good_steps);
}

}  // namespace facetrain::train
