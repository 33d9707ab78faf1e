#include "app/train/trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>

#include "app/eval/evaluate.h"
#include "app/train/checkpoint.h"
#include "app/train/checkpoint_policy.h"
#include "app/train/fault_injection.h"
#include "app/train/lr_schedule.h"
#include "app/train/metrics_window.h"
#include "app/train/recipe.h"
#include "app/train/train_step.h"
#include "data/loader/face_loader.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/autocast.h"
#include "framework/core/compute_threads.h"
#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/host_to_device.h"
#include "framework/core/mix.h"
#include "framework/core/run_layout.h"
#include "framework/distributed/gradient_reducer.h"
#include "framework/log/logger.h"
#include "framework/log/metrics.h"
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

// The run folder: a fresh run must not mix with an earlier one's checkpoints; each rank logs to
// RUN/logs/rank-R.log.
void open_run_folder(const fs::path& run_dir, const std::string& resume, dist::Communicator& comm) {
  const RunLayout run{run_dir};
  if (resume.empty() && fs::exists(run.latest())) {
    throw UsageError(
        fmt::format("{} already holds a run's checkpoints: pass --resume auto to "
                    "continue it, or choose another --output",
                    run_dir.string()));
  }
  comm.barrier();
  fs::create_directories(run.logs());
  log::open_file(run.log(comm.rank()));
}

// The training set, checked against data.num_classes and data.num_samples where they are given.
std::shared_ptr<const data::ShardedDataset> open_dataset(const TrainRecipe& recipe) {
  auto dataset = std::make_shared<const data::ShardedDataset>(recipe.data_path);
  if (recipe.num_classes != 0 && recipe.num_classes != dataset->num_classes()) {
    throw ConfigError(fmt::format("data.num_classes = {}: the dataset {} has {} classes",
                                  recipe.num_classes, recipe.data_path, dataset->num_classes()));
  }
  if (recipe.num_samples != 0 && recipe.num_samples != dataset->size()) {
    throw ConfigError(fmt::format("data.num_samples = {}: the dataset {} has {} images",
                                  recipe.num_samples, recipe.data_path, dataset->size()));
  }
  return dataset;
}

// The loader of this rank's part of every global batch.
std::unique_ptr<data::FaceLoader> make_loader(const TrainRecipe& recipe,
                                              std::shared_ptr<const data::ShardedDataset> dataset,
                                              const dist::Communicator& comm) {
  data::LoaderOptions options = recipe.loader;
  options.rank = comm.rank();
  options.world_size = comm.size();
  return std::make_unique<data::FaceLoader>(std::move(dataset), options);
}

// The communicator of the run: NCCL for several ranks on GPUs when dist.backend is auto.
std::shared_ptr<dist::Communicator> open_communicator(const TrainRecipe& recipe, c10::Device device,
                                                      const dist::LaunchEnv& env) {
  const bool nccl = recipe.backend == "auto" && device.is_cuda() && env.world_size > 1;
  return dist::make_communicator(nccl ? "nccl" : recipe.backend, env, recipe.timeout_s);
}

// A fresh run's state (before any checkpoint is loaded).
TrainState initial_state(const TrainRecipe& recipe, const dist::Communicator& comm,
                         std::int64_t num_classes) {
  TrainState state;
  state.world_size = comm.size();
  state.num_classes = num_classes;
  state.global_batch = checked::mul<ConfigError>(recipe.loader.batch_size,
                                                 static_cast<std::int64_t>(comm.size()),
                                                 "train.batch_size x ranks");
  state.seed = recipe.seed;
  return state;
}

// The state after a loader step: one step more, the loader's position, the step's counters.
TrainState advance(TrainState s, const data::LoaderState& position, const TrainStep& step) {
  s.step += 1;
  s.epoch = position.epoch;
  s.consumed = position.consumed;
  s.loss_scale = step.scaler().enabled() ? step.scaler().scale() : 0.0;
  s.good_steps = step.scaler().good_steps();
  s.nonfinite_steps = step.skipped();
  return s;
}

TrainState next_epoch(TrainState s) {
  s.epoch += 1;
  s.consumed = 0;
  return s;
}

// The trained parts: the backbone (data parallel: its gradients all-reduced by the reducer),
// the margin head, Partial FC (this rank's class centres) and the backbone's optimizer.
struct Model {
  std::shared_ptr<models::BackboneImpl> backbone;
  std::unique_ptr<losses::PartialFC> fc;
  std::vector<at::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<dist::GradientReducer> reducer;

