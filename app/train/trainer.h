#pragma once

#include <filesystem>
#include <string>

#include "framework/config/config.h"
#include "framework/distributed/mpi_runtime.h"

namespace facetrain::train {

// What a finished run reports.
struct TrainSummary {
  std::int64_t steps = 0;
  double seconds = 0;
  double images_per_second = 0;  // global, over the steps this process ran
  double last_loss = 0;
  std::filesystem::path run_dir;
  std::filesystem::path checkpoint;
};

// Trains the configured model on this rank's part of the job (see the README's "Training"):
// loader → backbone (data parallel, bucketed gradient all-reduce) → Partial FC (model parallel)
// → margin head → distributed softmax cross-entropy → backward → backbone gradient clipping →
// SGD/AdamW with the LR schedule per step → gradient accumulation, optional autocast (bf16;
// fp16 with a dynamic loss scale agreed over the ranks), NaN/inf steps skipped (max_nonfinite in
// a row stop the run), progress lines, JSONL metrics, TensorBoard events, verification every
// `train.verbose` steps, checkpoints every `train.checkpoint_every` steps and at the end.
// `resume` is "" (start fresh; an existing run folder with checkpoints is an error), "auto" or
// a checkpoint/run folder. Every rank calls it; errors are thrown (the caller aborts the job).
TrainSummary run_training(const Config& config, const std::string& resume,
                          const dist::LaunchEnv& env);

}  // namespace facetrain::train
