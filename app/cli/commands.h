#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "framework/distributed/mpi_runtime.h"

namespace facetrain::cli {

// What every subcommand shares: the process's arguments (for MPI_Init) and the MPI runtime,
// started only by the subcommands that need it and kept alive until main() has handled any
// error, so a failing rank can still abort the job.
struct Context {
  int* argc = nullptr;
  char*** argv = nullptr;
  bool verbose = false;
  std::optional<dist::MpiRuntime> mpi;

  // Starts MPI once; its start and end (which wait for every rank) get `timeout_s`. `interface`
  // is dist.interface (FACETRAIN_IFNAME when empty).
  dist::MpiRuntime& start_mpi(double timeout_s = dist::MpiRuntime::kDefaultTimeout,
                              const std::string& interface = "");
};

// A subcommand's action, run after parsing; returns the exit code.
using Action = std::function<int()>;

// The options naming a backbone: --checkpoint DIR, or --weights FILE with --network NAME (see
// models::load_backbone, which takes the three strings).
void add_backbone_options(CLI::App* sub, std::string& checkpoint, std::string& weights,
                          std::string& network);

// Each adds its subcommand to `app` and returns the action to run when it is chosen.
void add_version_command(CLI::App& app, Context& ctx,
                         std::vector<std::pair<CLI::App*, Action>>& out);
void add_config_command(CLI::App& app, Context& ctx,
                        std::vector<std::pair<CLI::App*, Action>>& out);
void add_data_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out);
void add_embed_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out);
void add_train_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out);
void add_eval_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out);
void add_export_command(CLI::App& app, Context& ctx,
                        std::vector<std::pair<CLI::App*, Action>>& out);
void add_env_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out);

}  // namespace facetrain::cli