  Model(const TrainRecipe& recipe, std::int64_t num_classes,
        const std::shared_ptr<dist::Communicator>& comm, c10::Device device) {
    at::manual_seed(static_cast<std::uint64_t>(recipe.seed));
    backbone = models::make_backbone(recipe.network, recipe.backbone);
    backbone->to(device);
    auto head = losses::make_margin_head(recipe.head);
    head->to(device);
    fc = std::make_unique<losses::PartialFC>(recipe.partial_fc(num_classes), head, comm);
    fc->to(device);
    for (auto& p : backbone->parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    optimizer = make_optimizer(recipe.optimizer, params, recipe.schedule.base);
    reducer = std::make_unique<dist::GradientReducer>(
        params, backbone->buffers(), comm,
        dist::GradientReducerOptions().bucket_mb(recipe.bucket_mb));
  }
};

// Continues from `resume`'s checkpoint when there is one: the weights, optimizer states and the
// run's position. Returns the step of the checkpoint (nullopt: a fresh start).
std::optional<std::int64_t> resume_run(const fs::path& run_dir, const std::string& resume,
                                       Model& model, TrainStep& step, TrainState& state,
                                       const data::FaceLoader& loader, dist::Communicator& comm) {
  if (resume.empty()) return std::nullopt;
  const auto from =
      agree_resume_checkpoint(run_dir, resume, *model.backbone,
                              RunShape{state.num_classes, loader.dataset_size()}, comm);
  if (!from) {
    log::info("--resume {}: no checkpoint in {}, starting from scratch", resume, run_dir.string());
    return std::nullopt;
  }
  // A rank whose load fails (a file damaged in its view, an I/O error) ends the job on every
  // rank now, not at the first training collective's deadline.
  TrainState saved;
  dist::agree_on_every_rank(comm, "loading checkpoint " + from->string(), [&] {
    saved = load_checkpoint(*from, *model.backbone, *model.optimizer, *model.fc);
  });
  state.epoch = saved.epoch;
  state.consumed = saved.consumed;
  // The step follows from the loader's position, so a run on another world size (another global
  // batch) continues the same epoch without repeating or skipping samples.
  state.step = saved.global_batch == state.global_batch
                   ? saved.step
                   : checked::add<CheckpointError>(
                         checked::mul<CheckpointError>(state.epoch, loader.steps_per_epoch(),
                                                       from->string() + ": epoch x steps"),
                         loader.steps_before({state.epoch, state.consumed}),
                         from->string() + ": the step");
  step.scaler().restore(saved.loss_scale, saved.good_steps);
  step.restore_skipped(saved.nonfinite_steps);
  log::info(
      "resumed from {} (step {}, epoch {}, {} samples of it done; written at world {}, now "
      "{})",
      from->string(), saved.step, saved.epoch, saved.consumed, saved.world_size, state.world_size);
  return state.step;
}

// What rank 0 reports: progress lines, metrics.jsonl, TensorBoard events and the verification
// sets' accuracy (computed over all ranks).
class Reporter {
 public:
  Reporter(const TrainRecipe& recipe, const fs::path& run_dir, dist::Communicator& comm,
           models::BackboneImpl& backbone)
      : comm_(comm),
        backbone_(backbone),
        targets_(recipe.verification_targets()),
        eval_batch_(recipe.eval_batch_size) {
    if (comm.rank() != 0) return;
    metrics_ = std::make_unique<log::JsonlWriter>(RunLayout{run_dir}.metrics());
    if (recipe.tensorboard) {
      board_ = std::make_unique<log::TensorBoardWriter>(RunLayout{run_dir}.tensorboard());
    }
  }

  void progress(const TrainState& state, std::int64_t total, double lr, double last_loss,
                MetricsWindow::Summary window, double elapsed, std::int64_t steps_run,
                const TrainStep& step) {
    const double eta =
        elapsed / static_cast<double>(steps_run) * static_cast<double>(total - state.step);
    const double scale = step.scaler().enabled() ? step.scaler().scale() : 0.0;
    log::info("step {}/{} epoch {} loss {:.4f} lr {:.6f} {:.1f} img/s{} eta {}", state.step, total,
              state.epoch, window.mean_loss, lr, window.images_per_second,
              scale > 0 ? fmt::format(" scale {:g}", scale) : "", duration(eta));
    const StepTimes& t = step.times();
    if (metrics_) {
      metrics_->write(state.step, {{"epoch", static_cast<double>(state.epoch)},
                                   {"loss", window.mean_loss},
                                   {"last_loss", last_loss},
                                   {"lr", lr},
                                   {"images_per_second", window.images_per_second},
                                   {"loss_scale", scale},
                                   {"nonfinite_steps", static_cast<double>(step.skipped())},
                                   {"time_data", data_seconds},
                                   {"time_forward", t.forward},
                                   {"time_fc", t.fc},
                                   {"time_backward", t.backward},
                                   {"time_comm", t.comm},
                                   {"time_optimizer", t.optimizer}});
    }
    if (board_) {
      board_->scalar("train/loss", window.mean_loss, state.step);
      board_->scalar("train/lr", lr, state.step);
      board_->scalar("train/images_per_second", window.images_per_second, state.step);
      if (scale > 0) board_->scalar("train/loss_scale", scale, state.step);
    }
  }

