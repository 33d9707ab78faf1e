#include "framework/train/trainer.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>

#include "data/loader/face_loader.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/compute_threads.h"
#include "framework/core/error.h"
#include "framework/core/host_to_device.h"
#include "framework/core/mix.h"
#include "framework/distributed/gradient_reducer.h"
#include "framework/eval/evaluate.h"
#include "framework/log/logger.h"
#include "framework/log/metrics.h"
#include "framework/train/checkpoint.h"
#include "framework/train/lr_schedule.h"
#include "losses/margin_head_factory.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"
#include "models/embedding.h"

namespace facetrain::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

// A seam for the failure tests: FACETRAIN_FAULT="KIND@RANK:STEP" makes rank RANK, on reaching
// STEP, throw (throw), stop itself with SIGSTOP (stall), die with SIGKILL (kill), or produce a
// NaN loss from then on (nan). With FACETRAIN_FAULT_ONCE=FILE it fires only while FILE does not
// exist, and creates it (so a relaunched job runs clean). Unset in normal runs.
struct Fault {
  std::string kind;
  int rank = -1;
  std::int64_t step = -1;

  static Fault from_env() {
    Fault f;
    const char* spec = std::getenv("FACETRAIN_FAULT");
    if (spec == nullptr || *spec == 0) return f;
    const std::string s(spec);
    const auto at = s.find('@'), colon = s.find(':');
    if (at == std::string::npos || colon == std::string::npos || colon < at) {
      throw UsageError(fmt::format("FACETRAIN_FAULT='{}': expected KIND@RANK:STEP", s));
    }
    f.kind = s.substr(0, at);
    f.rank = std::stoi(s.substr(at + 1, colon - at - 1));
    f.step = std::stoll(s.substr(colon + 1));
    return f;
  }
  bool hits(int rank_now, std::int64_t step_now, const char* kind_now) const {
    if (kind != kind_now || rank != rank_now) return false;
    if (kind == "nan" ? step_now < step : step_now != step) return false;
    const char* once = std::getenv("FACETRAIN_FAULT_ONCE");
    if (once == nullptr || *once == 0) return true;
    if (fs::exists(once)) return false;
    std::ofstream(once) << kind << "\n";
    return true;
  }
};

// Autocast on `device` for the scope (bf16 or fp16), or nothing.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, const std::string& amp) : device_(device) {
    if (amp == "none") return;
    active_ = true;
    at::autocast::set_autocast_dtype(device_, amp == "bf16" ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(device_, true);
  }
  ~AutocastScope() {
    if (!active_) return;
    at::autocast::set_autocast_enabled(device_, false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& config,
                                                        const std::vector<at::Tensor>& params) {
  const std::string kind = config.get_string("optim.optimizer");
  const double lr = config.get_float("optim.lr");
  const double wd = config.get_float("optim.weight_decay");
  if (kind == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        params,
        torch::optim::SGDOptions(lr).momentum(config.get_float("optim.momentum")).weight_decay(wd));
  }
  return std::make_unique<torch::optim::AdamW>(params,
                                               torch::optim::AdamWOptions(lr).weight_decay(wd));
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// The verification sets of eval.val_targets: NAME → eval.val_dir/NAME.h5, or a path. Missing
// ones are skipped with a warning, as arcface_torch does.
std::vector<std::pair<std::string, fs::path>> verification_sets(const Config& config) {
  std::vector<std::pair<std::string, fs::path>> out;
  const fs::path dir = config.get_string("eval.val_dir");
  for (const auto& target : config.get_string_list("eval.val_targets")) {
    fs::path path = target;
    if (target.find('/') == std::string::npos && path.extension() != ".h5") {
      path = dir / (target + ".h5");
    }
    if (!fs::exists(path)) {
      log::warn("eval.val_targets: {} ({}) not found; not evaluated", target, path.string());
      continue;
    }
    out.emplace_back(path.stem().string(), path);
  }
  return out;
}

}  // namespace

