#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "framework/distributed/communicator.h"
#include "framework/distributed/flight_recorder.h"

namespace facetrain::dist {

class PeerProbe;

// Communicator over MPI for CPU tensors. Each collective is issued non-blocking (MPI_Iallreduce,
// MPI_Iallgatherv, MPI_Ireduce_scatter_block, MPI_Ibcast, MPI_Ibarrier) and returns a Work whose
// wait() polls it until it completes or `timeout` has passed since it was issued; on timeout it
// throws DistError and the communicator is marked broken. Several works may be in flight at once
// (they progress together while any is waited for). bfloat16 and float16 are reduced in float32
// (exact for sums of up to 2^16 terms of bfloat16 values). Works on its own duplicate of `comm`,
// with errors returned, not fatal. Its flight recorder keeps the last collectives; with a
// `peers` probe a timeout asks the other ranks where they are, and its DistError names the ones
// that did not answer (rank and host).
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::chrono::milliseconds timeout,
                  std::shared_ptr<PeerProbe> peers = nullptr);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  std::shared_ptr<Work> all_reduce_async(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> all_gather_async(const at::Tensor& tensor,
                                         const std::vector<std::int64_t>& rows) override;
  std::vector<std::int64_t> host_all_gather(const std::vector<std::int64_t>& values) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  std::shared_ptr<Communicator> duplicate() override;

  std::chrono::milliseconds timeout() const { return timeout_; }
  const FlightRecorder& recorder() const { return *recorder_; }

 private:
  class Request;
  using Clock = std::chrono::steady_clock;

  // Polls `request` until done; throws DistError naming `what` once `deadline` has passed.
  void wait(MPI_Request& request, const std::string& what, Clock::time_point deadline);
  // Issues `issue` (a non-blocking MPI call on a part of `work`, returning its MPI code) for each
  // run of at most INT_MAX/2 elements of contiguous `work` (MPI counts are ints).
  std::vector<MPI_Request> in_chunks(const at::Tensor& work,
                                     const std::function<int(void*, int, MPI_Request*)>& issue);
  // Throws if an earlier collective failed; returns the sequence number of this one.
  std::uint64_t begin(const char* name);
  // The DistError of collective `what` timing out: which ranks did not join, this rank's history.
  [[noreturn]] void timed_out(const std::string& what);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_;
  std::uint64_t sequence_ = 0;
  std::string broken_;  // why the communicator can no longer be used; empty while healthy
  std::shared_ptr<PeerProbe> peers_;
  std::shared_ptr<FlightRecorder> recorder_;
};

}  // namespace facetrain::dist
