#include "framework/distributed/mpi_runtime.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <mpi.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "framework/core/error.h"
#include "framework/distributed/deadline_guard.h"
#include "framework/distributed/mpi_check.h"
#include "framework/distributed/mpi_communicator.h"
#ifdef FACETRAIN_WITH_CUDA
#include "framework/distributed/nccl_communicator.h"
#endif
#include "framework/log/logger.h"

namespace facetrain::dist {

MpiRuntime::MpiRuntime(int* argc, char*** argv, double timeout_s) : timeout_s_(timeout_s) {
  int initialized = 0;
  FT_CHECK_MPI(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    const DeadlineGuard guard("MPI_Init", timeout_s_, launcher_rank());
    FT_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
    owns_mpi_ = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  FT_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &env_.rank));
  FT_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &env_.world_size));
  MPI_Comm local = MPI_COMM_NULL;
  {
    const DeadlineGuard guard("MPI_Comm_split_type (finding the ranks on this host)", timeout_s_,
                              env_.rank);
    FT_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env_.rank, MPI_INFO_NULL,
                                     &local));
  }
  FT_CHECK_MPI(MPI_Comm_rank(local, &env_.local_rank));
  FT_CHECK_MPI(MPI_Comm_size(local, &env_.local_size));
  MPI_Comm_free(&local);
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  env_.hostname = host;
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) {
    const DeadlineGuard guard("MPI_Finalize", timeout_s_, env_.rank);
    MPI_Finalize();
  }
}

bool MpiRuntime::active() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void MpiRuntime::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::shared_ptr<Communicator> make_communicator(std::string_view backend, const LaunchEnv& env,
                                                double timeout_s) {
  std::string chosen(backend);
  if (chosen == "auto") {
    chosen = env.world_size > 1 ? "mpi" : "local";
  }
  const auto timeout =
      std::chrono::milliseconds(static_cast<long long>(std::llround(timeout_s * 1000)));
  if (chosen == "local") {
    if (env.world_size != 1) {
      throw ConfigError(
          fmt::format("dist.backend = \"local\" needs a world of one process, "
                      "the launcher started {}",
                      env.world_size));
    }
    return std::make_shared<LocalCommunicator>();
  }
  if (chosen == "mpi") {
    if (!MpiRuntime::active()) {
      throw ConfigError("dist.backend = \"mpi\": MPI is not initialised in this process");
    }
    return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, timeout);
  }
  if (chosen == "nccl") {
#ifdef FACETRAIN_WITH_CUDA
    if (!MpiRuntime::active()) {
      throw ConfigError("dist.backend = \"nccl\": MPI (which bootstraps NCCL) is not initialised");
    }
    return std::make_shared<NcclCommunicator>(MPI_COMM_WORLD, choose_device("cuda", env), timeout);
#else
    throw ConfigError(
        "dist.backend = \"nccl\": this build has no NCCL (configured without CUDA); use \"mpi\"");
#endif
  }
  throw ConfigError(
      fmt::format("dist.backend = \"{}\": expected auto, local, mpi or nccl", backend));
}

c10::Device choose_device(std::string_view want, const LaunchEnv& env) {
  if (want == "cpu") return c10::Device(c10::kCPU);
  const bool has_gpu = torch::cuda::is_available();
  if (want == "auto" && !has_gpu) return c10::Device(c10::kCPU);
  if (want != "auto" && want != "cuda") {
    throw ConfigError(fmt::format("device '{}': expected auto, cpu or cuda", want));
  }
  if (!has_gpu) {
    throw Error("device 'cuda' asked for, but no CUDA GPU is visible to this process");
  }
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  // A scheduler that binds one GPU to each task (srun --gpus-per-task=1) shows each process
  // only its own GPU.
  if (gpus == 1 && std::getenv("CUDA_VISIBLE_DEVICES") != nullptr) {
    return c10::Device(c10::kCUDA, 0);
  }
  if (env.local_rank >= gpus) {
    throw Error(
        fmt::format("rank {} is local rank {} on {}, but the host shows only {} GPU(s): "
                    "start at most one process per GPU",
                    env.rank, env.local_rank, env.hostname, gpus));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

}  // namespace facetrain::dist

namespace facetrain::dist {

int finish_with_error(const std::exception& e, bool verbose) {
  std::string message = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e); c10_error && !verbose) {
    message = c10_error->what_without_backtrace();
  }
  const int code = exit_code_for(e);
  int world = 1;
  if (MpiRuntime::active()) MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 1) {
    log::error("{} (aborting all {} ranks)", message, world);
    MpiRuntime::abort(code);
  }
  log::error("{}", message);
  return code;
}

}  // namespace facetrain::dist
