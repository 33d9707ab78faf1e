#include "app/train/train_step.h"

#include "app/train/fault_injection.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>

#include "framework/core/autocast.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"

namespace facetrain::train {
namespace {

using Clock = std::chrono::steady_clock;

// Adds the seconds since construction to `total` on exit.
class PhaseTimer {
 public:
  explicit PhaseTimer(double& total) : total_(total), start_(Clock::now()) {}
  ~PhaseTimer() { total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  double& total_;
  Clock::time_point start_;
};

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o,
                                                        const std::vector<at::Tensor>& params,
                                                        double lr) {
  if (o.kind() == OptimizerKind::kSgd) {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).momentum(o.momentum()).weight_decay(o.weight_decay()));
  }
  return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(lr)
                                                           .betas({o.beta1(), o.beta2()})
                                                           .eps(o.eps())
                                                           .weight_decay(o.weight_decay()));
}

TrainStep::TrainStep(models::BackboneImpl& backbone, losses::PartialFC& fc,
                     torch::optim::Optimizer& optimizer, dist::GradientReducer& reducer,
                     dist::Communicator& comm, std::vector<at::Tensor> params,
                     TrainStepOptions options, LossScaler scaler)
    : backbone_(backbone),
      fc_(fc),
      optimizer_(optimizer),
      reducer_(reducer),
      comm_(comm),
      params_(std::move(params)),
      options_(options),
      scaler_(scaler) {
  if (options_.amp && !options_.device.is_cuda()) {
    throw ConfigError(
        fmt::format("train.amp = \"{}\": mixed precision needs a CUDA device; this "
                    "run is on the CPU (use none)",
                    *options_.amp == at::kHalf ? "fp16" : "bf16"));
  }
  if (options_.accumulation < 1) {
    throw ConfigError(fmt::format("train.gradient_acc = {}: must be >= 1", options_.accumulation));
  }
}

StepOutcome TrainStep::run(const at::Tensor& images, const at::Tensor& labels, std::int64_t step,
                           double lr, bool poison) {
  StepOutcome out;
  const std::int64_t micro = step % options_.accumulation;
  out.boundary = micro == options_.accumulation - 1 || step + 1 == options_.total_steps;
  if (micro == 0) {
    reducer_.prepare(/*arm=*/out.boundary);
    snapshot_buffers();
  } else if (out.boundary) {
    reducer_.arm();
  }

  at::Tensor loss;
  {
    AutocastScope autocast(options_.device.type(), options_.amp);
    at::Tensor embeddings;
    {
      PhaseTimer timer(times_.forward);
      embeddings = backbone_.forward(images);
      if (poison) embeddings = embeddings * std::nan("");
    }
    PhaseTimer timer(times_.fc);
    loss = fc_.forward(embeddings.to(at::kFloat), labels, step);
  }
  FaultInjection::process().at(comm_.rank(), "midstep");
  {
    PhaseTimer timer(times_.backward);
    (loss * (scaler_.scale() / static_cast<double>(options_.accumulation))).backward();
  }
  out.loss = loss.item<double>();
  // Any micro-batch's non-finite loss poisons the accumulated gradients, not only the last's.
  if (micro == 0) accumulated_finite_ = true;
  accumulated_finite_ = accumulated_finite_ && std::isfinite(out.loss);
  if (!out.boundary) return out;

  {
    PhaseTimer timer(times_.comm);
    reducer_.finish();
  }
  PhaseTimer timer(times_.optimizer);
  // The loss is the same on every rank; the gradients' overflow is agreed over the ranks.
  const bool overflow = scaler_.enabled() && gradients_overflowed();
  const double scale = scaler_.scale();  // the one this step's gradients carry
  const bool grads_ok = scaler_.update(overflow);
  if (accumulated_finite_ && grads_ok) {
    nonfinite_in_row_ = 0;
    apply(lr, scale);
    out.applied = true;
    return out;
  }
  fc_.discard_gradients();
  restore_buffers();  // the skipped batches' BatchNorm statistics go too
  ++skipped_;
  if (!accumulated_finite_ && ++nonfinite_in_row_ >= options_.max_nonfinite) {
    throw Error(
        fmt::format("the loss was not finite for {} steps in a row (train.max_nonfinite), "
                    "the last at step {} on rank {}: lower optim.lr or check the data",
                    nonfinite_in_row_, step, comm_.rank()));
  }
  log::warn("step {}: the loss or a gradient is not finite (loss {}); the update is skipped", step,
            out.loss);
  return out;
}

// The buffers a skipped step must not change: the backbone's BatchNorm statistics and the margin
// head's running statistics.
std::vector<at::Tensor> TrainStep::running_buffers() const {
  std::vector<at::Tensor> buffers = backbone_.buffers();
  for (const auto& b : fc_.head().buffers()) buffers.push_back(b);
  return buffers;
}

void TrainStep::snapshot_buffers() {
  const auto buffers = running_buffers();
  buffer_snapshot_.resize(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (!buffer_snapshot_[i].defined() || !buffer_snapshot_[i].is_same_size(buffers[i])) {
      buffer_snapshot_[i] = at::empty_like(buffers[i]);
    }
    buffer_snapshot_[i].copy_(buffers[i]);
  }
}

void TrainStep::restore_buffers() {
  at::NoGradGuard no_grad;
  auto buffers = running_buffers();
  for (std::size_t i = 0; i < buffers.size() && i < buffer_snapshot_.size(); ++i) {
    buffers[i].copy_(buffer_snapshot_[i]);
  }
}

bool TrainStep::gradients_overflowed() {
  // One flag for all tensors, read back once: the step synchronises with the device only here.
  at::Tensor bad = at::logical_not(
      at::full({}, fc_.gradients_finite(), at::TensorOptions().device(options_.device)));
  for (const auto& p : params_) bad = bad.logical_or(p.grad().isfinite().all().logical_not());
  at::Tensor flag = bad.to(at::kFloat).reshape({1});
  comm_.all_reduce(flag, dist::ReduceOp::kMax);
  return flag.item<float>() > 0;
}

void TrainStep::apply(double lr, double scale) {
  at::NoGradGuard no_grad;
  if (scale != 1.0) {
    for (auto& p : params_) p.mutable_grad().div_(scale);
  }
  if (options_.clip_grad_norm > 0) {
    torch::nn::utils::clip_grad_norm_(params_, options_.clip_grad_norm);
  }
  for (auto& group : optimizer_.param_groups()) group.options().set_lr(lr);
  optimizer_.step();
  fc_.step(lr, 1.0 / scale);
}

}  // namespace facetrain::train
