#include "app/train/lr_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "framework/core/error.h"

namespace facetrain::train {

void LrSchedule::validate() const {
  if (kind != "poly" && kind != "cosine") {
    throw ConfigError(fmt::format("optim.lr_schedule = \"{}\": expected poly or cosine", kind));
  }
  if (!(base > 0)) throw ConfigError(fmt::format("optim.lr = {}: must be > 0", base));
  if (total_steps <= 0 || warmup_steps < 0 || warmup_steps > total_steps) {
    throw ConfigError(
        fmt::format("optim.warmup_epoch: {} warmup steps of {} in all; the warmup "
                    "must not be longer than the run",
                    warmup_steps, total_steps));
  }
}

double LrSchedule::at(std::int64_t step) const {
  if (step < warmup_steps) {
    return base * static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  if (kind == "cosine") return base * 0.5 * (1.0 + std::cos(M_PI * progress));
  return base * std::pow(1.0 - progress, power);
}

}  // namespace facetrain::train
