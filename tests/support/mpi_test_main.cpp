// gtest main for tests run as several real MPI processes (mpirun -np N binary): initialises MPI,
// lets only rank 0 print, and exits non-zero on every rank if any rank failed a test.

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>

#include "framework/distributed/mpi_communicator.h"
#include "framework/distributed/mpi_runtime.h"
#include "tests/support/world.h"

namespace facetrain::test {
namespace {
std::shared_ptr<dist::Communicator> g_world;
dist::LaunchEnv g_env;

// On ranks other than 0: print only failed assertions, tagged with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};
}  // namespace

std::shared_ptr<dist::Communicator> world() {
  return g_world;
}
const dist::LaunchEnv& launch_env() {
  return g_env;
}

}  // namespace facetrain::test

int main(int argc, char** argv) {
  using namespace facetrain;
  dist::MpiRuntime runtime(&argc, &argv);
  test::g_env = runtime.env();
  // Generous: these tests never stall on purpose (the fault tests have their own binary).
  test::g_world =
      std::make_shared<dist::MpiCommunicator>(MPI_COMM_WORLD, std::chrono::seconds(120));
  ::testing::InitGoogleTest(&argc, argv);
  if (runtime.env().rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new test::FailurePrinter(runtime.env().rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (runtime.env().rank == 0 && any_failed && !failed) {
    std::fprintf(stderr, "a test failed on another rank (see its [rank N] lines)\n");
  }
  test::g_world.reset();
  return any_failed;
}
