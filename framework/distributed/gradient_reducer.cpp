#include "framework/distributed/gradient_reducer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <mpi.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

#ifdef FACETRAIN_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "framework/core/compute_threads.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"

namespace facetrain::dist {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs a callback after a gradient accumulator has written its parameter's .grad.
class AfterAccumulate final : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulate(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(
      const torch::autograd::variable_list& outputs,
      const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

bool mpi_threads_ok() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return true;  // no MPI in this process: local or NCCL only
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided == MPI_THREAD_MULTIPLE;
}

}  // namespace

GradientReducer::GradientReducer(std::vector<at::Tensor> parameters,
                                 std::vector<at::Tensor> buffers,
                                 std::shared_ptr<Communicator> comm,
                                 const GradientReducerOptions& options)
    : parameters_(std::move(parameters)),
      buffers_(std::move(buffers)),
      comm_(std::move(comm)),
      options_(options) {
  if (!(options_.bucket_mb() > 0)) {
    throw ConfigError(fmt::format("dist.bucket_mb = {}: must be > 0", options_.bucket_mb()));
  }
  if (!(options_.first_bucket_mb() > 0)) {
    throw ConfigError(fmt::format("GradientReducer: first_bucket_mb = {}: must be > 0",
                                  options_.first_bucket_mb()));
  }
  if (options_.op() != ReduceOp::kSum && options_.op() != ReduceOp::kAvg) {
    throw Error("GradientReducer: the reduction must be sum or avg");
  }
  const auto limit = static_cast<std::int64_t>(options_.bucket_mb() * 1024 * 1024);
  const auto first_limit =
      std::min(limit, static_cast<std::int64_t>(options_.first_bucket_mb() * 1024 * 1024));
  // Reverse registration order, grouped by dtype and device: one flat buffer per bucket.
  bucket_of_.assign(parameters_.size(), 0);
  std::vector<std::size_t> order;
  for (std::size_t i = parameters_.size(); i-- > 0;) {
    if (parameters_[i].requires_grad()) order.push_back(i);
  }
  std::vector<std::vector<std::size_t>> groups;
  std::int64_t bytes = 0;
  for (const std::size_t i : order) {
    const auto& p = parameters_[i];
    const std::int64_t b = p.numel() * static_cast<std::int64_t>(p.element_size());
    const bool compatible = !groups.empty() &&
                            parameters_[groups.back().front()].scalar_type() == p.scalar_type() &&
                            parameters_[groups.back().front()].device() == p.device();
    const std::int64_t cap = groups.size() == 1 ? first_limit : limit;
    if (groups.empty() || !compatible || (bytes > 0 && bytes + b > cap)) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(i);
    bytes += b;
  }
  for (auto& members : groups) {
    Bucket bucket;
    std::int64_t total = 0;
    for (const std::size_t i : members) total += parameters_[i].numel();
    bucket.flat = at::zeros({total}, parameters_[members.front()].options().requires_grad(false));
    std::int64_t offset = 0;
    for (const std::size_t i : members) {
      auto& p = parameters_[i];
      // The gradient lives in the bucket: autograd accumulates into it in place.
      p.mutable_grad() = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      offset += p.numel();
      bucket_of_[i] = buckets_.size();
    }
    bucket.members = std::move(members);
    buckets_.push_back(std::move(bucket));
  }

  if (options_.overlap() && comm_->size() > 1 && !buckets_.empty()) {
    if (comm_->backend() == "mpi" && !mpi_threads_ok()) {
      log::warn(
          "MPI does not offer MPI_THREAD_MULTIPLE: gradients are reduced after backward, "
          "without overlap");
      options_.overlap(false);
    }
  }
  if (options_.overlap() && comm_->size() > 1 && !buckets_.empty()) {
    worker_comm_ = comm_->duplicate();
    for (const std::size_t i : order) {
      auto accumulator = torch::autograd::impl::grad_accumulator(parameters_[i]);
      accumulator->add_post_hook(std::make_unique<AfterAccumulate>([this, i] { on_gradient(i); }));
      accumulators_.push_back(std::move(accumulator));
    }
    worker_ = helper_thread([this] { worker_loop(); });
  }
}

GradientReducer::~GradientReducer() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
}

std::int64_t GradientReducer::bucket_bytes(std::int64_t i) const {
  const auto& flat = buckets_.at(static_cast<std::size_t>(i)).flat;
  return flat.numel() * static_cast<std::int64_t>(flat.element_size());
}

void GradientReducer::broadcast_from_root() {
  at::NoGradGuard no_grad;
  for (auto& p : parameters_) {
    at::Tensor data = p.detach();
    comm_->broadcast(data, 0);
  }
  for (auto& b : buffers_) {
    at::Tensor data = b.detach();
    comm_->broadcast(data, 0);
  }
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
}

