#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "app/train/checkpoint_policy.h"
#include "app/train/checkpoint_state.h"
#include "framework/config/config.h"
#include "framework/distributed/communicator.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"

namespace facetrain::train {

// A checkpoint folder RUN/checkpoints/step-NNNNNNN/ (framework/core/run_layout.h: its files).
// Written collectively into .step-NNNNNNN.tmp (each rank its fc file, rank 0 the rest, every
// file fsynced; state.json last, listing every other file with its size and CRC-32), renamed
// into place by rank 0, then `latest` (a symbolic link) is switched atomically and the step
// folders `policy` retires are removed. A crash at any point leaves the previous checkpoints and
// `latest` intact.
void save_checkpoint(const std::filesystem::path& run_dir, const TrainState& state,
                     models::BackboneImpl& backbone, torch::optim::Optimizer& optimizer,
                     const losses::PartialFC& fc, const Config& config, dist::Communicator& comm,
                     const CheckpointPolicy& policy);

// What a checkpoint must agree with to continue this run: the classes, and the dataset's size
// (its position must lie within an epoch; 0: not checked).
struct RunShape {
  std::int64_t num_classes = 0;
  std::int64_t dataset_size = 0;
};

// Whether an exception raised while reading a checkpoint says that the checkpoint is damaged —
// its own content is wrong (CheckpointError, ConfigError, DataError) — rather than that reading
// failed (IoError: an I/O error, a permission, a full disk; std::bad_alloc; anything else).
bool is_damage(const std::exception& e);

// Why a checkpoint folder cannot be resumed from, read from its state.json and the sizes of the
// files it lists (kilobytes): state.json unreadable, another step than its folder's name, a
// world size other than its classifier files', a listed file missing or of another size, a file
// not listed, classes other than the run's, a position past the dataset. Empty when it agrees
// with itself and the run. Only damage is a problem: an I/O error, a permission or an
// allocation failure is thrown (IoError and others), never reported as damage.
std::string checkpoint_summary_problem(const std::filesystem::path& dir, const RunShape& run);

// checkpoint_summary_problem, then every file read: checksums against state.json, the weights
// against `backbone`, the optimizer state against its parameters, no non-finite values, a
// configuration that loads.
std::string checkpoint_problem(const std::filesystem::path& dir, models::BackboneImpl& backbone,
                               const RunShape& run);

// The checkpoint to resume from: `resume` "auto" takes the newest valid step folder of
// RUN/checkpoints (warning about and skipping damaged ones, with the reason; nullopt when the
// run has none; a CheckpointError when it has some and every one is damaged, so that a fresh
// start never writes over a run), a path must be a valid checkpoint folder (CheckpointError
// naming it and the problem otherwise).
std::optional<std::filesystem::path> find_resume_checkpoint(const std::filesystem::path& run_dir,
                                                            const std::string& resume,
                                                            models::BackboneImpl& backbone,
                                                            const RunShape& run);

// find_resume_checkpoint on rank 0, agreed over the ranks: rank 0's choice is the job's; every
// other rank checks its summary (checkpoint_summary_problem: kilobytes, not the whole
// checkpoint) to see that it can use that same folder (a run folder not shared between hosts),
// and a rank that cannot is a CheckpointError on every rank naming it and why.
std::optional<std::filesystem::path> agree_resume_checkpoint(const std::filesystem::path& run_dir,
                                                             const std::string& resume,
                                                             models::BackboneImpl& backbone,
                                                             const RunShape& run,
                                                             dist::Communicator& comm);

// Loads a checkpoint (also one written at another world size) into the backbone, the optimizer
// and this rank's Partial FC rows; returns its state.
TrainState load_checkpoint(const std::filesystem::path& dir, models::BackboneImpl& backbone,
                           torch::optim::Optimizer& optimizer, losses::PartialFC& fc);

}  // namespace facetrain::train
