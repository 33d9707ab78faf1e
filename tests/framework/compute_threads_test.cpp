// Which threads run parallel tensor work: the plan's closed form, and a helper thread that runs
// an ATen parallel loop on itself alone while the compute thread keeps its team.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "framework/core/compute_threads.h"
#include "framework/core/error.h"

namespace facetrain {
namespace {

TEST(ComputeThreads, PlanPrefersTheConfigThenTheEnvironmentThenTheCoreShare) {
  EXPECT_EQ(plan_compute_threads(3, "5", 8, 2).intra_op, 3);
  EXPECT_EQ(plan_compute_threads(3, "5", 8, 2).reason, "train.cpu_threads");
  EXPECT_EQ(plan_compute_threads(0, "5", 8, 2).intra_op, 5);
  EXPECT_EQ(plan_compute_threads(0, "5", 8, 2).reason, "OMP_NUM_THREADS");
  for (const int cores : {1, 2, 3, 16}) {
    for (const int ranks : {1, 2, 4, 5}) {
      const auto plan = plan_compute_threads(0, nullptr, cores, ranks);
      EXPECT_EQ(plan.intra_op, std::max(1, cores / ranks)) << cores << " cores, " << ranks;
      EXPECT_EQ(plan_compute_threads(0, "", cores, ranks).intra_op, plan.intra_op);
    }
  }
  EXPECT_EQ(plan_compute_threads(0, nullptr, 2, 1).reason, "2 cores / 1 rank on this host");
  EXPECT_EQ(plan_compute_threads(0, nullptr, 2, 0).intra_op, 2);
}

TEST(ComputeThreads, ABadOmpNumThreadsIsAConfigError) {
  for (const char* bad : {"0", "-2", "two", "2x", "99999999999999999999"}) {
    try {
      plan_compute_threads(0, bad, 2, 1);
      ADD_FAILURE() << "accepted OMP_NUM_THREADS=" << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(ComputeThreads, AvailableCoresIsPositive) {
  EXPECT_GE(available_cores(), 1);
}

// The threads of this process, as the kernel counts them.
int os_threads() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

// Threads started while `thread` runs a large elementwise operation (one ATen parallel region
// inside libtorch), counted from inside it.
template <typename Start>
int threads_started_by_a_parallel_op(Start start_thread) {
  int started = -1;
  std::thread t = start_thread([&] {
    const int before = os_threads();
    const at::Tensor x = at::ones({1 << 22});
    const double total = (x * 2 + 1).sum().item<double>();
    EXPECT_EQ(total, 3.0 * (1 << 22));
    started = os_threads() - before;
  });
  t.join();
  return started;
}

TEST(ComputeThreads, HelperThreadsRunTensorOpsAloneAndLeaveTheComputeTeam) {
  use_compute_threads(3);
  ASSERT_EQ(intra_op_threads_here(), 3);
  // A plain thread takes the process-wide setting and starts its own team of 3 (two new
  // threads): what the loader and the gradient reducer did before they became helpers.
  const int settled = os_threads();
  EXPECT_GE(threads_started_by_a_parallel_op([](auto fn) { return std::thread(fn); }), 2);
  // That team ends with its thread, asynchronously: let it go before counting again.
  for (int i = 0; i < 1000 && os_threads() > settled; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(os_threads(), settled) << "the plain thread's team did not end";
  // A helper runs the same operation on itself, even after ATen initialised its thread.
  EXPECT_EQ(threads_started_by_a_parallel_op([](auto fn) { return helper_thread(fn); }), 0);
  int helper_threads = -1;
  std::thread helper = helper_thread([&] {
    at::parallel_for(0, 8, 1, [](std::int64_t, std::int64_t) {});
    helper_threads = intra_op_threads_here();
  });
  helper.join();
  EXPECT_EQ(helper_threads, 1);
  // The helper's setting is its own: the compute thread keeps its team of 3.
  EXPECT_EQ(intra_op_threads_here(), 3);
  use_compute_threads(1);
  EXPECT_EQ(intra_op_threads_here(), 1);
  EXPECT_THROW(use_compute_threads(0), Error);
}

}  // namespace
}  // namespace facetrain