void GradientReducer::prepare(bool arm) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    auto& bucket = buckets_[b];
    bucket.flat.zero_();
    bucket.pending = static_cast<std::int64_t>(bucket.members.size());
    bucket.ready = false;
    // Someone may have replaced a .grad (e.g. an optimizer's zero_grad(set_to_none)): point it
    // back into the bucket.
    std::int64_t offset = 0;
    for (const std::size_t i : bucket.members) {
      auto& p = parameters_[i];
      const auto& g = p.grad();
      if (!g.defined() || g.data_ptr() != static_cast<char*>(bucket.flat.data_ptr()) +
                                              offset * bucket.flat.element_size()) {
        p.mutable_grad() = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      }
      offset += p.numel();
    }
  }
  next_to_reduce_ = 0;
  reduced_ = 0;
  comm_seconds_ = 0.0;
  armed_ = arm;
}

void GradientReducer::on_gradient(std::size_t parameter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // a backward outside prepare()/finish(): nothing to reduce
  auto& bucket = buckets_[bucket_of_[parameter]];
  if (--bucket.pending == 0) mark_ready(bucket_of_[parameter]);
}

// Called with mutex_ held.
void GradientReducer::mark_ready(std::size_t b) {
  auto& bucket = buckets_[b];
  if (bucket.ready) return;
  bucket.ready = true;
#ifdef FACETRAIN_WITH_CUDA
  if (bucket.flat.is_cuda()) {
    auto event = std::make_shared<at::cuda::CUDAEvent>();
    event->record(c10::cuda::getCurrentCUDAStream(bucket.flat.device().index()));
    bucket.produced = event;
  }
#endif
  cv_.notify_all();
}

void GradientReducer::reduce(std::size_t b) {
  auto& bucket = buckets_[b];
  auto& comm = worker_comm_ ? *worker_comm_ : *comm_;
  const auto start = Clock::now();
#ifdef FACETRAIN_WITH_CUDA
  if (bucket.flat.is_cuda()) {
    const auto device = bucket.flat.device().index();
    const auto compute = c10::cuda::getCurrentCUDAStream(device);
    auto produced = std::static_pointer_cast<at::cuda::CUDAEvent>(bucket.produced);
    if (!produced) {
      produced = std::make_shared<at::cuda::CUDAEvent>();
      produced->record(compute);
    }
    at::cuda::CUDAEvent reduced;
    {
      // A side stream, so the reduction overlaps the backward kernels still being queued.
      c10::cuda::CUDAStreamGuard guard(c10::cuda::getStreamFromPool(false, device));
      const auto side = c10::cuda::getCurrentCUDAStream(device);
      produced->block(side);
      comm.all_reduce(bucket.flat, options_.op());
      reduced.record(side);
    }
    // The optimizer, on the compute stream, reads the bucket only after the reduction.
    reduced.block(compute);
    comm_seconds_ += seconds_since(start);
    return;
  }
#endif
  comm.all_reduce(bucket.flat, options_.op());
  comm_seconds_ += seconds_since(start);
}

void GradientReducer::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] {
      return stopping_ ||
             (armed_ && next_to_reduce_ < buckets_.size() && buckets_[next_to_reduce_].ready);
    });
    if (stopping_) return;
    const std::size_t b = next_to_reduce_++;
    lock.unlock();
    std::exception_ptr failure;
    try {
      reduce(b);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !error_) error_ = failure;
    ++reduced_;
    cv_.notify_all();
  }
}

void GradientReducer::broadcast_buffers() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> pending;
  for (const auto& buffer : buffers_) {
    // Integer buffers (BatchNorm's num_batches_tracked) count the same steps on every rank.
    if (buffer.is_floating_point() && buffer.numel() > 0) pending.push_back(buffer.detach());
  }
  while (!pending.empty()) {
    const auto dtype = pending.front().scalar_type();
    const auto device = pending.front().device();
    std::vector<at::Tensor> group, rest, flat;
    for (auto& b : pending) {
      if (b.scalar_type() == dtype && b.device() == device) {
        group.push_back(b);
        flat.push_back(b.reshape({-1}));
      } else {
        rest.push_back(b);
      }
    }
    at::Tensor packed = at::cat(flat);
    comm_->broadcast(packed, 0);
    std::int64_t offset = 0;
    for (auto& b : group) {
      b.copy_(packed.narrow(0, offset, b.numel()).view_as(b));
      offset += b.numel();
    }
    pending = std::move(rest);
  }
}

void GradientReducer::finish() {
  const auto start = Clock::now();
  if (comm_->size() > 1) {
    if (worker_.joinable()) {
      std::unique_lock<std::mutex> lock(mutex_);
      // Parameters backward did not reach this step still take part (with zero gradients).
      for (std::size_t b = 0; b < buckets_.size(); ++b) mark_ready(b);
      cv_.wait(lock, [&] { return reduced_ == buckets_.size() || error_ != nullptr; });
      if (error_) {
        // The worker may still be inside a later bucket's collective; the job is aborted by
        // the caller, which must not touch the gradients now.
        armed_ = false;
        std::rethrow_exception(error_);
      }
    } else {
      for (std::size_t b = 0; b < buckets_.size(); ++b) reduce(b);
    }
    broadcast_buffers();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  last_comm_seconds_ = comm_seconds_;
  last_wait_seconds_ = seconds_since(start);
}

}  // namespace facetrain::dist
