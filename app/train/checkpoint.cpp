#include "app/train/checkpoint.h"
#include "app/train/fault_injection.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/run_layout.h"
#include "framework/log/logger.h"
#include "framework/serialization/json_object.h"
#include "models/state_dict.h"

namespace facetrain::train {
namespace {

namespace fs = std::filesystem;

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string state_json(const TrainState& s) {
  nlohmann::json j;
  j["format"] = "facetrain-checkpoint";
  j["version"] = 1;
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
  return j.dump(2) + "\n";
}

TrainState read_state(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw CheckpointError(fmt::format("{}: missing", file.string()));
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("{}: not valid JSON: {}", file.string(), e.what()));
  }
  const auto format = j.is_object() && j.contains("format") && j["format"].is_string()
                          ? j["format"].get<std::string>()
                          : std::string("none");
  if (format != "facetrain-checkpoint") {
    throw CheckpointError(fmt::format("{}: not a facetrain checkpoint state (format '{}')",
                                      file.string(), format));
  }
  // What a run can hold: positions and counts from 0, sizes from 1, a finite loss scale.
  const serialization::JsonObject<CheckpointError> state(j, file.string());
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  TrainState s;
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
  return s;
}

struct FcFile {
  fs::path path;
  losses::ClassRange range;
};

// The fc-LO-HI.pt files of a checkpoint, sorted, checked to cover [0, num_classes) exactly.
std::vector<FcFile> fc_files(const fs::path& dir, std::int64_t num_classes) {
  std::vector<FcFile> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (const auto range = CheckpointLayout::fc_range(entry.path().filename().string())) {
      files.push_back({entry.path(), {range->first, range->second}});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const FcFile& a, const FcFile& b) { return a.range.lo < b.range.lo; });
  std::int64_t next = 0;
  for (const auto& f : files) {
    if (f.range.lo != next || f.range.hi <= f.range.lo) {
      throw CheckpointError(
          fmt::format("{}: the classifier files do not cover the classes: "
                      "expected one starting at class {}, found {}",
                      dir.string(), next, f.path.filename().string()));
    }
    next = f.range.hi;
  }
  if (next != num_classes) {
    throw CheckpointError(
        fmt::format("{}: the classifier files cover classes [0, {}), the run "
                    "has {}",
                    dir.string(), next, num_classes));
  }
  return files;
}

// The step-NNNNNNN folders of a checkpoints folder by step number, oldest first (by number, so
// step-10000000 follows step-9999999).
std::map<std::int64_t, fs::path> step_folders(const fs::path& root) {
  std::map<std::int64_t, fs::path> steps;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto number = RunLayout::step_number(entry.path().filename().string());
    if (number && entry.is_directory() && !entry.is_symlink()) steps.emplace(*number, entry.path());
  }
  return steps;
}

// The margin head's running statistics from head.pt. A checkpoint without one (the head keeps
// none, or it was written before heads were saved) leaves them as they are, with a warning when
// the head has some.
void load_head_statistics(const CheckpointLayout& files, losses::MarginHeadImpl& head) {
  if (fs::exists(files.head())) {
    models::load_state_dict(head, models::read_state_dict(files.head()), files.head().string());
  } else if (!head.buffers().empty()) {
    log::warn("{}: no head.pt: the margin head's running statistics start afresh",
              files.dir.string());
  }
}

}  // namespace

