#pragma once

#include <filesystem>
#include <string>

namespace facetrain::models {

// Where a checkpoint keeps its backbone: the weights file and the network that reads it.
struct BackboneSource {
  std::filesystem::path weights;
  std::string network;
};

// The backbone of a checkpoint folder (DIR/backbone.pt, a torch.save dict with insightface's
// names, and DIR/config.toml, the run's resolved configuration, for model.network). DIR may
// also be a run's output folder: then DIR/checkpoints/latest (a link to, or a file naming, the
// newest step-NNNNNNN folder) is followed. CheckpointError naming the folder and the missing
// file otherwise.
BackboneSource backbone_in_checkpoint(const std::filesystem::path& dir);

}  // namespace facetrain::models
