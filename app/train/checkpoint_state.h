#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

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

// One file of a checkpoint as state.json lists it.
struct FileRecord {
  std::int64_t bytes = 0;
  std::uint32_t crc32 = 0;
};
using FileRecords = std::map<std::string, FileRecord>;

// A checkpoint's state.json, its metadata: where the run stands, and every other file of the
// folder (backbone.pt, optimizer.pt, fc-LO-HI.pt, head.pt, config.toml) with its size and CRC-32,
// so that the choice of a resume point reads kilobytes.
struct StateFile {
  TrainState state;
  FileRecords files;
};

// The JSON text of state.json (format "facetrain-checkpoint", version kStateVersion).
std::string state_json(const StateFile& saved);

// state.json's text parsed and checked (format, version, every key's type and range, file names
// plain names beside it); CheckpointError naming `source` and the key otherwise.
StateFile parse_state(std::string_view text, const std::string& source);

// parse_state of the file (a regular file of at most 16 MiB).
StateFile read_state(const std::filesystem::path& file);

// state.json's format version: 2 lists the files (1, without, held the optimizer state in
// LibTorch's archive format, which is no longer read).
inline constexpr int kStateVersion = 2;

}  // namespace facetrain::train