void save_checkpoint(const fs::path& run_dir, const TrainState& state,
                     models::BackboneImpl& backbone, torch::optim::Optimizer& optimizer,
                     const losses::PartialFC& fc, const Config& config, dist::Communicator& comm,
                     const CheckpointPolicy& policy) {
  const RunLayout run{run_dir};
  const fs::path root = run.checkpoints();
  const std::string name = RunLayout::step_name(state.step);
  const CheckpointLayout tmp{root / ("." + name + ".tmp")};
  const fs::path final_dir = run.step(state.step).dir;
  if (comm.rank() == 0) {
    fs::remove_all(tmp.dir);
    fs::create_directories(tmp.dir);
  }
  comm.barrier();
  {
    models::NamedTensors tensors;
    for (const auto& [key, t] : fc.state()) tensors.emplace_back(key, t);
    const auto r = fc.range();
    models::write_state_dict(tmp.fc(r.lo, r.hi), tensors);
  }
  FaultInjection::process().at(comm.rank(), "checkpoint");
  comm.barrier();
  if (comm.rank() == 0) {
    models::write_state_dict(tmp.backbone(), models::state_dict(backbone));
    std::ostringstream archive;
    torch::save(optimizer, archive);
    write_file_atomic(tmp.optimizer(), archive.str());
    const models::NamedTensors head = models::state_dict(fc.head());
    if (!head.empty()) models::write_state_dict(tmp.head(), head);
    write_file_atomic(tmp.state(), state_json(state));
    config.save(tmp.config());
    fsync_dir(tmp.dir);
    // A folder of the same step (a resumed run reaching it again) is replaced only once the new
    // one is complete.
    const fs::path old = root / ("." + name + ".old");
    fs::remove_all(old);
    if (fs::exists(final_dir)) fs::rename(final_dir, old);
    fs::rename(tmp.dir, final_dir);
    const fs::path link_tmp = root / ".latest.tmp";
    fs::remove(link_tmp);
    fs::create_directory_symlink(name, link_tmp);
    fs::rename(link_tmp, run.latest());
    fsync_dir(root);
    fs::remove_all(old);
    const auto steps = step_folders(root);
    std::vector<std::int64_t> numbers;
    for (const auto& [number, dir] : steps) numbers.push_back(number);
    for (const std::int64_t number : policy.retired(numbers, state.step)) {
      fs::remove_all(steps.at(number));
    }
    log::info("checkpoint {} written", final_dir.string());
  }
  comm.barrier();
}

namespace {

// "FILE: tensor NAME holds non-finite values", or empty when every floating tensor is finite.
std::string first_nonfinite(const std::map<std::string, at::Tensor>& tensors,
                            const std::string& file) {
  for (const auto& [name, t] : tensors) {
    if (t.is_floating_point() && !t.isfinite().all().item<bool>()) {
      return fmt::format("{}: tensor {} holds non-finite values (a diverged run)", file, name);
    }
  }
  return {};
}

}  // namespace

