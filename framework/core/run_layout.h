#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

namespace facetrain {

// One checkpoint folder, RUN/checkpoints/step-NNNNNNN/:
//   backbone.pt   the backbone's state dict (insightface names; Python's torch.load reads it)
//   optimizer.pt  the backbone optimizer's state (a state dict of state.I.FIELD tensors)
//   fc-LO-HI.pt   per rank, the Partial FC rows of classes [LO, HI) and their optimizer state
//   head.pt       the margin head's running statistics (AdaFace's norm mean and deviation,
//                 CurricularFace's t), for heads that keep any; the same on every rank
//   state.json    where the run stands (step, epoch, samples consumed, loss scale, …) and every
//                 other file of the folder with its size and CRC-32; written last
//   config.toml   the run's resolved configuration
struct CheckpointLayout {
  std::filesystem::path dir;

  static constexpr const char* kState = "state.json";
  static constexpr const char* kHead = "head.pt";

  std::filesystem::path backbone() const { return dir / "backbone.pt"; }
  std::filesystem::path optimizer() const { return dir / "optimizer.pt"; }
  std::filesystem::path state() const { return dir / kState; }
  std::filesystem::path config() const { return dir / "config.toml"; }
  std::filesystem::path head() const { return dir / kHead; }
  std::filesystem::path fc(std::int64_t lo, std::int64_t hi) const;
  // The class range [lo, hi) of an fc-LO-HI.pt file name, or nullopt for any other name.
  static std::optional<std::pair<std::int64_t, std::int64_t>> fc_range(const std::string& name);
  // The files every checkpoint has (fc files aside), by name.
  static const char* const kFiles[4];
};

// The files of a training run, as `facetrain train` writes them and every command reads them:
//   RUN/config.toml                the resolved configuration
//   RUN/metrics.jsonl              progress and verification metrics, one JSON object per line
//   RUN/tensorboard/               TensorBoard scalar event files
//   RUN/logs/rank-R.log            each rank's log
//   RUN/checkpoints/step-NNNNNNN/  checkpoints (CheckpointLayout), step zero-padded to 7 digits
//   RUN/checkpoints/latest         a symbolic link to the newest step folder (a file naming it
//                                  is read too, for file systems without links)
struct RunLayout {
  std::filesystem::path root;

  std::filesystem::path config() const { return root / "config.toml"; }
  std::filesystem::path metrics() const { return root / "metrics.jsonl"; }
  std::filesystem::path tensorboard() const { return root / "tensorboard"; }
  std::filesystem::path logs() const { return root / "logs"; }
  std::filesystem::path log(int rank) const;
  std::filesystem::path checkpoints() const { return root / "checkpoints"; }
  std::filesystem::path latest() const { return checkpoints() / "latest"; }
  CheckpointLayout step(std::int64_t step) const { return {checkpoints() / step_name(step)}; }

  // "step-0000042"; step_number parses it back (nullopt for any other name).
  static std::string step_name(std::int64_t step);
  static std::optional<std::int64_t> step_number(const std::string& name);
  // The step folder `latest` names, or nullopt when the run has none.
  std::optional<std::filesystem::path> latest_checkpoint() const;
};

// A checkpoint given as its folder, or as its run's folder (then the one `latest` names);
// nullopt when `dir` is neither (no backbone.pt, no checkpoints/latest).
std::optional<CheckpointLayout> find_checkpoint(const std::filesystem::path& dir);

}  // namespace facetrain
