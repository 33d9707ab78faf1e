#include "app/train/checkpoint_state.h"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "framework/core/error.h"
#include "framework/core/input_file.h"
#include "framework/core/run_layout.h"
#include "framework/core/strings.h"
#include "framework/serialization/json_object.h"

namespace facetrain::train {
namespace {

// What state.json may weigh: a few hundred bytes, and a line per classifier file.
constexpr std::int64_t kMaxStateBytes = std::int64_t{16} << 20;

}  // namespace

std::string state_json(const StateFile& saved) {
  const TrainState& s = saved.state;
  nlohmann::json j;
  j["format"] = "facetrain-checkpoint";
  j["version"] = kStateVersion;
  j["step"] = s.step;
  j["epoch"] = s.epoch;
  j["consumed"] = s.consumed;
  j["loss_scale"] = s.loss_scale;
  j["good_steps"] = s.good_steps;
  j["nonfinite_steps"] = s.nonfinite_steps;
  j["global_batch"] = s.global_batch;
  j["world_size"] = s.world_size;
  j["num_classes"] = s.num_classes;
  j["seed"] = s.seed;
  nlohmann::json listed = nlohmann::json::object();
  for (const auto& [name, f] : saved.files) listed[name] = {{"bytes", f.bytes}, {"crc32", f.crc32}};
  j["files"] = listed;
  return j.dump(2) + "\n";
}

StateFile parse_state(std::string_view text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  const auto format = j.is_object() && j.contains("format") && j["format"].is_string()
                          ? j["format"].get<std::string>()
                          : std::string("none");
  if (format != "facetrain-checkpoint") {
    throw CheckpointError(fmt::format("{}: not a facetrain checkpoint state (format '{}')",
                                      source, format));
  }
  // What a run can hold: positions and counts from 0, sizes from 1, a finite loss scale.
  const serialization::JsonObject<CheckpointError> state(j, source);
  const int version = state.integer<int>("version");
  if (version != kStateVersion) {
    throw CheckpointError(fmt::format(
        "{}: checkpoint format version {}, this build reads version {}{}", source, version,
        kStateVersion,
        version == 1 ? " (an earlier facetrain's, whose optimizer.pt is a LibTorch archive: "
                       "resume it with the version that wrote it; its backbone.pt still "
                       "evaluates and exports)"
                     : ""));
  }
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  StateFile out;
  TrainState& s = out.state;
  s.step = state.integer<std::int64_t>("step", 0);
  s.epoch = state.integer<std::int64_t>("epoch", 0);
  s.consumed = state.integer<std::int64_t>("consumed", 0);
  s.loss_scale = state.number("loss_scale", 0, std::numeric_limits<double>::max());
  s.good_steps = state.integer<std::int64_t>("good_steps", 0);
  s.nonfinite_steps = state.integer<std::int64_t>("nonfinite_steps", 0);
  s.global_batch = state.integer<std::int64_t>("global_batch", 1, kMax);
  s.world_size = state.integer<int>("world_size", 1, std::numeric_limits<int>::max());
  s.num_classes = state.integer<std::int64_t>("num_classes", 1, kMax);
  s.seed = state.integer<std::int64_t>("seed");
  // Every epoch is a step at least: an epoch past the steps done contradicts them.
  if (s.epoch > s.step) {
    throw CheckpointError(fmt::format("{}: epoch {} after {} steps: every epoch takes a step at "
                                      "least",
                                      source, s.epoch, s.step));
  }
  for (const auto& [name, value] : state.object("files").items()) {
    const serialization::JsonObject<CheckpointError> f(
        value, fmt::format("{}: files[\"{}\"]", source, name));
    if (!is_plain_file_name(name) || name == CheckpointLayout::kState) {
      throw CheckpointError(
          fmt::format("{}: \"{}\" is not a file name beside state.json", f.where(), name));
    }
    out.files[name] = {f.integer<std::int64_t>("bytes", 0), f.integer<std::uint32_t>("crc32")};
  }
  return out;
}

StateFile read_state(const std::filesystem::path& file) {
  return parse_state(InputFile::open_or_throw<CheckpointError>(file).read_all<CheckpointError>(
                         kMaxStateBytes, "a checkpoint state"),
                     file.string());
}


}  // namespace facetrain::train
