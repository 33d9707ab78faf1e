#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "app/train/checkpoint_policy.h"
#include "app/train/loss_scaler.h"
#include "app/train/lr_schedule.h"
#include "data/loader/face_loader.h"
#include "framework/config/config.h"
#include "framework/core/optimizer_options.h"
#include "losses/margin_head_factory.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"

namespace facetrain::train {

// A verification set the run evaluates: eval.val_targets' NAME (eval.val_dir/NAME.h5) or path.
struct VerificationTarget {
  std::string name;
  std::filesystem::path path;
};

// Everything a training run is configured with, read once from a validated Config into typed
// parts: the only place the trainer reads configuration keys. What depends on the dataset or
// the world (the class count when data.num_classes = 0, steps per epoch, the rank) is supplied
// where the part is made.
struct TrainRecipe {
  // Where and how the run executes (train.*, dist.*).
  std::filesystem::path output;
  std::string device;
  std::string backend;
  double timeout_s = 0;
  double bucket_mb = 0;
  int cpu_threads = 0;
  std::int64_t seed = 0;
  std::int64_t frequent = 1;
  bool tensorboard = false;

  // Data (data.*, train.batch_size, train.num_epoch): rank and world are the run's.
  std::string data_path;
  std::int64_t num_classes = 0;  // 0: the dataset's
  std::int64_t num_samples = 0;  // 0: not checked
  std::int64_t num_epoch = 1;
  data::LoaderOptions loader;

  // Model and loss (model.*, loss.*).
  std::string network;
  models::BackboneOptions backbone;
  losses::MarginHeadSpec head;
  double sample_rate = 1.0;

  // Optimisation (optim.*, train.amp, gradient_acc, max_nonfinite).
  OptimizerOptions optimizer;
  LrSchedule schedule;  // total_steps and warmup_steps set by schedule_for()
  double warmup_epoch = 0;
  double clip_grad_norm = 0;
  std::string amp = "none";
  std::int64_t gradient_acc = 1;
  std::int64_t max_nonfinite = 1;

  // Checkpoints and verification (train.checkpoint_*, train.verbose, eval.*).
  CheckpointPolicy checkpoints;  // total_steps set by checkpoints_for()
  std::vector<std::string> val_targets;
  std::filesystem::path val_dir;
  std::int64_t eval_batch_size = 0;

  static TrainRecipe from(const Config& config);

  // The parts that need the run's size: steps_per_epoch loader steps per epoch.
  LrSchedule schedule_for(std::int64_t steps_per_epoch) const;
  CheckpointPolicy checkpoints_for(std::int64_t steps_per_epoch) const;
  // fp16's dynamic scaler, or a disabled one.
  LossScaler loss_scaler() const;
  losses::PartialFCOptions partial_fc(std::int64_t num_classes) const;
  // The verification sets that exist; missing ones are skipped with a warning, as arcface_torch
  // skips them.
  std::vector<VerificationTarget> verification_targets() const;
};

}  // namespace facetrain::train
