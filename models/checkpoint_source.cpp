#include "models/checkpoint_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "framework/config/config.h"
#include "framework/core/error.h"
#include "models/state_dict.h"

namespace facetrain::models {

BackboneSource backbone_in_checkpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::path checkpoint = dir;
  if (!fs::exists(dir / "backbone.pt")) {
    const fs::path latest = dir / "checkpoints" / "latest";
    if (fs::is_symlink(latest) || fs::is_directory(latest)) {
      checkpoint = fs::canonical(latest);
    } else if (fs::is_regular_file(latest)) {
      std::ifstream in(latest);
      std::string name;
      std::getline(in, name);
      checkpoint = dir / "checkpoints" / name;
    } else {
      throw CheckpointError(
          fmt::format("{}: not a checkpoint (no backbone.pt) nor a run folder "
                      "(no checkpoints/latest)",
                      dir.string()));
    }
  }
  if (!fs::exists(checkpoint / "backbone.pt")) {
    throw CheckpointError(fmt::format("{}: no backbone.pt", checkpoint.string()));
  }
  if (!fs::exists(checkpoint / "config.toml")) {
    throw CheckpointError(
        fmt::format("{}: no config.toml (the run's configuration names the "
                    "network)",
                    checkpoint.string()));
  }
  const Config config = Config::from_file(checkpoint / "config.toml");
  return {checkpoint / "backbone.pt", config.get_string("model.network")};
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
    out.config = source.weights.parent_path() / "config.toml";
  } else if (weights.empty() || network.empty()) {
    throw UsageError("give --checkpoint DIR, or --weights FILE and --network NAME");
  } else {
    out.weights = weights;
    out.network = network;
  }
  out.network = canonical_backbone_name(out.network);
  const auto state = read_state_dict(out.weights);
  out.backbone = make_backbone(
      out.network, BackboneOptions().embedding_size(
                       embedding_size_in(out.network, state, out.weights.string())));
  load_state_dict(*out.backbone, state, out.weights.string());
  out.backbone->eval();
  return out;
}

}  // namespace facetrain::models
