#include "models/checkpoint_source.h"

#include <fmt/format.h>

#include <fstream>

#include "framework/config/config.h"
#include "framework/core/error.h"

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

}  // namespace facetrain::models
