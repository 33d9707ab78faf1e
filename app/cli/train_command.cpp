#include <fmt/format.h>

#include <memory>

#include "app/cli/commands.h"
#include "app/train/trainer.h"
#include "framework/config/config.h"
#include "framework/log/logger.h"

namespace facetrain::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string output;
  std::string resume;
};

int run_train(Context& ctx, const TrainArgs& args) {
  Config config = Config::from_file(args.config);
  config.apply_overrides(args.sets);
  if (!args.output.empty()) config.apply_override("train.output=" + args.output);
  auto& mpi =
      ctx.start_mpi(config.get_float("dist.timeout_s"), config.get_string("dist.interface"));
  auto options = log::options();
  if (!ctx.verbose) options.level = log::parse_level(config.get_string("log.level"));
  options.console_all_ranks = config.get_string("log.console") == "all";
  log::configure(options);
  const auto summary = train::run_training(config, args.resume, mpi.env());
  if (mpi.env().rank == 0) {
    fmt::print("trained {} steps in {:.1f} s, {:.1f} img/s, last loss {:.4f}\ncheckpoint: {}\n",
               summary.steps, summary.seconds, summary.images_per_second, summary.last_loss,
               summary.checkpoint.string());
  }
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx,
                       std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "train", "Train a face-embedding model (alone, or one process per rank under mpirun / srun)");
  auto args = std::make_shared<TrainArgs>();
  sub->add_option("--config", args->config, "Recipe (TOML), e.g. experiments/ms1mv3_r50.toml")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--set", args->sets, "Override one key: section.key=value (repeatable)");
  sub->add_option("--output", args->output, "Run folder (train.output)");
  sub->add_option("--resume", args->resume,
                  "auto (the newest valid checkpoint of the run folder, if any) or a checkpoint "
                  "or run folder");
  out.emplace_back(sub, [args, &ctx] { return run_train(ctx, *args); });
}

}  // namespace facetrain::cli
