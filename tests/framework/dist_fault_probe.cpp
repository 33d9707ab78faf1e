// A job that goes wrong on purpose, for the fault tests (tests/framework/dist_fault_test.sh):
//   dist_fault_probe stall TIMEOUT_S RANK SLEEP_S   RANK sleeps before the second collective
//   dist_fault_probe throw TIMEOUT_S RANK           RANK throws a DataError before it
// It ends the way the facetrain executable does: finish_with_error on the first exception,
// which aborts every rank of the job.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "framework/core/error.h"
#include "framework/distributed/mpi_communicator.h"
#include "framework/distributed/mpi_runtime.h"
#include "framework/log/logger.h"

int main(int argc, char** argv) {
  using namespace facetrain;
  dist::MpiRuntime runtime(&argc, &argv);
  log::LogOptions options;
  options.rank = runtime.env().rank;
  options.world_size = runtime.env().world_size;
  log::configure(options);
  try {
    if (argc < 4) throw UsageError("usage: dist_fault_probe stall|throw TIMEOUT_S RANK [SLEEP_S]");
    const std::string mode = argv[1];
    const double timeout_s = std::stod(argv[2]);
    const int bad_rank = std::stoi(argv[3]);
    auto comm = dist::make_communicator("mpi", runtime.env(), timeout_s);
    at::Tensor t = at::ones({1024});
    comm->all_reduce(t, dist::ReduceOp::kSum);  // everybody is up
    if (comm->rank() == bad_rank) {
      if (mode == "stall") {
        ::sleep(static_cast<unsigned>(std::stoi(argv[4])));
      } else {
        throw DataError(
            fmt::format("shard-00003.h5: sample 17: injected failure on rank {}", comm->rank()));
      }
    }
    comm->all_reduce(t, dist::ReduceOp::kSum);
    log::info("second all_reduce done");
    return 0;
  } catch (const std::exception& e) {
    return dist::finish_with_error(e, false);
  }
}
