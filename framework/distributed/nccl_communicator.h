#pragma once

#include <c10/core/Device.h>
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "framework/distributed/communicator.h"

namespace facetrain::dist {

// Communicator over NCCL for CUDA tensors on this rank's GPU (one GPU per rank, GPU number =
// local rank). Built collectively over an MPI communicator: rank 0 makes the NCCL unique id and
// broadcasts it over MPI (with the deadline), then every rank joins a non-blocking NCCL
// communicator. Collectives are enqueued on the current CUDA stream and this rank then waits,
// with a deadline, until they complete on the GPU: a watchdog loop polls the stream's event and
// ncclCommGetAsyncError, so an asynchronous NCCL error (a peer died, a network fault) or a missed
// deadline calls ncclCommAbort and throws DistError naming the collective, its sequence number,
// this rank and the timeout; the communicator then refuses further work and the caller aborts
// the job (finish_with_error → MPI_Abort). Tensors must be CUDA tensors on this rank's device.
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm bootstrap, c10::Device device, std::chrono::milliseconds timeout);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  // A communicator split off this one (ncclCommSplit), for a second stream of collectives.
  std::shared_ptr<Communicator> duplicate() override;

  c10::Device device() const { return device_; }

 private:
  struct Handle;  // the ncclComm_t, kept out of this header so it needs no nccl.h
  NcclCommunicator(std::unique_ptr<Handle> handle, int rank, int size, c10::Device device,
                   std::chrono::milliseconds timeout);

  std::uint64_t begin(const char* name, const at::Tensor* tensor);
  // Waits for the work just enqueued on the current stream; see the class comment.
  void wait(const std::string& what);
  void fail(const std::string& why);

  std::unique_ptr<Handle> handle_;
  int rank_ = 0;
  int size_ = 1;
  c10::Device device_;
  std::chrono::milliseconds timeout_;
  std::uint64_t sequence_ = 0;
  std::string broken_;
};

}  // namespace facetrain::dist
