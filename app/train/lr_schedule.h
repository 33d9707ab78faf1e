#pragma once

#include <cstdint>
#include <string>

namespace facetrain::train {

// The learning rate at step t of T (0-based, counted in loader steps as arcface_torch's
// scheduler is), after W warmup steps:
//   warmup (t < W):  base · t / W
//   poly:            base · (1 − (min(t, T) − W)/(T − W))^power
//   cosine:          base · ½(1 + cos(π (min(t, T) − W)/(T − W)))
// poly with power 1 is arcface_torch's PolynomialLRWarmup (train_v2.py) in its closed form
// (_get_closed_form_lr): linear warmup, then linear decay to 0 at step T.
// Requires base > 0, 0 <= W <= T, T > 0, kind poly|cosine (ConfigError otherwise).
struct LrSchedule {
  std::string kind = "poly";
  double base = 0.1;
  double power = 1.0;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;

  void validate() const;
  double at(std::int64_t step) const;
};

}  // namespace facetrain::train
