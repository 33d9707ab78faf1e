#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "app/train/checkpoint_policy.h"
#include "framework/config/config.h"
#include "framework/distributed/communicator.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"

namespace facetrain::train {

// Where a run stands; saved as state.json in every checkpoint.
struct TrainState {
  std::int64_t step = 0;   // loader steps done (micro-batches, as the LR schedule counts)
  std::int64_t epoch = 0;  // the loader's position: epoch and samples of it handed out
  std::int64_t consumed = 0;
  double loss_scale = 0.0;           // fp16's dynamic loss scale (0 without fp16)
  std::int64_t good_steps = 0;       // steps since the loss scale last changed
  std::int64_t nonfinite_steps = 0;  // steps skipped for a NaN/inf loss or gradient, in all
  std::int64_t global_batch = 0;
  int world_size = 1;
  std::int64_t num_classes = 0;
  std::int64_t seed = 0;
};

// A checkpoint folder RUN/checkpoints/step-NNNNNNN/ (framework/core/run_layout.h: its files).
// Written collectively into .step-NNNNNNN.tmp (each rank its fc file, rank 0 the rest, every
// file fsynced), renamed into place by rank 0, then `latest` (a symbolic link) is switched
// atomically and the step folders `policy` retires are removed. A crash at any point leaves
// the previous checkpoints and `latest` intact.
void save_checkpoint(const std::filesystem::path& run_dir, const TrainState& state,
                     models::BackboneImpl& backbone, torch::optim::Optimizer& optimizer,
                     const losses::PartialFC& fc, const Config& config, dist::Communicator& comm,
                     const CheckpointPolicy& policy);

// Problems of a checkpoint folder (missing or unreadable files, non-finite weights, FC files not
// covering [0, num_classes) exactly, a backbone that does not fit `backbone`), or empty when it is
// complete. Reads every file.
std::string checkpoint_problem(const std::filesystem::path& dir, models::BackboneImpl& backbone,
                               std::int64_t num_classes);

// The checkpoint to resume from: `resume` "auto" takes the newest valid step folder of
// RUN/checkpoints (warning about and skipping damaged ones; nullopt when there is none), a path
// must be a valid checkpoint folder (CheckpointError naming it and the problem otherwise).
std::optional<std::filesystem::path> find_resume_checkpoint(const std::filesystem::path& run_dir,
                                                            const std::string& resume,
                                                            models::BackboneImpl& backbone,
                                                            std::int64_t num_classes);

// find_resume_checkpoint agreed over the ranks: rank 0's choice is the job's; every rank checks
// that it can use that same folder (a run folder not shared between hosts, a file damaged on one
// host's view), and a rank that cannot is a CheckpointError on every rank naming it and why.
std::optional<std::filesystem::path> agree_resume_checkpoint(const std::filesystem::path& run_dir,
                                                             const std::string& resume,
                                                             models::BackboneImpl& backbone,
                                                             std::int64_t num_classes,
                                                             dist::Communicator& comm);

// Loads a checkpoint (also one written at another world size) into the backbone, the optimizer
// and this rank's Partial FC rows; returns its state.
TrainState load_checkpoint(const std::filesystem::path& dir, models::BackboneImpl& backbone,
                           torch::optim::Optimizer& optimizer, losses::PartialFC& fc);

}  // namespace facetrain::train
