#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace facetrain::train {

// fp16's dynamic loss scale, as torch.cuda.amp.GradScaler keeps it (and flashlight's
// DynamicScaler): the loss is multiplied by `scale` before backward so that small gradients
// survive in half precision; after backward, a step whose gradients overflowed (inf/NaN on any
// rank) is skipped and the scale halved (never below `min_scale`), and after `growth_interval`
// consecutive good steps the scale doubles.
//   disabled (bf16, fp32): scale() is 1, every update() is a good step and changes nothing.
// Requires initial_scale >= min_scale > 0 and growth_interval > 0 (ConfigError otherwise).
struct LossScalerOptions {
  TORCH_ARG(double, initial_scale) = 65536.0;
  TORCH_ARG(double, min_scale) = 1.0;
  TORCH_ARG(double, growth_factor) = 2.0;
  TORCH_ARG(double, backoff_factor) = 0.5;
  TORCH_ARG(std::int64_t, growth_interval) = 2000;
};

class LossScaler {
 public:
  // A disabled scaler.
  LossScaler() = default;
  explicit LossScaler(const LossScalerOptions& options);

  bool enabled() const { return enabled_; }
  // The factor the loss is multiplied by (1 when disabled).
  double scale() const { return enabled_ ? scale_ : 1.0; }
  // Steps since the scale last changed.
  std::int64_t good_steps() const { return good_steps_; }

  // Records one optimizer step's outcome: `overflow` says some gradient was not finite. Returns
  // whether the update may be applied (false: skip it).
  bool update(bool overflow);

  // Continues from a checkpoint's values (scale <= 0, as written by a run without a scale,
  // keeps the initial scale).
  void restore(double scale, std::int64_t good_steps);

 private:
  bool enabled_ = false;
  LossScalerOptions options_;
  double scale_ = 1.0;
  std::int64_t good_steps_ = 0;
};

}  // namespace facetrain::train
