#pragma once

#include <string>
#include <thread>
#include <utility>

namespace facetrain {

// Which threads of a process run ATen's intra-op parallel regions (OpenMP teams, MKL's threads).
// Exactly one: the compute thread (the one that trains, evaluates or embeds) owns a team of
// `intra_op` threads; every helper thread (image decoding, gradient reduction, rendering) runs
// its ATen calls on itself alone. Otherwise each helper that touches a tensor op would start a
// team of its own, and on a machine with as many cores as the compute team those teams' spinning
// threads take the cores from the compute thread.
struct ComputeThreads {
  int intra_op = 1;
  std::string reason;  // where the number came from, for the log
};

// The compute thread's team size: `configured` (> 0, e.g. train.cpu_threads) wins, then the
// OMP_NUM_THREADS environment value `omp_env` (null or empty when unset; must be a positive
// integer), else the process's cores shared by the ranks on this host: max(1, cores / local_ranks).
// Throws ConfigError for an OMP_NUM_THREADS that is not a positive integer.
ComputeThreads plan_compute_threads(int configured, const char* omp_env, int cores,
                                    int local_ranks);

// The cores this process may run on (its CPU affinity mask; at least 1), and the host's.
int available_cores();
int online_cores();

// On the compute thread: a team of `n` (> 0) threads for ATen's parallel regions, with OpenMP
// and MKL agreeing on it (so MKL calls do not resize the OpenMP team back and forth).
void use_compute_threads(int n);

// On a helper thread, before its first tensor op: ATen's parallel regions run serially on it.
void make_helper_thread();

// The number of threads ATen's parallel regions would use if started on the calling thread.
int intra_op_threads_here();

// A std::thread that makes itself a helper thread before running `fn`.
template <typename Fn>
std::thread helper_thread(Fn&& fn) {
  return std::thread([fn = std::forward<Fn>(fn)]() mutable {
    make_helper_thread();
    fn();
  });
}

}  // namespace facetrain
