#pragma once

#include <cstdint>
#include <string>

namespace facetrain::train {

// The learning rate at step t of T (0-based, counted in loader steps as arcface_torch's
// scheduler is), after W warmup steps:
//   warmup (t < W):  base · t / W
//   poly:            base · (1 − (t − W)/(T − W))^power      (arcface_torch's PolyScheduler)
//   cosine:          base · ½(1 + cos(π (t − W)/(T − W)))
// Requires base > 0, 0 <= W <= T, T > 0, kind poly|cosine (ConfigError otherwise).
struct LrSchedule {
  std::string kind = "poly";
  double base = 0.1;
  double power = 2.0;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;

  void validate() const;
  double at(std::int64_t step) const;
};

}  // namespace facetrain::train
