#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "app/train/loss_scaler.h"
#include "framework/core/optimizer_options.h"
#include "framework/distributed/communicator.h"
#include "framework/distributed/gradient_reducer.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"

namespace facetrain::train {

// The backbone's optimizer (torch::optim::SGD or AdamW) over `params` at learning rate `lr`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& options,
                                                        const std::vector<at::Tensor>& params,
                                                        double lr);

struct TrainStepOptions {
  c10::Device device = c10::kCPU;
  std::optional<c10::ScalarType> amp;  // autocast dtype; requires a CUDA device
  std::int64_t accumulation = 1;       // loader steps per optimizer step (>= 1)
  double clip_grad_norm = 0;           // > 0: clip the backbone's gradient norm to it
  std::int64_t total_steps = 0;        // the run's last loader step closes an optimizer step
  std::int64_t max_nonfinite = 1;      // non-finite losses in a row that end the run
};

// Seconds spent in each phase of the steps run so far, on this rank.
struct StepTimes {
  double forward = 0, fc = 0, backward = 0, comm = 0, optimizer = 0;
};

struct StepOutcome {
  double loss = 0;        // this step's loss (the same on every rank)
  bool boundary = false;  // it closed an optimizer step
  bool applied = false;   // ... and the update was applied (false: skipped, or no boundary)
};

// One loader step of data-parallel training with Partial FC, as arcface_torch's loop body:
//   forward    backbone(images) under autocast, the margin-softmax loss through Partial FC
//   backward   of loss · scale / accumulation, the gradient all-reduce overlapping it
//   boundary   (every `accumulation` steps, and the run's last): wait for the all-reduce; skip the
//              update when the loss or, with a loss scale, any rank's gradients are not finite
//              (the scale backs off); else unscale, clip, step the backbone's optimizer and
//              Partial FC's at learning rate `lr`.
// A run of `max_nonfinite` non-finite losses in a row throws Error naming the step and rank.
class TrainStep {
 public:
  TrainStep(models::BackboneImpl& backbone, losses::PartialFC& fc,
            torch::optim::Optimizer& optimizer, dist::GradientReducer& reducer,
            dist::Communicator& comm, std::vector<at::Tensor> params, TrainStepOptions options,
            LossScaler scaler);

  // Loader step `step` (0-based): images are the backbone's float input on the device, labels
  // int64 on the host. `poison` multiplies the embeddings by NaN (the failure tests' seam).
  StepOutcome run(const at::Tensor& images, const at::Tensor& labels, std::int64_t step, double lr,
                  bool poison = false);

  LossScaler& scaler() { return scaler_; }
  const LossScaler& scaler() const { return scaler_; }
  const StepTimes& times() const { return times_; }
  // Updates skipped for a non-finite loss or gradient, in all (a checkpoint's count included).
  std::int64_t skipped() const { return skipped_; }
  void restore_skipped(std::int64_t skipped) { skipped_ = skipped; }

 private:
  bool gradients_overflowed();
  std::vector<at::Tensor> running_buffers() const;
  void snapshot_buffers();
  void restore_buffers();
  // Unscales (gradients carry `scale`), clips and steps both optimizers.
  void apply(double lr, double scale);

  models::BackboneImpl& backbone_;
  losses::PartialFC& fc_;
  torch::optim::Optimizer& optimizer_;
  dist::GradientReducer& reducer_;
  dist::Communicator& comm_;
  std::vector<at::Tensor> params_;
  TrainStepOptions options_;
  LossScaler scaler_;
  StepTimes times_;
  std::int64_t skipped_ = 0;
  std::int64_t nonfinite_in_row_ = 0;
  bool accumulated_finite_ = true;  // every loss since the last optimizer step was finite
  // The backbone's buffers (BatchNorm running statistics) as they were before the optimizer
  // step's first micro-batch, restored when the step is skipped.
  std::vector<at::Tensor> buffer_snapshot_;
};

}  // namespace facetrain::train
