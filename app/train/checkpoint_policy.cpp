#include "app/train/checkpoint_policy.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/core/error.h"

namespace facetrain::train {

void CheckpointPolicy::validate() const {
  const auto positive = [](std::int64_t value, const char* key) {
    if (value < 1) throw ConfigError(fmt::format("{} = {}: must be >= 1", key, value));
  };
  positive(every, "train.checkpoint_every");
  positive(keep, "train.checkpoint_keep");
  positive(verify_every, "train.verbose");
  positive(accumulation, "train.gradient_acc");
  if (total_steps < 0) throw ConfigError(fmt::format("{} steps in all: must be >= 0", total_steps));
}

bool CheckpointPolicy::save_after(std::int64_t done) const {
  return done % every == 0 && done % accumulation == 0 && done != total_steps;
}

bool CheckpointPolicy::verify_after(std::int64_t done) const {
  return done % verify_every == 0 && done != total_steps;
}

std::vector<std::int64_t> CheckpointPolicy::retired(std::vector<std::int64_t> steps,
                                                    std::int64_t written) const {
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < steps.size(); ++i) {
    if (steps[i] != written) out.push_back(steps[i]);
  }
  return out;
}

}  // namespace facetrain::train