  void verify(std::int64_t step) {
    if (targets_.empty()) return;
    backbone_.eval();
    for (const auto& target : targets_) {
      const auto t0 = Clock::now();
      const auto result =
          eval::evaluate_verification_set(backbone_, target.path, eval_batch_, &comm_);
      log::info("[{}][{}] accuracy {:.5f} +- {:.5f}, XNorm {:.3f}, AUC {:.5f} ({:.1f} s)",
                target.name, step, result.accuracy, result.accuracy_std, result.xnorm, result.auc,
                since(t0));
      if (metrics_) metrics_->write(step, {{"val_" + target.name + "_accuracy", result.accuracy}});
      if (board_) board_->scalar("val/" + target.name + "_accuracy", result.accuracy, step);
    }
    backbone_.train();
  }

  double data_seconds = 0;  // waiting for the loader

 private:
  dist::Communicator& comm_;
  models::BackboneImpl& backbone_;
  std::vector<VerificationTarget> targets_;
  std::int64_t eval_batch_;
  std::unique_ptr<log::JsonlWriter> metrics_;
  std::unique_ptr<log::TensorBoardWriter> board_;
};

void log_run_start(const Config& config, const TrainRecipe& recipe, const ComputeThreads& threads,
                   const Model& model, const dist::Communicator& comm, const dist::LaunchEnv& env,
                   c10::Device device, const TrainState& state, std::int64_t images,
                   std::int64_t steps_per_epoch) {
  log::info("configuration:\n{}", config.to_toml());
  log::info("placement: {}; this rank is local rank {} of {} on {}", dist::describe_placement(env),
            env.local_rank, env.local_size, env.hostname);
  if (const auto warning = dist::launcher_warning(env, recipe.timeout_s)) {
    log::warn("{}", *warning);
  }
  log::info(
      "intra-op threads: {} on the training thread ({}); the loader's {} decode thread(s) "
      "and the gradient reduction run serially",
      threads.intra_op, threads.reason, recipe.loader.num_workers);
  if (device.is_cpu() && env.local_size == 1 && available_cores() < online_cores()) {
    log::warn(
        "this process may run on {} of the host's {} cores (its CPU affinity: mpirun binds "
        "a lone rank to one core; add --bind-to none to use them all)",
        available_cores(), online_cores());
  }
  log::info(
      "training {} ({:.2f}M parameters) with {} on {} classes, {} images: world {} "
      "({} back end, {}), batch {} per rank, {} global{}, {} steps ({} per epoch x {})",
      model.backbone->network(),
      static_cast<double>(models::parameter_count(*model.backbone)) / 1e6, recipe.head.kind(),
      state.num_classes, images, comm.size(), comm.backend(), device.str(),
      recipe.loader.batch_size, state.global_batch,
      recipe.gradient_acc > 1 ? fmt::format(" x {} accumulated", recipe.gradient_acc) : "",
      steps_per_epoch * recipe.num_epoch, steps_per_epoch, recipe.num_epoch);
}

TrainSummary finish_run(const TrainState& state, const fs::path& run_dir, const TrainStep& step,
                        const Reporter& reporter, std::int64_t steps_run, std::int64_t images_run,
                        double seconds, double last_loss) {
  TrainSummary summary;
  summary.steps = steps_run;
  summary.seconds = seconds;
  summary.images_per_second = static_cast<double>(images_run) / std::max(1e-9, seconds);
  summary.last_loss = last_loss;
  summary.run_dir = run_dir;
  summary.checkpoint = RunLayout{run_dir}.step(state.step).dir;
  log::info("done: {} steps in {} ({:.1f} img/s), last loss {:.4f}; checkpoint {}", steps_run,
            duration(seconds), summary.images_per_second, last_loss, summary.checkpoint.string());
  const StepTimes& t = step.times();
  log::info(
      "time per phase (s, this rank): data {:.1f}, forward {:.1f}, fc {:.1f}, backward "
      "{:.1f}, comm wait {:.1f}, optimizer {:.1f}",
      reporter.data_seconds, t.forward, t.fc, t.backward, t.comm, t.optimizer);
  log::close_file();
  return summary;
}

}  // namespace

