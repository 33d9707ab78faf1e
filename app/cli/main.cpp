// facetrain: the command-line entry point. The only place that picks exit codes:
// 0 success, 1 runtime failure, 2 usage or configuration error.

#include <fmt/format.h>

#include <cstdio>

#include "app/cli/commands.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "models/backbone.h"

namespace facetrain::cli {

dist::MpiRuntime& Context::start_mpi(double timeout_s, const std::string& interface) {
  if (!mpi) {
    mpi.emplace(argc, argv, timeout_s, interface);
    auto options = log::options();
    options.rank = mpi->env().rank;
    options.world_size = mpi->env().world_size;
    log::configure(options);
  }
  return *mpi;
}

void add_backbone_options(CLI::App* sub, std::string& checkpoint, std::string& weights,
                          std::string& network) {
  auto* c = sub->add_option("--checkpoint", checkpoint,
                            "A checkpoint folder (backbone.pt + config.toml) or a run folder (its "
                            "checkpoints/latest)")
                ->check(CLI::ExistingDirectory);
  auto* w = sub->add_option("--weights", weights,
                            "Backbone weights: a torch.save dict of tensors with insightface's "
                            "names")
                ->check(CLI::ExistingFile);
  auto* n = sub->add_option("--network", network,
                            "Backbone of --weights: " + models::backbone_names_help());
  c->excludes(w)->excludes(n);
}

}  // namespace facetrain::cli

int main(int argc, char** argv) {
  using namespace facetrain;
  cli::Context ctx;
  ctx.argc = &argc;
  ctx.argv = &argv;

  CLI::App app{"facetrain: train, evaluate and export face-recognition embedding models"};
  app.set_help_all_flag("--help-all", "Show the help of every subcommand");
  app.add_flag("-v,--verbose", ctx.verbose, "Debug logging, and full C++ backtraces on errors");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, cli::Action>> actions;
  cli::add_version_command(app, ctx, actions);
  cli::add_config_command(app, ctx, actions);
  cli::add_env_command(app, ctx, actions);
  cli::add_train_command(app, ctx, actions);
  cli::add_embed_command(app, ctx, actions);
  cli::add_eval_command(app, ctx, actions);
  cli::add_export_command(app, ctx, actions);
  cli::add_data_command(app, ctx, actions);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all
    std::fprintf(stderr, "facetrain: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }
  if (ctx.verbose) {
    auto options = log::options();
    options.level = log::Level::kDebug;
    log::configure(options);
  }
  try {
    for (auto& [sub, action] : actions) {
      if (sub->parsed()) return action();
    }
    throw UsageError("no subcommand given; run facetrain --help");
  } catch (const std::exception& e) {
    return dist::finish_with_error(e, ctx.verbose);
  }
}
