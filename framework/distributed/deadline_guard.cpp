#include "framework/distributed/deadline_guard.h"

#include "framework/core/checked.h"
#include "framework/core/error.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace facetrain::dist {

DeadlineGuard::DeadlineGuard(std::string what, double timeout_s, int rank) {
  // Checked here, where a bad deadline can throw; in the watcher it would terminate.
  const auto deadline = checked::seconds<DistError>(timeout_s, what);
  watcher_ = std::thread([this, what = std::move(what), timeout_s, deadline, rank] {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool finished = done_changed_.wait_for(lock, deadline,
                                                 [this] { return done_; });
    if (finished) return;
    std::fprintf(stderr,
                 "facetrain: rank %d: %s did not finish within %.1f s: a peer rank is stalled or "
                 "gone; ending this process\n",
                 rank, what.c_str(), timeout_s);
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(1);
  });
}

DeadlineGuard::~DeadlineGuard() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  done_changed_.notify_all();
  watcher_.join();
}

int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(name)) return std::atoi(v);
  }
  return -1;
}

}  // namespace facetrain::dist
