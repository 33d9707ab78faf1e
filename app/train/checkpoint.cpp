#include "app/train/checkpoint.h"
#include "app/train/fault_injection.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <map>

#include "app/train/optimizer_state.h"
#include "framework/core/atomic_file.h"
#include "framework/core/checksum.h"
#include "framework/core/checked.h"
#include "framework/core/input_file.h"
#include "framework/core/error.h"
#include "framework/core/run_layout.h"
#include "framework/log/logger.h"
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

// The names in `dir` of a checkpoint's files: CheckpointLayout's, head.pt and fc-LO-HI.pt.
std::vector<std::string> checkpoint_files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool known = std::find(std::begin(CheckpointLayout::kFiles),
                                 std::end(CheckpointLayout::kFiles),
                                 name) != std::end(CheckpointLayout::kFiles);
    if (known || name == CheckpointLayout::kHead || CheckpointLayout::fc_range(name)) {
      names.push_back(name);
    }
  }
  return names;
}

struct FcFile {
  fs::path path;
  losses::ClassRange range;
};

// The fc-LO-HI.pt files of a checkpoint, sorted, checked to cover [0, num_classes) exactly.
std::vector<FcFile> fc_files(const fs::path& dir, std::int64_t num_classes) {
  std::vector<FcFile> files;
  for (const auto& name : checkpoint_files_in(dir)) {
    if (const auto range = CheckpointLayout::fc_range(name)) {
      files.push_back({dir / name, {range->first, range->second}});
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

namespace {

// This rank's classifier file in `tmp`; returns {lo, hi, bytes, crc32} for state.json.
std::vector<std::int64_t> write_classifier_file(const CheckpointLayout& tmp,
                                                const losses::PartialFC& fc) {
  models::NamedTensors tensors;
  for (const auto& [key, t] : fc.state()) tensors.emplace_back(key, t);
  const auto r = fc.range();
  const std::string bytes = models::state_dict_bytes(tensors);
  write_file_atomic(tmp.fc(r.lo, r.hi), bytes);
  return {r.lo, r.hi, static_cast<std::int64_t>(bytes.size()), crc32_of(bytes)};
}

// Rank 0's part: the other files, state.json last (listing the classifier files of
// `fc_records`, four numbers per rank, and every file written here), then the folder renamed into
// place, `latest` switched and the retired step folders removed.
void write_and_commit(const RunLayout& run, const CheckpointLayout& tmp, const TrainState& state,
                      models::BackboneImpl& backbone, torch::optim::Optimizer& optimizer,
                      const losses::PartialFC& fc, const Config& config,
                      const std::vector<std::int64_t>& fc_records, const CheckpointPolicy& policy) {
  FileRecords files;
  const auto write = [&](const fs::path& file, const std::string& bytes) {
    write_file_atomic(file, bytes);
    files[file.filename().string()] = {static_cast<std::int64_t>(bytes.size()), crc32_of(bytes)};
  };
  for (std::size_t r = 0; r + 3 < fc_records.size(); r += 4) {
    files[tmp.fc(fc_records[r], fc_records[r + 1]).filename().string()] = {
        fc_records[r + 2], static_cast<std::uint32_t>(fc_records[r + 3])};
  }
  write(tmp.backbone(), models::state_dict_bytes(models::state_dict(backbone)));
  write(tmp.optimizer(), models::state_dict_bytes(optimizer_state(optimizer)));
  const models::NamedTensors head = models::state_dict(fc.head());
  if (!head.empty()) write(tmp.head(), models::state_dict_bytes(head));
  write(tmp.config(), config.to_toml());
  // Last: a state.json is there only once every file it lists is.
  write_file_atomic(tmp.state(), state_json({state, files}));
  fsync_dir(tmp.dir);
  // A folder of the same step (a resumed run reaching it again) is replaced only once the new
  // one is complete.
  const fs::path root = run.checkpoints();
  const std::string name = RunLayout::step_name(state.step);
  const fs::path final_dir = run.step(state.step).dir;
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

}  // namespace

void save_checkpoint(const fs::path& run_dir, const TrainState& state,
                     models::BackboneImpl& backbone, torch::optim::Optimizer& optimizer,
                     const losses::PartialFC& fc, const Config& config, dist::Communicator& comm,
                     const CheckpointPolicy& policy) {
  const RunLayout run{run_dir};
  const std::string what = "writing checkpoint " + RunLayout::step_name(state.step);
  const CheckpointLayout tmp{run.checkpoints() / ("." + RunLayout::step_name(state.step) + ".tmp")};
  // Each part agreed on every rank: a rank that fails (a full disk, say) ends the job on all of
  // them now, and the previous checkpoints stay as they are.
  dist::agree_on_every_rank(comm, what, [&] {
    if (comm.rank() != 0) return;
    fs::remove_all(tmp.dir);
    fs::create_directories(tmp.dir);
  });
  std::vector<std::int64_t> fc_record;
  dist::agree_on_every_rank(comm, what, [&] {
    fc_record = write_classifier_file(tmp, fc);
    FaultInjection::process().at(comm.rank(), "checkpoint");
  });
  const std::vector<std::int64_t> fc_records = comm.host_all_gather(fc_record);
  dist::agree_on_every_rank(comm, what, [&] {
    if (comm.rank() == 0) {
      write_and_commit(run, tmp, state, backbone, optimizer, fc, config, fc_records, policy);
    }
  });
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

namespace {

// A damaged checkpoint's reason, or empty when `check` passes; anything that is not damage
// passes on: trouble is reported, not skipped.
template <class Check>
std::string damage(const Check& check) {
  try {
    check();
  } catch (const std::exception& e) {
    if (is_damage(e)) return e.what();
    throw;
  }
  return {};
}

// state.json against the folder's name, the run and the files beside it; throws CheckpointError.
StateFile check_summary(const fs::path& dir, const RunShape& run) {
  if (!fs::is_directory(dir)) throw CheckpointError(fmt::format("{}: not a folder", dir.string()));
  const CheckpointLayout files{dir};
  const StateFile saved = read_state(files.state());
  const TrainState& s = saved.state;
  const std::string where = files.state().string();
  if (const auto number = RunLayout::step_number(dir.filename().string());
      number && *number != s.step) {
    throw CheckpointError(
        fmt::format("{}: step {}, but the folder is {}", where, s.step, dir.filename().string()));
  }
  if (s.num_classes != run.num_classes) {
    throw CheckpointError(
        fmt::format("{}: it has {} classes, the run {}", where, s.num_classes, run.num_classes));
  }
  if (run.dataset_size > 0 && s.consumed > run.dataset_size) {
    throw CheckpointError(fmt::format(
        "{}: key \"consumed\" = {} is past the end of an epoch of the dataset ({} samples)", where,
        s.consumed, run.dataset_size));
  }
  for (const char* name : CheckpointLayout::kFiles) {
    if (name != std::string(CheckpointLayout::kState) && saved.files.count(name) == 0) {
      throw CheckpointError(fmt::format("{}: files does not list {}", where, name));
    }
  }
  for (const auto& name : checkpoint_files_in(dir)) {
    if (name != CheckpointLayout::kState && saved.files.count(name) == 0) {
      throw CheckpointError(fmt::format("{}: {} is beside it but not listed", where, name));
    }
  }
  const auto listed_fc = std::count_if(saved.files.begin(), saved.files.end(), [](const auto& f) {
    return CheckpointLayout::fc_range(f.first).has_value();
  });
  if (listed_fc != s.world_size) {
    throw CheckpointError(fmt::format(
        "{}: world_size {}, but {} classifier files are listed (one per rank)", where,
        s.world_size, listed_fc));
  }
  for (const auto& [name, record] : saved.files) {
    const InputFile f = InputFile::open(dir / name);
    if (!f.problem().empty()) {
      throw CheckpointError(fmt::format("{}: {} (listed in state.json)", (dir / name).string(),
                                        f.problem()));
    }
    if (f.size() != record.bytes) {
      throw CheckpointError(fmt::format("{}: {} bytes, state.json lists {} (truncated or replaced)",
                                        (dir / name).string(), f.size(), record.bytes));
    }
  }
  fc_files(dir, run.num_classes);  // they cover the classes exactly
  return saved;
}

// The trainable parameters of a backbone: those its optimizer steps.
std::vector<at::Tensor> trainable(models::BackboneImpl& backbone) {
  std::vector<at::Tensor> params;
  for (const auto& p : backbone.parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  return params;
}

// The classifier files agree with their class ranges and with each other: the same tensors in
// each, of the same type and trailing shape, rows a whole number of (classes x centres) —
// what load_checkpoint joins. The first non-finite tensor goes to `poisoned` (when empty).
void check_fc_files(const std::vector<FcFile>& files, std::string& poisoned) {
  std::map<std::string, at::Tensor> first;  // each name's tensor in the first file
  std::int64_t centres = -1;
  for (const auto& f : files) {
    const auto tensors = models::read_state_dict(f.path);
    const bool is_first = &f == &files.front();
    if (!is_first && tensors.size() != first.size()) {
      throw CheckpointError(fmt::format("{}: {} tensors, {} holds {}", f.path.string(),
                                        tensors.size(), files.front().path.filename().string(),
                                        first.size()));
    }
    for (const auto& [key, t] : tensors) {
      const auto it = first.find(key);
      const bool rows_ok = t.dim() >= 1 && t.size(0) > 0 && t.size(0) % f.range.size() == 0 &&
                           (centres < 0 || t.size(0) == f.range.size() * centres);
      const bool like_first =
          is_first || (it != first.end() && t.scalar_type() == it->second.scalar_type() &&
                       t.sizes().slice(1) == it->second.sizes().slice(1));
      if (!rows_ok || !like_first) {
        throw CheckpointError(fmt::format(
            "{}: '{}' ({}) does not fit classes [{}, {}) and the other classifier files",
            f.path.string(), key, dist::describe(t), f.range.lo, f.range.hi));
      }
      centres = t.size(0) / f.range.size();
      if (is_first) first.emplace(key, t);
    }
    if (poisoned.empty()) poisoned = first_nonfinite(tensors, f.path.filename().string());
  }
}

// Every file's checksum and content; throws CheckpointError (or ConfigError) on damage.
void check_contents(const fs::path& dir, const StateFile& saved, models::BackboneImpl& backbone) {
  const CheckpointLayout files{dir};
  for (const auto& [name, record] : saved.files) {
    const std::uint32_t crc = file_crc32<CheckpointError>(dir / name);
    if (crc != record.crc32) {
      throw CheckpointError(fmt::format("{}: checksum {:08x}, state.json lists {:08x}",
                                        (dir / name).string(), crc, record.crc32));
    }
  }
  const auto weights = models::read_state_dict(files.backbone());
  // Shapes and names against the backbone, without changing it.
  auto probe = models::make_backbone(
      backbone.network(), models::BackboneOptions().embedding_size(backbone.embedding_size()));
  models::load_state_dict(*probe, weights, files.backbone().string());
  const std::string optimizer = optimizer_state_problem(
      models::read_state_dict(files.optimizer()), trainable(*probe), files.optimizer().string());
  if (!optimizer.empty()) throw CheckpointError(optimizer);
  // A diverged run's weights are no place to resume from.
  std::string poisoned = first_nonfinite(weights, "backbone.pt");
  check_fc_files(fc_files(dir, saved.state.num_classes), poisoned);
  if (poisoned.empty() && saved.files.count(files.head().filename().string()) > 0) {
    poisoned = first_nonfinite(models::read_state_dict(files.head()), "head.pt");
  }
  if (!poisoned.empty()) throw CheckpointError(poisoned);
  Config::from_file(files.config());
}

}  // namespace

bool is_damage(const std::exception& e) {
  return dynamic_cast<const CheckpointError*>(&e) != nullptr ||
         dynamic_cast<const ConfigError*>(&e) != nullptr ||
         dynamic_cast<const DataError*>(&e) != nullptr;
}

std::string checkpoint_summary_problem(const fs::path& dir, const RunShape& run) {
  return damage([&] { check_summary(dir, run); });
}

std::string checkpoint_problem(const fs::path& dir, models::BackboneImpl& backbone,
                               const RunShape& run) {
  return damage([&] { check_contents(dir, check_summary(dir, run), backbone); });
}

std::optional<fs::path> find_resume_checkpoint(const fs::path& run_dir, const std::string& resume,
                                               models::BackboneImpl& backbone,
                                               const RunShape& run) {
  if (resume != "auto") {
    const auto found = find_checkpoint(resume);
    const fs::path dir = found ? found->dir : fs::path(resume);
    const std::string problem = checkpoint_problem(dir, backbone, run);
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
    const std::string problem = checkpoint_problem(dir, backbone, run);
    if (problem.empty()) return dir;
    log::warn("skipping damaged checkpoint {}: {}", dir.string(), problem);
  }
  if (!steps.empty()) {
    throw CheckpointError(fmt::format(
        "--resume auto: none of the {} checkpoints in {} is usable (the reasons are above); "
        "starting afresh would write over the run: move them away, or name another --output",
        steps.size(), root.string()));
  }
  return std::nullopt;
}

std::optional<fs::path> agree_resume_checkpoint(const fs::path& run_dir, const std::string& resume,
                                                models::BackboneImpl& backbone,
                                                const RunShape& run, dist::Communicator& comm) {
  const std::string what = "--resume " + resume;
  // Rank 0 decides; every rank learns whether it failed.
  std::optional<fs::path> mine;
  agree_on_every_rank(comm, what + ": choosing the checkpoint", [&] {
    if (comm.rank() == 0) mine = find_resume_checkpoint(run_dir, resume, backbone, run);
  });
  // Its step number (-1: none; -2: a folder not named step-N, given on the command line).
  const std::int64_t step = comm.host_all_gather(
      {!mine ? -1 : RunLayout::step_number(mine->filename().string()).value_or(-2)})[0];
  if (step == -1) return std::nullopt;
  // The same folder on every rank, each checking its summary (kilobytes): a run folder that is
  // not shared between hosts, or a file damaged in one host's view, ends the job on every rank.
  fs::path dir;
  agree_on_every_rank(comm, what + ": checking rank 0's choice", [&] {
    if (comm.rank() == 0) {
      dir = *mine;
      return;
    }
    if (resume == "auto") {
      dir = RunLayout{run_dir}.step(step).dir;
    } else {
      const auto found = find_checkpoint(resume);
      dir = found ? found->dir : fs::path(resume);
    }
    if (const std::string problem = checkpoint_summary_problem(dir, run); !problem.empty()) {
      throw CheckpointError(fmt::format(
          "{}: rank 0 chose {}, which rank {} cannot use: {}: every rank must see the same "
          "checkpoint (a run folder shared by all hosts)",
          what, dir.string(), comm.rank(), problem));
    }
  });
  return dir;
}

TrainState load_checkpoint(const fs::path& dir, models::BackboneImpl& backbone,
                           torch::optim::Optimizer& optimizer, losses::PartialFC& fc) {
  const CheckpointLayout files{dir};
  const TrainState state = read_state(files.state()).state;
  models::load_state_dict(backbone, models::read_state_dict(files.backbone()),
                          files.backbone().string());
  load_optimizer_state(optimizer, models::read_state_dict(files.optimizer()),
                       files.optimizer().string());
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
      if (t.dim() < 1 || t.size(0) != f.range.size() * k) {
        throw CheckpointError(fmt::format("{}: '{}' is {}, expected {} rows ({} classes x {})",
                                          f.path.string(), key, dist::describe(t),
                                          f.range.size() * k, f.range.size(), k));
      }
      pieces[key].push_back(t);
    }
  }
  std::map<std::string, at::Tensor> joined;
  for (auto& [key, list] : pieces) {
    try {
      joined[key] = at::cat(list);
    } catch (const c10::Error& e) {
      throw CheckpointError(fmt::format("{}: the classifier files' '{}' do not join: {}",
                                        dir.string(), key, e.what_without_backtrace()));
    }
  }
  fc.load_state(joined, covered, dir.string());
  load_head_statistics(files, fc.head());
  return state;
}

}  // namespace facetrain::train
