#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace facetrain::dist {

enum class ReduceOp { kSum, kAvg, kMax, kMin };
const char* to_string(ReduceOp op);

// A collective in flight, returned by a communicator's *_async calls (c10d's Work). On the CPU
// back ends wait() blocks until this rank's part is complete, or throws DistError once the
// communicator's deadline has passed. On NCCL collectives are stream-ordered: wait() makes the
// caller's current CUDA stream wait for the collective and returns at once, and the
// communicator's watchdog thread, not the caller, enforces the deadline and aborts the
// communicator on an error (later calls then throw DistError naming the collective).
// synchronize() blocks the host until the collective is complete. Neither the input nor the
// output may be touched before wait() (the input is not copied).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual void synchronize() { wait(); }
  // After wait(): all_gather's rows of every rank; all_reduce's reduced tensor.
  const at::Tensor& result() const { return result_; }

 protected:
  at::Tensor result_;
};

// Work that was complete when it was returned.
class CompletedWork final : public Work {
 public:
  explicit CompletedWork(at::Tensor result) { result_ = std::move(result); }
  void wait() override {}
};

// A group of `size()` processes that exchange tensors in collectives. Every rank must call the
// same collectives in the same order with tensors of the same dtype (and, except for all_gather's
// first dimension, the same shape), and each has a deadline: if the other ranks do not arrive
// in time it fails with DistError naming the collective, this rank and the timeout, and the
// communicator refuses further work (the caller then aborts the job, see MpiRuntime::abort).
// The blocking calls return when the result may be used: on the CPU back ends when this rank's
// part is done, on NCCL when the caller's current stream is ordered after it.
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

  // In place: every rank's `tensor` becomes op over all ranks' tensors (result() is `tensor`).
  virtual std::shared_ptr<Work> all_reduce_async(at::Tensor& tensor,
                                                 ReduceOp op = ReduceOp::kSum) = 0;
  // The ranks' tensors concatenated along dim 0 in rank order, where every rank knows every
  // rank's row count: `rows[r]` for rank r (the same vector on every rank; a 0-dim tensor counts
  // as one row). No sizes are exchanged, so this is the form for steps whose batch sizes are
  // known (on NCCL, equal counts are one ncclAllGather with no host synchronisation).
  virtual std::shared_ptr<Work> all_gather_async(const at::Tensor& tensor,
                                                 const std::vector<std::int64_t>& rows) = 0;
  // Small host-side metadata (row counts, flags): every rank passes `values` of the same length
  // n; returns the size()·n values in rank order. Never touches a device.
  virtual std::vector<std::int64_t> host_all_gather(const std::vector<std::int64_t>& values) = 0;
  // `input`'s dim 0 must be size()·n; returns rows [rank·n, (rank+1)·n) of op over all ranks.
  virtual at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op = ReduceOp::kSum) = 0;
  // In place: every rank's `tensor` becomes root's.
  virtual void broadcast(at::Tensor& tensor, int root = 0) = 0;
  virtual void barrier() = 0;

  // A new communicator over the same ranks with its own message space, so collectives on it
  // (e.g. from a gradient-reduction thread) never match those issued on this one. Collective:
  // every rank must call it.
  virtual std::shared_ptr<Communicator> duplicate() = 0;

  // Blocking forms.
  void all_reduce(at::Tensor& tensor, ReduceOp op = ReduceOp::kSum) {
    all_reduce_async(tensor, op)->wait();
  }
  // Ranks may pass different dim-0 sizes; the trailing dims and the dtype must agree (checked:
  // a mismatch is a DistError naming the ranks, not corrupt memory). The sizes are exchanged on
  // the host first.
  at::Tensor all_gather(const at::Tensor& tensor);
  // Every rank passes the same shape: no exchange at all.
  at::Tensor all_gather_equal(const at::Tensor& tensor);

 protected:
  // For all_gather_async: `rows` must hold size() non-negative counts, this rank's being `mine`;
  // otherwise DistError naming `what`.
  void check_rows(const std::string& what, const std::vector<std::int64_t>& rows,
                  std::int64_t mine) const;
};

// A world of one process: every collective is the identity (all_gather and reduce_scatter
// return a copy), so single-process code runs the same calls as distributed code.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  std::shared_ptr<Work> all_reduce_async(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> all_gather_async(const at::Tensor& tensor,
                                         const std::vector<std::int64_t>& rows) override;
  std::vector<std::int64_t> host_all_gather(const std::vector<std::int64_t>& values) override {
    return values;
  }
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override {}
  std::shared_ptr<Communicator> duplicate() override {
    return std::make_shared<LocalCommunicator>();
  }
};

// A tensor's dtype and shape for messages: "float[32,512]".
std::string describe(const at::Tensor& t);

// Runs `step` on this rank, then every rank learns whether each one's succeeded (one
// host_all_gather): a rank whose step threw rethrows its own exception, the others raise a
// DistError naming the first rank that failed and `what`. So a failure on any rank, of any kind,
// ends the step on every rank at once, instead of leaving the others in their next collective.
void agree_on_every_rank(Communicator& comm, const std::string& what,
                         const std::function<void()>& step);

}  // namespace facetrain::dist
