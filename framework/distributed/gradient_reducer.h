#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "framework/distributed/communicator.h"

namespace facetrain::dist {

struct GradientReducerOptions {
  // Target bytes per bucket (arcface_torch/DDP default 25 MB); a parameter larger than this gets
  // a bucket of its own. Must be > 0.
  TORCH_ARG(double, bucket_mb) = 25.0;
  // The first bucket (the last layers' gradients, ready first in backward) is capped lower, so
  // its reduction starts early: DDP's first_bucket_bytes_cap, 1 MiB. Must be > 0.
  TORCH_ARG(double, first_bucket_mb) = 1.0;
  // Reduce buckets while backward is still running (from autograd hooks, on a worker thread
  // with its own communicator). Off: every bucket is reduced in finish(), after backward.
  TORCH_ARG(bool, overlap) = true;
  // kSum: the loss on every rank is already the global-batch loss's share of this rank (as with
  // Partial FC, whose all-gather spreads each sample's gradient to its own rank), so summing
  // gives the full-batch gradient. kAvg: each rank's loss is a mean over its own samples (plain
  // data parallelism), so averaging does.
  TORCH_ARG(ReduceOp, op) = ReduceOp::kSum;
};

// Data-parallel gradient synchronisation for a model's parameters, in the manner of PyTorch's
// DDP reducer. Parameters are grouped, in reverse registration order (roughly the order backward
// produces their gradients), into buckets of about bucket_mb; each parameter's .grad is made a
// view into its bucket's flat buffer, so a bucket is all-reduced in place with no packing copy.
// With overlap, an autograd post-hook on each parameter's gradient accumulator counts the
// parameters done; a full bucket is handed to a worker thread that reduces the buckets strictly
// in index order (the same order on every rank) on a duplicate of the communicator, while
// backward goes on. On CUDA the worker's collective runs on a side stream that first waits for
// an event recorded where the gradients were produced, and the compute stream waits for the
// reduction before finish() returns. No gradient is read or written by the caller between
// prepare() and finish(), so no tensor is touched while its collective is in flight.
//
// Use: construct once (collective), broadcast_from_root() (collective), then per step:
// prepare(); loss.backward(); finish(); optimizer step. Parameters that get no gradient in a
// step contribute zeros. All ranks must hold the same parameters (shapes, order, dtypes).
class GradientReducer {
 public:
  GradientReducer(std::vector<at::Tensor> parameters, std::vector<at::Tensor> buffers,
                  std::shared_ptr<Communicator> comm, const GradientReducerOptions& options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Every rank's parameters and buffers become rank 0's (at start, and after loading weights).
  void broadcast_from_root();
  // Zeroes the gradient buckets and, with `arm`, arms the hooks. Call before backward. With
  // gradient accumulation, prepare(false) before the first micro-batch lets gradients accumulate
  // locally, and arm() before the last one reduces their sum during its backward.
  void prepare(bool arm = true);
  void arm();
  // Waits until every bucket is reduced (reducing those backward did not complete), re-raises a
  // worker's error, and makes the buffers (e.g. BatchNorm statistics) rank 0's. After backward.
  void finish();

  std::int64_t num_buckets() const { return static_cast<std::int64_t>(buckets_.size()); }
  std::int64_t bucket_bytes(std::int64_t i) const;
  // Seconds spent in collectives in the last finish() window, measured on the reducing thread
  // (overlapped with backward when overlap is on).
  double last_comm_seconds() const { return last_comm_seconds_; }
  // Seconds finish() waited for the reduction after backward had ended.
  double last_wait_seconds() const { return last_wait_seconds_; }

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<std::size_t> members;  // indices into parameters_
    std::int64_t pending = 0;          // members whose gradient is not yet final this step
    bool ready = false;                // handed to the reduction this step
#ifdef FACETRAIN_WITH_CUDA
    std::shared_ptr<void> produced;  // CUDA event: gradients written on the compute stream
#endif
  };

  void on_gradient(std::size_t parameter);
  void mark_ready(std::size_t bucket);
  void reduce(std::size_t bucket);
  void worker_loop();
  // Every rank's floating buffers become rank 0's, in one broadcast per dtype and device.
  void broadcast_buffers();

  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> buffers_;
  std::shared_ptr<Communicator> comm_;         // the caller's: broadcasts, non-overlapped work
  std::shared_ptr<Communicator> worker_comm_;  // the worker thread's own
  GradientReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;
  std::vector<std::shared_ptr<void>> accumulators_;  // keeps the hooked grad accumulators alive

  std::mutex mutex_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool stopping_ = false;
  std::size_t next_to_reduce_ = 0;  // worker's cursor this step
  std::size_t reduced_ = 0;         // buckets finished this step
  std::exception_ptr error_;
  double comm_seconds_ = 0.0;
  double last_comm_seconds_ = 0.0;
  double last_wait_seconds_ = 0.0;
  std::thread worker_;
};

}  // namespace facetrain::dist
