#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "framework/distributed/communicator.h"

namespace facetrain::dist {

class PeerProbe;

// Where this process sits in the job, as the launcher (mpirun, srun, or nothing) set it up.
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this host (MPI_COMM_TYPE_SHARED)
  int local_size = 1;
  std::string hostname;
  std::vector<std::string> hosts;  // hosts[r]: the host of rank r
  // The job's liveness channel, which names the silent ranks when a collective times out; null
  // in a world of one or when MPI offers no MPI_THREAD_MULTIPLE.
  std::shared_ptr<PeerProbe> peers;
};

// "4 ranks on 2 hosts: ranks 0-1 on node1, ranks 2-3 on node2".
std::string describe_placement(const LaunchEnv& env);

// Owns MPI for the life of the process: initialises it (MPI_THREAD_MULTIPLE when offered) unless
// already initialised, reads the launch environment, and finalises on destruction. A process
// started without a launcher is a world of one (MPI singleton). Create one per process, in main.
// MPI's start and its end wait for every rank and have no timeout of their own: each is given
// `timeout_s` (DeadlineGuard), so a stalled or lost peer ends the job instead of hanging it.
class MpiRuntime {
 public:
  static constexpr double kDefaultTimeout = 600.0;
  // `interface` (dist.interface, or FACETRAIN_IFNAME when empty) is the network interface of
  // MPI's TCP transport and NCCL: checked and set before MPI starts (see use_network_interface).
  MpiRuntime(int* argc, char*** argv, double timeout_s = kDefaultTimeout,
             const std::string& interface = "");
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  const LaunchEnv& env() const { return env_; }

  // True between MPI_Init and MPI_Finalize (of any MpiRuntime or of code outside facetrain).
  static bool active();
  // Ends every rank of the job with `code` (MPI_Abort on MPI_COMM_WORLD). Used when one rank
  // fails, so the others do not wait for it. A launcher that cannot reach every host may never
  // finish an abort: PMIx under srun keeps MPI_Abort waiting for its unreachable peers, and
  // mpirun waits for the daemon of a host that does not answer. So MPI_Abort gets kAbortGrace,
  // after which this process ends on its own, and under mpirun the launcher daemon that started
  // this process is ended too if it is still there kAbortGrace later (end_unless_gone). Falls
  // back to std::_Exit when MPI is not active.
  static constexpr double kAbortGrace = 3.0;
  [[noreturn]] static void abort(int code);

 private:
  LaunchEnv env_;
  bool owns_mpi_ = false;
  double timeout_s_;
};

// A warning for a job on several hosts under an mpirun that notices a lost host later than the
// collectives' deadline would, or nothing. mpirun notices from its out-of-band TCP keepalive,
// time + interval x probes (OpenMPI's defaults: 300 s + 9 x 20 s; scripts/launch.sh derives
// them from dist.timeout_s and mpirun passes them on as OMPI_MCA_oob_tcp_keepalive_*).
std::optional<std::string> launcher_warning(const LaunchEnv& env, double timeout_s);

// The communicator a run asked for: "local" (world of one), "mpi" (CPU tensors), "nccl" (CUDA
// tensors on GPU local_rank; a ConfigError in builds without CUDA), or "auto": mpi when the
// world has more than one rank, else local. Collectives time out after `timeout_s`.
std::shared_ptr<Communicator> make_communicator(std::string_view backend, const LaunchEnv& env,
                                                double timeout_s);

// The device of this rank: "cpu", "cuda" (GPU number local_rank) or "auto" (cuda when a GPU is
// visible, else cpu). Throws Error when a GPU is asked for and none is visible, or when the
// host runs more ranks than it has GPUs (naming the local rank and the GPU count).
c10::Device choose_device(std::string_view want, const LaunchEnv& env);

}  // namespace facetrain::dist

namespace facetrain::dist {

// The end of a process that caught `e` at the top: logs the one-line message (torch's C++
// backtrace only when `verbose`), and when this process is one rank of several, aborts the
// whole job so no other rank waits for it (MpiRuntime::abort). Returns the exit code (see
// exit_code_for) when it does not abort.
int finish_with_error(const std::exception& e, bool verbose);

}  // namespace facetrain::dist
