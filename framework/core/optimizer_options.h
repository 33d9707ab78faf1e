#pragma once

#include <torch/arg.h>

namespace facetrain {

// The optimizer of a run, shared by the backbone's (torch::optim) and Partial FC's row-sparse
// update, so the two always agree (arcface_torch's cfg.optimizer, momentum, weight_decay).
//   sgd:   torch.optim.SGD with momentum and weight decay
//   adamw: torch.optim.AdamW with betas (beta1, beta2) and eps
enum class OptimizerKind { kSgd, kAdamW };

// The configuration's name of a kind (optim.optimizer): "sgd" or "adamw".
inline const char* optimizer_name(OptimizerKind kind) {
  return kind == OptimizerKind::kSgd ? "sgd" : "adamw";
}

struct OptimizerOptions {
  TORCH_ARG(OptimizerKind, kind) = OptimizerKind::kSgd;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 5e-4;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
};

}  // namespace facetrain
