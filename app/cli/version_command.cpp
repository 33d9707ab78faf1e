#include <fmt/format.h>
#include <mpi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "app/cli/commands.h"
#include "app/cli/version.h"
#include "framework/distributed/nccl_info.h"

namespace facetrain::cli {

void add_version_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand("version", "Print facetrain's version and its libraries'");
  out.emplace_back(sub, [] {
    char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int length = 0;
    MPI_Get_library_version(mpi_version, &length);
    std::string mpi(mpi_version, static_cast<std::size_t>(length));
    mpi = mpi.substr(0, mpi.find_first_of(",\n"));
    fmt::print("facetrain {}\n", kVersion);
    fmt::print("  torch {} ({} build)\n", TORCH_VERSION, kWithCuda ? "CUDA" : "CPU-only");
    fmt::print("  FACETRAIN_WITH_CUDA: {}\n", kWithCuda ? "on" : "off");
#ifdef FACETRAIN_WITH_CUDA
    fmt::print("  NCCL: {}\n", dist::nccl_version());
#endif
    fmt::print("  GPUs visible: {}\n",
               torch::cuda::is_available() ? torch::cuda::device_count() : 0);
    fmt::print("  MPI: {}\n", mpi);
    return 0;
  });
}

}  // namespace facetrain::cli
