#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "models/backbone.h"

namespace facetrain::models {

// Where a checkpoint keeps its backbone: the weights file and the network that reads it.
struct BackboneSource {
  std::filesystem::path weights;
  std::filesystem::path config;
  std::string network;
};

// The backbone of a checkpoint folder (its backbone.pt, a torch.save dict with insightface's
// names, and config.toml, the run's resolved configuration, for model.network). DIR may also be
// a run's output folder: then the checkpoint its `latest` names (framework/core/run_layout.h).
// CheckpointError naming the folder and the missing file otherwise.
BackboneSource backbone_in_checkpoint(const std::filesystem::path& dir);

// A backbone ready for inference, with where it came from.
struct LoadedBackbone {
  std::shared_ptr<BackboneImpl> backbone;
  std::string network;
  std::filesystem::path weights;
  std::filesystem::path config;  // the run's config.toml; empty for a bare weights file
};

// The backbone named by the command line's --checkpoint DIR, or --weights FILE with --network
// NAME (exactly one of the two forms): built with the embedding size the weights hold, weights
// loaded (with read_state_dict/load_state_dict's errors), in eval mode. UsageError when neither
// or both forms are given or the network is unknown.
LoadedBackbone load_backbone(const std::string& checkpoint, const std::string& weights,
                             const std::string& network);

}  // namespace facetrain::models
