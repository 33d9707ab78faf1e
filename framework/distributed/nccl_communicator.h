#pragma once

#include <c10/core/Device.h>
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "framework/distributed/communicator.h"

namespace facetrain::dist {

class PeerProbe;

// Communicator over NCCL for CUDA tensors on this rank's GPU (one GPU per rank, GPU number =
// local rank). Built collectively over an MPI communicator: rank 0 makes the NCCL unique id and
// broadcasts it over MPI (with the deadline), then every rank joins a non-blocking NCCL
// communicator. The MPI communicator stays for host-side metadata (host_all_gather).
//
// Collectives are stream-ordered, as c10d's ProcessGroupNCCL: each is enqueued on this
// communicator's own CUDA stream after an event recorded on the caller's current stream, and
// returns a Work whose wait() makes the current stream wait for it; the host never blocks on the
// GPU here. A non-blocking communicator may answer ncclInProgress to an enqueue: the call is
// then polled to completion (ncclCommGetAsyncError) before any further NCCL call, as NCCL
// requires. A watchdog thread polls every outstanding collective's completion event and
// ncclCommGetAsyncError: an asynchronous NCCL error (a peer died, a network fault) or a
// collective not complete within the timeout calls ncclCommAbort (which also releases any host
// thread blocked on the GPU), logs a DistError message naming the collective, its sequence
// number, this rank and the timeout, and marks the communicator broken: every later call and
// wait() throws that DistError, and the caller aborts the job (finish_with_error → MPI_Abort).
// Tensors must be CUDA tensors on this rank's device.
// With a `peers` probe, a timeout also names the ranks that did not answer (see PeerProbe).
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm bootstrap, c10::Device device, std::chrono::milliseconds timeout,
                   std::shared_ptr<PeerProbe> peers = nullptr);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  std::shared_ptr<Work> all_reduce_async(at::Tensor& tensor, ReduceOp op) override;
  // Equal row counts: one ncclAllGather straight into the output. Unequal ones: every rank's
  // rows padded to the largest count, gathered, and the padding dropped on the current stream.
  std::shared_ptr<Work> all_gather_async(const at::Tensor& tensor,
                                         const std::vector<std::int64_t>& rows) override;
  // Over the bootstrap MPI communicator: no GPU involved.
  std::vector<std::int64_t> host_all_gather(const std::vector<std::int64_t>& values) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  // A communicator split off this one (ncclCommSplit), with its own stream and watchdog.
  std::shared_ptr<Communicator> duplicate() override;

  c10::Device device() const { return device_; }

 private:
  struct State;  // the ncclComm_t, the stream, the watchdog: kept out of this header (no nccl.h)
  class Request;
  NcclCommunicator(std::shared_ptr<State> state, std::shared_ptr<Communicator> host, int rank,
                   int size, c10::Device device, std::chrono::milliseconds timeout);

  std::uint64_t begin(const char* name, const at::Tensor* tensor);

  std::shared_ptr<State> state_;
  std::shared_ptr<Communicator> host_;  // MPI, for host_all_gather
  int rank_ = 0;
  int size_ = 1;
  c10::Device device_;
  std::chrono::milliseconds timeout_;
  std::uint64_t sequence_ = 0;
  std::shared_ptr<PeerProbe> peers_;
};

}  // namespace facetrain::dist
