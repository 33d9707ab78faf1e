#include "models/checkpoint_source.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/config/config.h"
#include "framework/core/error.h"
#include "framework/core/run_layout.h"
#include "models/state_dict.h"

namespace facetrain::models {

BackboneSource backbone_in_checkpoint(const std::filesystem::path& dir) {
  const auto checkpoint = find_checkpoint(dir);
  if (!checkpoint) {
    throw CheckpointError(
        fmt::format("{}: not a checkpoint (no backbone.pt) nor a run folder "
                    "(no checkpoints/latest)",
                    dir.string()));
  }
  if (!std::filesystem::exists(checkpoint->backbone())) {
    throw CheckpointError(fmt::format("{}: no backbone.pt", checkpoint->dir.string()));
  }
  if (!std::filesystem::exists(checkpoint->config())) {
    throw CheckpointError(
        fmt::format("{}: no config.toml (the run's configuration names the network)",
                    checkpoint->dir.string()));
  }
  const Config config = Config::from_file(checkpoint->config());
  return {checkpoint->backbone(), checkpoint->config(), config.get_string("model.network")};
}

LoadedBackbone load_backbone(const std::string& checkpoint, const std::string& weights,
                             const std::string& network) {
  LoadedBackbone out;
  if (!checkpoint.empty()) {
    if (!weights.empty() || !network.empty()) {
      throw UsageError("give --checkpoint DIR, or --weights FILE and --network NAME, not both");
    }
    const auto source = backbone_in_checkpoint(checkpoint);
    out.weights = source.weights;
    out.network = source.network;
    out.config = source.config;
  } else if (weights.empty() || network.empty()) {
    throw UsageError("give --checkpoint DIR, or --weights FILE and --network NAME");
  } else {
    out.weights = weights;
    out.network = network;
  }
  out.network = canonical_backbone_name(out.network);
  const auto state = read_state_dict(out.weights);
  out.backbone = make_backbone(out.network, BackboneOptions().embedding_size(embedding_size_in(
                                                out.network, state, out.weights.string())));
  load_state_dict(*out.backbone, state, out.weights.string());
  out.backbone->eval();
  return out;
}

}  // namespace facetrain::models
