#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace facetrain::dist {

enum class ReduceOp { kSum, kAvg, kMax, kMin };
const char* to_string(ReduceOp op);

// A group of `size()` processes that exchange tensors in collectives. Every rank must call the
// same collectives in the same order with tensors of the same dtype (and, except for all_gather's
// first dimension, the same shape). Each call blocks until this rank's part is complete, so the
// tensor may be used as soon as it returns, and has a deadline: if the other ranks do not arrive
// in time the call throws DistError naming the collective, this rank and the timeout, and the
// communicator refuses further work (the caller then aborts the job, see MpiRuntime::abort).
//
// Supported dtypes: float32, float64, bfloat16, float16, int32, int64, uint8. kAvg needs a
// floating dtype. Non-contiguous tensors are handled (through a contiguous copy); empty tensors
// are allowed. Passed explicitly (std::shared_ptr<Communicator>), never a singleton.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "local", "mpi" or "nccl".
  virtual std::string backend() const = 0;

  // In place: every rank's `tensor` becomes op over all ranks' tensors.
  virtual void all_reduce(at::Tensor& tensor, ReduceOp op = ReduceOp::kSum) = 0;
  // The ranks' tensors concatenated along dim 0 in rank order. Ranks may pass different dim-0
  // sizes (a 0-dim tensor counts as one row); the trailing dims and the dtype must agree.
  virtual at::Tensor all_gather(const at::Tensor& tensor) = 0;
  // `input`'s dim 0 must be size()·n; returns rows [rank·n, (rank+1)·n) of op over all ranks.
  virtual at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op = ReduceOp::kSum) = 0;
  // In place: every rank's `tensor` becomes root's.
  virtual void broadcast(at::Tensor& tensor, int root = 0) = 0;
  virtual void barrier() = 0;

  // A new communicator over the same ranks with its own message space, so collectives on it
  // (e.g. from a gradient-reduction thread) never match those issued on this one. Collective:
  // every rank must call it.
  virtual std::shared_ptr<Communicator> duplicate() = 0;
};

// A world of one process: every collective is the identity (all_gather and reduce_scatter
// return a copy), so single-process code runs the same calls as distributed code.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override {}
  std::shared_ptr<Communicator> duplicate() override {
    return std::make_shared<LocalCommunicator>();
  }
};

}  // namespace facetrain::dist
