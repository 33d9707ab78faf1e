#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace facetrain::dist {

// A deadline for a blocking call that has no timeout of its own (MPI_Init, MPI_Comm_dup,
// MPI_Comm_split_type, MPI_Finalize: each waits for every rank). While the guard lives, a
// watcher thread waits; if the guard is not destroyed within `timeout_s`, the process prints
// "rank R: WHAT did not finish within T s …" and ends with exit code 1, so the launcher ends the
// job instead of it hanging on a stalled or lost peer.
class DeadlineGuard {
 public:
  DeadlineGuard(std::string what, double timeout_s, int rank);
  ~DeadlineGuard();
  DeadlineGuard(const DeadlineGuard&) = delete;
  DeadlineGuard& operator=(const DeadlineGuard&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  std::thread watcher_;
};

// This process's rank as the launcher announces it before MPI starts (OMPI_COMM_WORLD_RANK,
// PMI_RANK, SLURM_PROCID), or -1.
int launcher_rank();

}  // namespace facetrain::dist