std::string checkpoint_problem(const fs::path& dir, models::BackboneImpl& backbone,
                               std::int64_t num_classes) {
  try {
    if (!fs::is_directory(dir)) return "not a folder";
    const CheckpointLayout files{dir};
    for (const char* file : CheckpointLayout::kFiles) {
      if (!fs::exists(dir / file)) return fmt::format("{} is missing", file);
    }
    const TrainState state = read_state(files.state());
    if (state.num_classes != num_classes) {
      return fmt::format("it has {} classes, the run {}", state.num_classes, num_classes);
    }
    const auto weights = models::read_state_dict(files.backbone());
    // Shapes and names against the backbone, without changing it.
    auto probe = models::make_backbone(
        backbone.network(), models::BackboneOptions().embedding_size(backbone.embedding_size()));
    models::load_state_dict(*probe, weights, files.backbone().string());
    // A diverged run's weights are no place to resume from.
    std::string poisoned = first_nonfinite(weights, "backbone.pt");
    for (const auto& f : fc_files(dir, num_classes)) {
      if (poisoned.empty()) {
        poisoned = first_nonfinite(models::read_state_dict(f.path), f.path.filename().string());
      }
    }
    if (poisoned.empty() && fs::exists(files.head())) {
      poisoned = first_nonfinite(models::read_state_dict(files.head()), "head.pt");
    }
    if (!poisoned.empty()) return poisoned;
    Config::from_file(files.config());
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

std::optional<fs::path> find_resume_checkpoint(const fs::path& run_dir, const std::string& resume,
                                               models::BackboneImpl& backbone,
                                               std::int64_t num_classes) {
  if (resume != "auto") {
    const auto found = find_checkpoint(resume);
    const fs::path dir = found ? found->dir : fs::path(resume);
    const std::string problem = checkpoint_problem(dir, backbone, num_classes);
    if (!problem.empty()) {
      throw CheckpointError(
          fmt::format("--resume {}: not a usable checkpoint: {}", resume, problem));
    }
    return dir;
  }
  const fs::path root = RunLayout{run_dir}.checkpoints();
  if (!fs::is_directory(root)) return std::nullopt;
  const auto steps = step_folders(root);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const fs::path& dir = it->second;
    const std::string problem = checkpoint_problem(dir, backbone, num_classes);
    if (problem.empty()) return dir;
    log::warn("skipping damaged checkpoint {}: {}", dir.string(), problem);
  }
  return std::nullopt;
}

std::optional<fs::path> agree_resume_checkpoint(const fs::path& run_dir, const std::string& resume,
                                                models::BackboneImpl& backbone,
                                                std::int64_t num_classes,
                                                dist::Communicator& comm) {
  // Rank 0 decides (its step number, −1 for none); the others take its choice and check it.
  std::optional<fs::path> mine;
  if (comm.rank() == 0) mine = find_resume_checkpoint(run_dir, resume, backbone, num_classes);
  const std::optional<std::int64_t> own_step =
      mine ? RunLayout::step_number(mine->filename().string()) : std::nullopt;
  const std::int64_t chosen = comm.host_all_gather({mine ? own_step.value_or(-2) : -1})[0];
  if (chosen == -1) return std::nullopt;
  if (chosen == -2 || resume != "auto") {
    // A checkpoint folder named on the command line: every rank was given the same path.
    const auto same = find_resume_checkpoint(run_dir, resume, backbone, num_classes);
    return same;
  }
  const fs::path dir = RunLayout{run_dir}.step(chosen).dir;
  const std::string problem =
      comm.rank() == 0 ? std::string() : checkpoint_problem(dir, backbone, num_classes);
  const auto ok = comm.host_all_gather({problem.empty() ? 1 : 0});
  for (std::size_t r = 0; r < ok.size(); ++r) {
    if (ok[r] == 0) {
      throw CheckpointError(fmt::format(
          "--resume {}: rank 0 chose {}, which rank {} cannot use{}{}: every rank must see the "
          "same checkpoint (a run folder shared by all hosts)",
          resume, dir.string(), r, problem.empty() ? "" : ": ", problem));
    }
  }
  return dir;
}

TrainState load_checkpoint(const fs::path& dir, models::BackboneImpl& backbone,
                           torch::optim::Optimizer& optimizer, losses::PartialFC& fc) {
  const CheckpointLayout files{dir};
  const TrainState state = read_state(files.state());
  models::load_state_dict(backbone, models::read_state_dict(files.backbone()),
                          files.backbone().string());
  {
    std::ifstream in(files.optimizer(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    try {
      torch::load(optimizer, bytes);
    } catch (const std::exception& e) {
      throw CheckpointError(fmt::format("{}: the optimizer state does not load: {}",
                                        files.optimizer().string(), e.what()));
    }
  }
  // This rank's rows, from whichever files hold them.
  const auto mine = fc.range();
  std::map<std::string, std::vector<at::Tensor>> pieces;
  losses::ClassRange covered{-1, -1};
  const std::int64_t k = fc.centres_per_class();
  for (const auto& f : fc_files(dir, state.num_classes)) {
    if (f.range.hi <= mine.lo || f.range.lo >= mine.hi) continue;
    if (covered.lo < 0) covered.lo = f.range.lo;
    covered.hi = f.range.hi;
    for (const auto& [key, t] : models::read_state_dict(f.path)) {
      if (t.size(0) != f.range.size() * k) {
        throw CheckpointError(fmt::format("{}: '{}' has {} rows, expected {} ({} classes x {})",
                                          f.path.string(), key, t.size(0), f.range.size() * k,
                                          f.range.size(), k));
      }
      pieces[key].push_back(t);
    }
  }
  std::map<std::string, at::Tensor> joined;
  for (auto& [key, list] : pieces) joined[key] = at::cat(list);
  fc.load_state(joined, covered, dir.string());
  load_head_statistics(files, fc.head());
  return state;
}

}  // namespace facetrain::train
