#include "framework/core/compute_threads.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "framework/core/error.h"

// From the OpenMP runtime LibTorch loads (linked by path, see framework/CMakeLists.txt) and from
// the MKL inside libtorch_cpu: both are per-thread settings.
extern "C" void omp_set_num_threads(int n);
extern "C" int MKL_Set_Num_Threads_Local(int n);  // mkl_set_num_threads_local in mkl_service.h

namespace facetrain {

ComputeThreads plan_compute_threads(int configured, const char* omp_env, int cores,
                                    int local_ranks) {
  if (configured > 0) return {configured, "train.cpu_threads"};
  if (omp_env != nullptr && *omp_env != 0) {
    errno = 0;
    char* end = nullptr;
    const long n = std::strtol(omp_env, &end, 10);
    if (errno != 0 || *end != 0 || n < 1 || n > 4096) {
      throw ConfigError(fmt::format(
          "OMP_NUM_THREADS = '{}': expected a positive number of threads (or unset it)", omp_env));
    }
    return {static_cast<int>(n), "OMP_NUM_THREADS"};
  }
  const int ranks = local_ranks < 1 ? 1 : local_ranks;
  const int share = cores / ranks;
  return {share < 1 ? 1 : share,
          fmt::format("{} core{} / {} rank{} on this host", cores, cores == 1 ? "" : "s", ranks,
                      ranks == 1 ? "" : "s")};
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

int online_cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

void use_compute_threads(int n) {
  if (n < 1) throw Error(fmt::format("use_compute_threads({}): needs at least one thread", n));
  at::set_num_threads(n);
}

void make_helper_thread() {
  // ATen sets a thread's team size when it first starts a parallel region there (from the
  // process-wide setting), and every shared library keeps its own "done" flag for that: doing
  // it now in libtorch (get_num_threads) and in this program (the inline lazy init) keeps the 1
  // below from being overwritten.
  at::get_num_threads();
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(1);
  MKL_Set_Num_Threads_Local(1);
}

int intra_op_threads_here() {
  return at::get_num_threads();
}

}  // namespace facetrain
