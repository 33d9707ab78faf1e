#include "framework/core/checked.h"
#include "framework/distributed/mpi_runtime.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <mpi.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <set>
#include <thread>

#include "framework/core/error.h"
#include "framework/distributed/deadline_guard.h"
#include "framework/distributed/launcher_daemon.h"
#include "framework/distributed/mpi_check.h"
#include "framework/distributed/mpi_communicator.h"
#include "framework/distributed/network_interface.h"
#include "framework/distributed/peer_probe.h"
#ifdef FACETRAIN_WITH_CUDA
#include "framework/distributed/nccl_communicator.h"
#endif
#include "framework/log/logger.h"

namespace facetrain::dist {
namespace {

constexpr int kHostBytes = 64;

// Every rank's host name in rank order: one all-gather, under the start-up deadline.
std::vector<std::string> gather_hosts(const std::string& mine, int world, double timeout_s,
                                      int rank) {
  std::array<char, kHostBytes> own{};
  mine.copy(own.data(), kHostBytes - 1);
  std::vector<char> all(static_cast<std::size_t>(kHostBytes) * world, 0);
  {
    const DeadlineGuard guard("MPI_Allgather (the ranks' host names)", timeout_s, rank);
    FT_CHECK_MPI(MPI_Allgather(own.data(), kHostBytes, MPI_CHAR, all.data(), kHostBytes,
                               MPI_CHAR, MPI_COMM_WORLD));
  }
  std::vector<std::string> hosts;
  for (int r = 0; r < world; ++r) {
    const char* name = all.data() + static_cast<std::size_t>(r) * kHostBytes;
    hosts.emplace_back(name, strnlen(name, kHostBytes));
  }
  return hosts;
}

bool thread_multiple() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided == MPI_THREAD_MULTIPLE;
}

// An OMPI_MCA_* integer setting, or `fallback` when unset or not a number.
long mca_integer(const char* name, long fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == 0) return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  return (*end == 0 && value >= 0) ? value : fallback;
}

// How long mpirun takes to notice a host it can no longer reach; unset under srun and without a
// launcher.
std::optional<std::chrono::seconds> lost_host_detection() {
  // mpirun tells its processes where it is; srun and a plain start do not.
  if (std::getenv("OMPI_MCA_orte_hnp_uri") == nullptr) return std::nullopt;
  // OpenMPI's defaults: 300 s idle, then 9 probes 20 s apart.
  const long idle = mca_integer("OMPI_MCA_oob_tcp_keepalive_time", 300);
  const long interval = mca_integer("OMPI_MCA_oob_tcp_keepalive_intvl", 20);
  const long probes = mca_integer("OMPI_MCA_oob_tcp_keepalive_probes", 9);
  return std::chrono::seconds(idle + interval * probes);
}

}  // namespace

std::string describe_placement(const LaunchEnv& env) {
  if (env.hosts.empty()) return fmt::format("{} rank(s) on {}", env.world_size, env.hostname);
  std::vector<int> ranks(env.hosts.size());
  std::iota(ranks.begin(), ranks.end(), 0);
  const std::set<std::string> distinct(env.hosts.begin(), env.hosts.end());
  return fmt::format("{} rank{} on {} host{}: {}", env.hosts.size(),
                     env.hosts.size() == 1 ? "" : "s", distinct.size(),
                     distinct.size() == 1 ? "" : "s", ranks_by_host(ranks, env.hosts));
}

std::optional<std::string> launcher_warning(const LaunchEnv& env, double timeout_s) {
  const std::set<std::string> distinct(env.hosts.begin(), env.hosts.end());
  const auto detection = lost_host_detection();
  if (distinct.size() < 2 || !detection || static_cast<double>(detection->count()) <= timeout_s) {
    return std::nullopt;
  }
  return fmt::format(
      "this job spans {} hosts under mpirun, whose daemons notice a lost host after {} s "
      "(OpenMPI's out-of-band TCP keepalive), later than dist.timeout_s = {:g} s ends the job. "
      "scripts/launch.sh derives the keepalive from dist.timeout_s; with plain mpirun set "
      "OMPI_MCA_oob_tcp_keepalive_time/_intvl/_probes (docs/multi-node.md)",
      distinct.size(), detection->count(), timeout_s);
}

MpiRuntime::MpiRuntime(int* argc, char*** argv, double timeout_s, const std::string& interface)
    : timeout_s_(timeout_s) {
  use_network_interface(chosen_interface(interface));
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
  env_.hostname = host_name();
  env_.hosts = gather_hosts(env_.hostname, env_.world_size, timeout_s_, env_.rank);
  if (env_.world_size > 1 && thread_multiple()) {
    const DeadlineGuard guard("MPI_Comm_dup (the liveness channel)", timeout_s_, env_.rank);
    env_.peers = std::make_shared<PeerProbe>(MPI_COMM_WORLD, env_.hosts);
  }
}

MpiRuntime::~MpiRuntime() {
  if (env_.peers) env_.peers->stop();
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
  // Launchers forward a rank's output asynchronously and drop what is still in flight when the
  // job is torn down (srun loses the failing rank's own message): give it a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  if (active()) {
    if (const auto daemon = launcher_daemon()) {
      end_unless_gone(*daemon, std::chrono::milliseconds(static_cast<int>(kAbortGrace * 1000)));
    }
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const DeadlineGuard guard("MPI_Abort", kAbortGrace, rank);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::_Exit(code);
}

std::shared_ptr<Communicator> make_communicator(std::string_view backend, const LaunchEnv& env,
                                                double timeout_s) {
  std::string chosen(backend);
  if (chosen == "auto") {
    chosen = env.world_size > 1 ? "mpi" : "local";
  }
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      checked::seconds<DistError>(timeout_s, "the collectives' deadline (dist.timeout_s)"));
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
    return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, timeout, env.peers);
  }
  if (chosen == "nccl") {
#ifdef FACETRAIN_WITH_CUDA
    if (!MpiRuntime::active()) {
      throw ConfigError("dist.backend = \"nccl\": MPI (which bootstraps NCCL) is not initialised");
    }
    return std::make_shared<NcclCommunicator>(MPI_COMM_WORLD, choose_device("cuda", env), timeout,
                                              env.peers);
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
