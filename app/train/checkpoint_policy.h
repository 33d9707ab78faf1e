#pragma once

#include <cstdint>
#include <vector>

namespace facetrain::train {

// When a run writes checkpoints and runs its verification sets, and which checkpoints it keeps.
// Steps are loader steps done (`done` = 1 after the first batch). A checkpoint is written every
// `every` steps on an optimizer-step boundary (a multiple of `accumulation`), and at the end;
// verification runs every `verify_every` steps and at the end; the newest `keep` step folders
// are kept. Requires every, verify_every, accumulation, keep >= 1 and total_steps >= 0.
struct CheckpointPolicy {
  std::int64_t every = 2000;
  std::int64_t keep = 3;
  std::int64_t verify_every = 2000;
  std::int64_t accumulation = 1;
  std::int64_t total_steps = 0;

  void validate() const;
  // A periodic checkpoint after `done` steps (the final one is save_at_end's).
  bool save_after(std::int64_t done) const;
  // The final checkpoint, unless the last periodic one was already written at `done`.
  bool save_at_end(std::int64_t done, std::int64_t last_saved) const { return done != last_saved; }
  // A periodic verification after `done` steps (the final one always runs).
  bool verify_after(std::int64_t done) const;
  // Of the step folders `steps` (any order), those to remove once `written` is complete: all
  // but the newest `keep`, never `written` itself. Ascending.
  std::vector<std::int64_t> retired(std::vector<std::int64_t> steps, std::int64_t written) const;
};

}  // namespace facetrain::train