TrainSummary run_training(const Config& config, const std::string& resume,
                          const dist::LaunchEnv& env) {
  const TrainRecipe recipe = TrainRecipe::from(config);
  const FaultInjection& fault = FaultInjection::process();
  const c10::Device device = dist::choose_device(recipe.device, env);
  // This thread alone runs parallel tensor work; the ranks on one host share its cores.
  const ComputeThreads threads = plan_compute_threads(
      recipe.cpu_threads, std::getenv("OMP_NUM_THREADS"), available_cores(), env.local_size);
  use_compute_threads(threads.intra_op);
  fault.at(env.rank, "startup");
  const auto comm = open_communicator(recipe, device, env);
  open_run_folder(recipe.output, resume, *comm);

  const auto dataset = open_dataset(recipe);
  const auto loader = make_loader(recipe, dataset, *comm);
  const std::int64_t steps_per_epoch = loader->steps_per_epoch();
  const LrSchedule schedule = recipe.schedule_for(steps_per_epoch);
  const CheckpointPolicy policy = recipe.checkpoints_for(steps_per_epoch);
  TrainState state = initial_state(recipe, *comm, dataset->num_classes());
  Model model(recipe, state.num_classes, comm, device);
  TrainStep step(
      *model.backbone, *model.fc, *model.optimizer, *model.reducer, *comm, model.params,
      TrainStepOptions{device, autocast_dtype(recipe.amp), recipe.gradient_acc,
                       recipe.clip_grad_norm, schedule.total_steps, recipe.max_nonfinite},
      recipe.loss_scaler());
  std::optional<std::int64_t> last_saved =
      resume_run(recipe.output, resume, model, step, state, *loader, *comm);
  model.reducer->broadcast_from_root();
  if (comm->rank() == 0) config.save(RunLayout{recipe.output}.config());
  Reporter reporter(recipe, recipe.output, *comm, *model.backbone);
  log_run_start(config, recipe, threads, model, *comm, env, device, state, dataset->size(),
                steps_per_epoch);

  model.backbone->train();
  loader->start({state.epoch, state.consumed});
  const auto run_start = Clock::now();
  MetricsWindow window(0.0);
  std::int64_t steps_run = 0;
  double last_loss = 0, lr = 0;
  while (state.epoch < recipe.num_epoch) {
    const auto wait = Clock::now();
    std::optional<data::Batch> batch = loader->next();
    reporter.data_seconds += since(wait);
    if (!batch) {
      state = next_epoch(state);
      if (state.epoch < recipe.num_epoch) loader->start({state.epoch, 0});
      continue;
    }
    fault.before_step(comm->rank(), state.step);
    // A stream per step, so dropout and flips repeat on resume.
    at::manual_seed(mix64(static_cast<std::uint64_t>(recipe.seed) ^
                          mix64(static_cast<std::uint64_t>(state.step))));
    lr = schedule.at(state.step);
    const StepOutcome outcome =
        step.run(models::images_to_input(host_to_device(batch->images, device)), batch->labels,
                 state.step, lr, fault.poisons(comm->rank(), state.step));
    state = advance(state, loader->state(), step);
    ++steps_run;
    last_loss = outcome.loss;
    window.add(outcome.loss, state.global_batch);
    if (state.step % recipe.frequent == 0 || state.step == schedule.total_steps) {
      reporter.progress(state, schedule.total_steps, lr, last_loss, window.close(since(run_start)),
                        since(run_start), steps_run, step);
    }
    // The checkpoint first: a verification that fails must not cost the step's work.
    if (policy.save_after(state.step)) {
      save_checkpoint(recipe.output, state, *model.backbone, *model.optimizer, *model.fc, config,
                      *comm, policy);
      last_saved = state.step;
    }
    if (policy.verify_after(state.step)) {
      fault.at(comm->rank(), "verification");
      reporter.verify(state.step);
    }
  }
  if (policy.save_at_end(state.step, last_saved.value_or(-1))) {
    save_checkpoint(recipe.output, state, *model.backbone, *model.optimizer, *model.fc, config,
                    *comm, policy);
  }
  if (!policy.verify_after(state.step)) {  // not verified at this step already
    fault.at(comm->rank(), "verification");
    reporter.verify(state.step);
  }
  const TrainSummary summary =
      finish_run(state, recipe.output, step, reporter, steps_run, steps_run * state.global_batch,
                 since(run_start), last_loss);
  fault.at(comm->rank(), "shutdown");
  return summary;
}

}  // namespace facetrain::train