TrainSummary run_training(const Config& config, const std::string& resume,
                          const dist::LaunchEnv& env) {
  const Fault fault = Fault::from_env();
  const fs::path run_dir = config.get_string("train.output");
  const c10::Device device = dist::choose_device(config.get_string("train.device"), env);
  // This thread alone runs parallel tensor work; the ranks on one host share its cores.
  const ComputeThreads threads =
      plan_compute_threads(static_cast<int>(config.get_int("train.cpu_threads")),
                           std::getenv("OMP_NUM_THREADS"), available_cores(), env.local_size);
  use_compute_threads(threads.intra_op);
  std::string backend = config.get_string("dist.backend");
  if (backend == "auto" && device.is_cuda() && env.world_size > 1) backend = "nccl";
  auto comm = dist::make_communicator(backend, env, config.get_float("dist.timeout_s"));
  const int rank = comm->rank();
  const int world = comm->size();

  // A fresh run must not mix with an earlier one's checkpoints.
  if (resume.empty() && fs::exists(run_dir / "checkpoints" / "latest")) {
    throw UsageError(fmt::format("{} already holds a run's checkpoints: pass --resume auto to "
                                 "continue it, or choose another --output",
                                 run_dir.string()));
  }
  comm->barrier();
  fs::create_directories(run_dir / "logs");
  log::open_file(run_dir / "logs" / fmt::format("rank-{}.log", rank));

  // Data.
  const std::string data_path = config.get_string("data.path");
  if (data_path.empty()) throw ConfigError("data.path: no training dataset given");
  auto dataset = std::make_shared<const data::ShardedDataset>(data_path);
  std::int64_t num_classes = config.get_int("data.num_classes");
  if (num_classes == 0) num_classes = dataset->num_classes();
  if (num_classes != dataset->num_classes()) {
    throw ConfigError(fmt::format("data.num_classes = {}: the dataset {} has {} classes",
                                  num_classes, data_path, dataset->num_classes()));
  }
  const std::int64_t num_samples = config.get_int("data.num_samples");
  if (num_samples != 0 && num_samples != dataset->size()) {
    throw ConfigError(fmt::format("data.num_samples = {}: the dataset {} has {} images",
                                  num_samples, data_path, dataset->size()));
  }
  const std::int64_t batch = config.get_int("train.batch_size");
  const std::int64_t acc = config.get_int("train.gradient_acc");
  const std::int64_t seed = config.get_int("train.seed");
  data::LoaderOptions loader_options;
  loader_options.batch_size = batch;
  loader_options.rank = rank;
  loader_options.world_size = world;
  loader_options.seed = static_cast<std::uint64_t>(seed);
  loader_options.num_workers = static_cast<int>(config.get_int("data.num_workers"));
  loader_options.prefetch = static_cast<int>(config.get_int("data.prefetch"));
  loader_options.skip_corrupt = config.get_string("data.corrupt_policy") == "skip";
  data::FaceLoader loader(dataset, loader_options);
  const std::int64_t steps_per_epoch = loader.steps_per_epoch();
  const std::int64_t num_epoch = config.get_int("train.num_epoch");
  const std::int64_t total_steps = steps_per_epoch * num_epoch;
  const std::int64_t global_batch = batch * world;

  // Model, head, classifier, optimizer.
  at::manual_seed(static_cast<std::uint64_t>(seed));
  auto backbone = models::make_backbone(
      config.get_string("model.network"),
      models::BackboneOptions()
          .embedding_size(config.get_int("model.embedding_size"))
          .dropout(config.get_float("model.dropout")));
  backbone->to(device);
  auto head = losses::make_margin_head(config);
  head->to(device);
  const auto fc_optimizer = losses::FcOptimizerOptions()
                                .kind(config.get_string("optim.optimizer"))
                                .momentum(config.get_float("optim.momentum"))
                                .weight_decay(config.get_float("optim.weight_decay"));
  losses::PartialFC fc(losses::PartialFCOptions()
                           .num_classes(num_classes)
                           .embedding_size(config.get_int("model.embedding_size"))
                           .sample_rate(config.get_float("loss.sample_rate"))
                           .seed(static_cast<std::uint64_t>(seed))
                           .optimizer(fc_optimizer),
                       head, comm);
  fc.to(device);
  std::vector<at::Tensor> params;
  for (auto& p : backbone->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  auto optimizer = make_optimizer(config, params);
  dist::GradientReducer reducer(
      params, backbone->buffers(), comm,
      dist::GradientReducerOptions().bucket_mb(config.get_float("dist.bucket_mb")));

  LrSchedule schedule;
  schedule.kind = config.get_string("optim.lr_schedule");
  schedule.base = config.get_float("optim.lr");
  schedule.power = config.get_float("optim.poly_power");
  schedule.warmup_steps = static_cast<std::int64_t>(config.get_float("optim.warmup_epoch") *
                                                    static_cast<double>(steps_per_epoch));
  schedule.total_steps = total_steps;
  schedule.validate();

  const std::string amp = config.get_string("train.amp");
  if (amp != "none" && !device.is_cuda()) {
    throw ConfigError(fmt::format("train.amp = \"{}\": mixed precision needs a CUDA device; this "
                                  "run is on the CPU (use none)",
                                  amp));
  }
  TrainState state;
  state.loss_scale = amp == "fp16" ? 65536.0 : 0.0;
  state.world_size = world;
  state.num_classes = num_classes;
  state.global_batch = global_batch;
  state.seed = seed;

  // Resume.
  std::optional<fs::path> from;
  if (!resume.empty()) from = find_resume_checkpoint(run_dir, resume, *backbone, num_classes);
  if (from) {
    const TrainState saved = load_checkpoint(*from, *backbone, *optimizer, fc);
    state.epoch = saved.epoch;
    state.consumed = saved.consumed;
    state.loss_scale = amp == "fp16" ? (saved.loss_scale > 0 ? saved.loss_scale : 65536.0) : 0.0;
    state.good_steps = saved.good_steps;
    state.nonfinite_steps = saved.nonfinite_steps;
    // The step follows from the loader's position, so a run on another world size (another
    // global batch) continues the same epoch without repeating or skipping samples.
    state.step = saved.global_batch == global_batch
                     ? saved.step
                     : state.epoch * steps_per_epoch +
                           (state.consumed + global_batch - 1) / global_batch;
    log::info("resumed from {} (step {}, epoch {}, {} samples of it done; written at world {}, "
              "now {})",
              from->string(), saved.step, saved.epoch, saved.consumed, saved.world_size, world);
  } else if (!resume.empty()) {
    log::info("--resume {}: no checkpoint in {}, starting from scratch", resume, run_dir.string());
  }
  reducer.broadcast_from_root();
  if (rank == 0) config.save(run_dir / "config.toml");

  const auto targets = verification_sets(config);
  std::unique_ptr<log::JsonlWriter> metrics;
  std::unique_ptr<log::TensorBoardWriter> board;
  if (rank == 0) {
    metrics = std::make_unique<log::JsonlWriter>(run_dir / "metrics.jsonl");
    if (config.get_bool("log.tensorboard")) {
      board = std::make_unique<log::TensorBoardWriter>(run_dir / "tensorboard");
    }
  }
  log::info("configuration:\n{}", config.to_toml());
  log::info("intra-op threads: {} on the training thread ({}); the loader's {} decode thread(s) "
            "and the gradient reduction run serially",
            threads.intra_op, threads.reason, loader_options.num_workers);
  if (device.is_cpu() && env.local_size == 1 && available_cores() < online_cores()) {
    log::warn("this process may run on {} of the host's {} cores (its CPU affinity: mpirun binds "
              "a lone rank to one core; add --bind-to none to use them all)",
              available_cores(), online_cores());
  }
  log::info("training {} ({:.2f}M parameters) with {} on {} classes, {} images: world {} "
            "({} back end, {}), batch {} per rank, {} global{}, {} steps ({} per epoch x {})",
            backbone->network(), static_cast<double>(models::parameter_count(*backbone)) / 1e6,
            config.get_string("loss.head"), num_classes, dataset->size(), world, comm->backend(),
            device.str(), batch, global_batch,
            acc > 1 ? fmt::format(" x {} accumulated", acc) : "", total_steps, steps_per_epoch,
            num_epoch);

  auto verify = [&](std::int64_t step) {
    if (targets.empty()) return;
    backbone->eval();
    for (const auto& [name, path] : targets) {
      const auto t0 = Clock::now();
      const auto result = eval::evaluate_verification_set(
          *backbone, path, config.get_int("eval.batch_size"), comm.get());
      log::info("[{}][{}] accuracy {:.5f} +- {:.5f}, XNorm {:.3f}, AUC {:.5f} ({:.1f} s)", name,
                step, result.accuracy, result.accuracy_std, result.xnorm, result.auc, since(t0));
      if (metrics) metrics->write(step, {{"val_" + name + "_accuracy", result.accuracy}});
      if (board) board->scalar("val/" + name + "_accuracy", result.accuracy, step);
    }
    backbone->train();
  };

  // The loop.
  backbone->train();
  loader.start({state.epoch, state.consumed});
  const std::int64_t frequent = config.get_int("train.frequent");
  const std::int64_t verbose = config.get_int("train.verbose");
  const std::int64_t every = config.get_int("train.checkpoint_every");
  const std::int64_t keep = config.get_int("train.checkpoint_keep");
  const std::int64_t max_nonfinite = config.get_int("train.max_nonfinite");
  const double clip = config.get_float("optim.clip_grad_norm");
  std::int64_t nonfinite_in_row = 0;
  std::int64_t last_saved = from ? state.step : -1;
  double window_loss = 0, last_log_at = 0;
  std::int64_t window_steps = 0, window_finite = 0, window_images = 0;
  struct Phases {
    double data = 0, forward = 0, fc = 0, backward = 0, comm = 0, optimizer = 0;
  } phases;
  const auto run_start = Clock::now();
  std::int64_t steps_run = 0, images_run = 0;
  double last_loss = 0;

  while (state.epoch < num_epoch) {
    auto t0 = Clock::now();
    std::optional<data::Batch> batch_now = loader.next();
    if (!batch_now) {
      ++state.epoch;
      state.consumed = 0;
      if (state.epoch < num_epoch) loader.start({state.epoch, 0});
      continue;
    }
    phases.data += since(t0);
    const std::int64_t step = state.step;
    if (fault.hits(rank, step, "throw")) {
      throw Error(fmt::format("injected fault on rank {} at step {}", rank, step));
    }
    if (fault.hits(rank, step, "stall")) std::raise(SIGSTOP);
    if (fault.hits(rank, step, "kill")) std::raise(SIGKILL);
    at::manual_seed(mix64(static_cast<std::uint64_t>(seed) ^ mix64(static_cast<std::uint64_t>(step))));

    const std::int64_t micro = step % acc;
    const bool boundary = micro == acc - 1 || step + 1 == total_steps;
    if (micro == 0) reducer.prepare(/*arm=*/boundary);
    else if (boundary) reducer.arm();
    const double lr = schedule.at(step);
    const at::Tensor images = models::images_to_input(host_to_device(batch_now->images, device));
    // On the host: Partial FC checks them there, with no device synchronisation.
    const at::Tensor labels = batch_now->labels;

    at::Tensor loss;
    {
      AutocastScope autocast(device.type(), amp);
      t0 = Clock::now();
      at::Tensor embeddings = backbone->forward(images);
      if (fault.hits(rank, step, "nan")) embeddings = embeddings * std::nan("");
      phases.forward += since(t0);
      t0 = Clock::now();
      loss = fc.forward(embeddings.to(at::kFloat), labels, step);
      phases.fc += since(t0);
    }
    t0 = Clock::now();
    const double scale = state.loss_scale > 0 ? state.loss_scale : 1.0;
    (loss * (scale / static_cast<double>(acc))).backward();
    phases.backward += since(t0);
    const double loss_value = loss.item<double>();
    state.step = step + 1;
    const auto loader_state = loader.state();
    state.epoch = loader_state.epoch;
    state.consumed = loader_state.consumed;
    steps_run += 1;
    images_run += global_batch;

    if (boundary) {
      t0 = Clock::now();
      reducer.finish();
      phases.comm += since(t0);
      t0 = Clock::now();
      // Skip the update when the loss (the same on every rank) or, with a loss scale, any
      // rank's gradients are not finite.
      bool finite = std::isfinite(loss_value);
      if (state.loss_scale > 0) {
        bool grads_ok = fc.gradients_finite();
        for (const auto& p : params) grads_ok = grads_ok && p.grad().isfinite().all().item<bool>();
        at::Tensor flag = at::full({1}, grads_ok ? 0.0f : 1.0f, at::TensorOptions().device(device));
        comm->all_reduce(flag, dist::ReduceOp::kMax);
        const bool overflow = flag.item<float>() > 0;
        if (overflow) {
          state.loss_scale = std::max(1.0, state.loss_scale / 2);
          state.good_steps = 0;
        } else if (++state.good_steps >= 2000) {
          state.loss_scale *= 2;
          state.good_steps = 0;
        }
        finite = finite && !overflow;
      }
      if (finite) {
        nonfinite_in_row = 0;
        at::NoGradGuard no_grad;
        if (state.loss_scale > 0) {
          for (auto& p : params) p.mutable_grad().div_(state.loss_scale);
        }
        if (clip > 0) torch::nn::utils::clip_grad_norm_(params, clip);
        set_lr(*optimizer, lr);
        optimizer->step();
        fc.step(lr, state.loss_scale > 0 ? 1.0 / state.loss_scale : 1.0);
      } else {
        fc.discard_gradients();
        ++state.nonfinite_steps;
        if (!std::isfinite(loss_value) && ++nonfinite_in_row >= max_nonfinite) {
          throw Error(fmt::format("the loss was not finite for {} steps in a row (train."
                                  "max_nonfinite), the last at step {} on rank {}: lower optim.lr "
                                  "or check the data",
                                  nonfinite_in_row, step, rank));
        }
        log::warn("step {}: the loss or a gradient is not finite (loss {}); the update is "
                  "skipped",
                  step, loss_value);
      }
      phases.optimizer += since(t0);
    }

    if (std::isfinite(loss_value)) {
      window_loss += loss_value;
      window_finite += 1;
    }
    window_steps += 1;
    window_images += global_batch;
    last_loss = loss_value;
    const std::int64_t done = state.step;
    if (done % frequent == 0 || done == total_steps) {
      const double elapsed = since(run_start);
      const double throughput =
          static_cast<double>(window_images) / std::max(1e-9, elapsed - last_log_at);
      const double mean_loss = window_finite > 0
                                   ? window_loss / static_cast<double>(window_finite)
                                   : std::nan("");
      const double eta =
          elapsed / static_cast<double>(steps_run) * static_cast<double>(total_steps - done);
      log::info("step {}/{} epoch {} loss {:.4f} lr {:.6f} {:.1f} img/s{} eta {}", done,
                total_steps, state.epoch, mean_loss, lr, throughput,
                state.loss_scale > 0 ? fmt::format(" scale {:g}", state.loss_scale) : "",
                duration(eta));
      if (metrics) {
        metrics->write(done, {{"epoch", static_cast<double>(state.epoch)},
                              {"loss", mean_loss},
                              {"last_loss", loss_value},
                              {"lr", lr},
                              {"images_per_second", throughput},
                              {"loss_scale", state.loss_scale},
                              {"nonfinite_steps", static_cast<double>(state.nonfinite_steps)},
                              {"time_data", phases.data},
                              {"time_forward", phases.forward},
                              {"time_fc", phases.fc},
                              {"time_backward", phases.backward},
                              {"time_comm", phases.comm},
                              {"time_optimizer", phases.optimizer}});
      }
      if (board) {
        board->scalar("train/loss", mean_loss, done);
        board->scalar("train/lr", lr, done);
        board->scalar("train/images_per_second", throughput, done);
        if (state.loss_scale > 0) board->scalar("train/loss_scale", state.loss_scale, done);
      }
      last_log_at = elapsed;
      window_loss = 0;
      window_finite = 0;
      window_steps = 0;
      window_images = 0;
    }
    if (done % verbose == 0 && done != total_steps) verify(done);
    if (done % every == 0 && done % acc == 0 && done != total_steps) {
      save_checkpoint(run_dir, state, *backbone, *optimizer, fc, config, *comm, keep);
      last_saved = done;
    }
  }
  if (state.step != last_saved) {
    save_checkpoint(run_dir, state, *backbone, *optimizer, fc, config, *comm, keep);
  }
  verify(state.step);
  TrainSummary summary;
  summary.steps = steps_run;
  summary.seconds = since(run_start);
  summary.images_per_second = static_cast<double>(images_run) / std::max(1e-9, summary.seconds);
  summary.last_loss = last_loss;
  summary.run_dir = run_dir;
  summary.checkpoint = run_dir / "checkpoints" / fmt::format("step-{:07d}", state.step);
  log::info("done: {} steps in {} ({:.1f} img/s), last loss {:.4f}; checkpoint {}", steps_run,
            duration(summary.seconds), summary.images_per_second, last_loss,
            summary.checkpoint.string());
  log::info("time per phase (s, this rank): data {:.1f}, forward {:.1f}, fc {:.1f}, backward "
            "{:.1f}, comm wait {:.1f}, optimizer {:.1f}",
            phases.data, phases.forward, phases.fc, phases.backward, phases.comm,
            phases.optimizer);
  log::close_file();
  return summary;
}

}  // namespace facetrain::train
