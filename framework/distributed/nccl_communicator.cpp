#include "framework/distributed/nccl_communicator.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nccl.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "framework/core/error.h"
#include "framework/distributed/mpi_communicator.h"
#include "framework/distributed/peer_probe.h"
#include "framework/log/logger.h"

namespace facetrain::dist {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_nccl(ncclResult_t rc, const char* call, const char* file, int line,
                             ncclComm_t comm) {
  const char* last = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  throw DistError(fmt::format("{} failed at {}:{}: {}{}{}", call, file, line,
                              ncclGetErrorString(rc), last && *last ? ": " : "", last ? last : ""));
}

}  // namespace

// Every NCCL call is checked; ncclInProgress is the normal answer of a non-blocking comm (the
// caller then polls it to completion).
#define FT_CHECK_NCCL(call, comm)                                      \
  do {                                                                 \
    const ncclResult_t ft_nccl_rc_ = (call);                           \
    if (ft_nccl_rc_ != ncclSuccess && ft_nccl_rc_ != ncclInProgress) { \
      throw_nccl(ft_nccl_rc_, #call, __FILE__, __LINE__, comm);        \
    }                                                                  \
  } while (false)

namespace {

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kHalf:
      return ncclFloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    default:
      throw DistError(
          fmt::format("NCCL communicator: unsupported dtype {}", c10::toString(t.scalar_type())));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

// Polls a non-blocking communicator until its pending operation (init, split, an enqueue that
// answered ncclInProgress, finalize) is done; throws on an error or past the deadline (the
// caller then aborts the communicator).
void settle(ncclComm_t comm, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    FT_CHECK_NCCL(ncclCommGetAsyncError(comm, &state), comm);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) throw_nccl(state, what.c_str(), __FILE__, __LINE__, comm);
    if (Clock::now() > deadline) {
      throw DistError(fmt::format("{}: NCCL did not finish in time", what));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

// For an in-place collective run on `work`, a contiguous copy of `tensor` (or `tensor` itself):
// what writes the result back on the caller's stream after it, or nothing.
std::function<at::Tensor()> copy_back(const at::Tensor& work, const at::Tensor& tensor) {
  if (work.is_same(tensor)) return nullptr;
  return [work, tensor]() mutable { return tensor.copy_(work); };
}

}  // namespace

// What the communicator and its outstanding works share: the NCCL communicator, its stream, and
// the watchdog that enforces deadlines and watches for asynchronous errors.
struct NcclCommunicator::State {
  struct Pending {
    std::shared_ptr<at::cuda::CUDAEvent> done;
    std::string what;
    Clock::time_point deadline;
  };

  State(ncclComm_t c, c10::Device d, int r, std::chrono::milliseconds t,
        std::shared_ptr<PeerProbe> p)
      : comm(c),
        device(d),
        rank(r),
        timeout(t),
        peers(std::move(p)),
        stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, d.index())) {
    watchdog = std::thread([this] { watch(); });
  }

  ~State() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    changed.notify_all();
    watchdog.join();
    if (comm == nullptr) return;
    if (broken.empty()) {
      try {
        FT_CHECK_NCCL(ncclCommFinalize(comm), comm);
        settle(comm, Clock::now() + timeout, "ncclCommFinalize");
        ncclCommDestroy(comm);
      } catch (const std::exception& e) {
        log::warn("NCCL communicator on rank {}: {}", rank, e.what());
        ncclCommAbort(comm);
      }
    }
    // A broken communicator was aborted by the watchdog or by settle().
  }

  // Throws the failure that broke the communicator, if any.
  void check(const char* name) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!broken.empty()) {
      throw DistError(
          fmt::format("{} on rank {}: the NCCL communicator is unusable after an "
                      "earlier failure: {}",
                      name, rank, broken));
    }
  }

  // Called with `mutex` held.
  void abort_locked(const std::string& why) {
    if (!broken.empty()) return;
    broken = why;
    log::error("{}", why);
    // Releases every host thread blocked on this communicator's kernels.
    ncclCommAbort(comm);
    comm = nullptr;
    pending.clear();
  }

  void watch() {
    std::unique_lock<std::mutex> lock(mutex);
    while (!stopping) {
      changed.wait_for(lock, std::chrono::milliseconds(2));
      if (stopping || comm == nullptr) continue;
      try {
        while (!pending.empty() && pending.front().done->query()) pending.pop_front();
      } catch (const std::exception& e) {
        // A CUDA error while waiting (a sticky device fault): this thread must not throw.
        abort_locked(
            fmt::format("{} on rank {}: CUDA error: {}",
                        pending.empty() ? std::string("NCCL communicator") : pending.front().what,
                        rank, e.what()));
        continue;
      }
      if (!pending.empty() && Clock::now() > pending.front().deadline) {
        const std::string who =
            peers ? peers->account(PeerProbe::grace(timeout)) : "another rank did not join";
        abort_locked(fmt::format("{} on rank {} timed out after {:.1f} s (dist.timeout_s): {}",
                                 pending.front().what, rank,
                                 static_cast<double>(timeout.count()) / 1000.0, who));
        continue;
      }
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm, &async) == ncclSuccess && async != ncclSuccess &&
          async != ncclInProgress) {
        abort_locked(
            fmt::format("{} on rank {}: NCCL error: {}",
                        pending.empty() ? std::string("NCCL communicator") : pending.front().what,
                        rank, ncclGetErrorString(async)));
      }
    }
  }

  ncclComm_t comm = nullptr;
  c10::Device device;
  int rank = 0;
  std::chrono::milliseconds timeout;
  std::shared_ptr<PeerProbe> peers;
  c10::cuda::CUDAStream stream;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Pending> pending;
  std::string broken;
  bool stopping = false;
  std::thread watchdog;
};

// One enqueued collective: its completion event on the communicator's stream and what the
// caller's stream does after it (drop all_gather's padding, copy back a non-contiguous tensor).
class NcclCommunicator::Request final : public Work {
 public:
  Request(std::shared_ptr<State> state, std::shared_ptr<at::cuda::CUDAEvent> done, std::string name,
          at::Tensor result, std::function<at::Tensor()> finish)
      : state_(std::move(state)),
        done_(std::move(done)),
        name_(std::move(name)),
        finish_(std::move(finish)) {
    result_ = std::move(result);
  }

  void wait() override {
    state_->check(name_.c_str());
    if (waited_) return;
    c10::cuda::CUDAGuard guard(state_->device);
    done_->block(c10::cuda::getCurrentCUDAStream(state_->device.index()));
    if (finish_) result_ = finish_();
    waited_ = true;
  }

  void synchronize() override {
    wait();
    // The watchdog bounds this wait: past the deadline it aborts and check() throws.
    while (!done_->query()) {
      state_->check(name_.c_str());
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    c10::cuda::getCurrentCUDAStream(state_->device.index()).synchronize();
    state_->check(name_.c_str());
  }

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<at::cuda::CUDAEvent> done_;
  std::string name_;
  std::function<at::Tensor()> finish_;
  bool waited_ = false;
};

NcclCommunicator::NcclCommunicator(MPI_Comm bootstrap, c10::Device device,
                                   std::chrono::milliseconds timeout,
                                   std::shared_ptr<PeerProbe> peers)
    : device_(device), timeout_(timeout) {
  if (!device.is_cuda()) {
    throw DistError(fmt::format("NCCL communicator needs a CUDA device, got {}", device.str()));
  }
  host_ = std::make_shared<MpiCommunicator>(bootstrap, timeout, peers);
  peers_ = std::move(peers);
  rank_ = host_->rank();
  size_ = host_->size();
  at::Tensor id_bytes = at::zeros({static_cast<std::int64_t>(sizeof(ncclUniqueId))}, at::kByte);
  if (rank_ == 0) {
    ncclUniqueId id;
    FT_CHECK_NCCL(ncclGetUniqueId(&id), nullptr);
    std::memcpy(id_bytes.data_ptr(), &id, sizeof(id));
  }
  host_->broadcast(id_bytes, 0);  // with the deadline: a missing rank cannot hang the start
  ncclUniqueId id;
  std::memcpy(&id, id_bytes.data_ptr(), sizeof(id));
  c10::cuda::CUDAGuard guard(device_);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  FT_CHECK_NCCL(ncclCommInitRankConfig(&comm, size_, id, rank_, &config), nullptr);
  try {
    settle(comm, Clock::now() + timeout_,
           fmt::format("ncclCommInitRankConfig on rank {} of {}", rank_, size_));
  } catch (...) {
    ncclCommAbort(comm);
    throw;
  }
  state_ = std::make_shared<State>(comm, device_, rank_, timeout_, peers_);
}

NcclCommunicator::NcclCommunicator(std::shared_ptr<State> state, std::shared_ptr<Communicator> host,
                                   int rank, int size, c10::Device device,
                                   std::chrono::milliseconds timeout)
    : state_(std::move(state)),
      host_(std::move(host)),
      rank_(rank),
      size_(size),
      device_(device),
      timeout_(timeout),
      peers_(state_->peers) {}

NcclCommunicator::~NcclCommunicator() = default;

std::uint64_t NcclCommunicator::begin(const char* name, const at::Tensor* tensor) {
  state_->check(name);
  if (tensor != nullptr && tensor->device() != device_) {
    throw DistError(fmt::format("{} on rank {}: tensor on {}, the NCCL communicator works on {}",
                                name, rank_, tensor->device().str(), device_.str()));
  }
  return ++sequence_;
}

namespace {

// The part of every collective after its checks: see NcclCommunicator's class comment.
template <typename State>
std::shared_ptr<at::cuda::CUDAEvent> issue(
    State& state, const std::string& what, const std::vector<at::Tensor>& tensors,
    const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& call) {
  const auto current = c10::cuda::getCurrentCUDAStream(state.device.index());
  at::cuda::CUDAEvent ready;
  ready.record(current);
  ready.block(state.stream);
  for (const auto& t : tensors) {
    if (t.defined() && t.numel() > 0) t.record_stream(state.stream.unwrap());
  }
  auto done = std::make_shared<at::cuda::CUDAEvent>();
  // Held through the enqueue, so the watchdog cannot abort the communicator under the call.
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.comm == nullptr) {
    throw DistError(
        fmt::format("{} on rank {}: the NCCL communicator is unusable after an "
                    "earlier failure: {}",
                    what, state.rank, state.broken));
  }
  try {
    const ncclResult_t rc = call(state.comm, state.stream.stream());
    if (rc == ncclInProgress) {
      settle(state.comm, Clock::now() + state.timeout, what);
    } else if (rc != ncclSuccess) {
      throw_nccl(rc, what.c_str(), __FILE__, __LINE__, state.comm);
    }
  } catch (const DistError& e) {
    state.abort_locked(fmt::format("{} on rank {}: {}", what, state.rank, e.what()));
    throw DistError(state.broken);
  }
  done->record(state.stream);
  state.pending.push_back({done, what, Clock::now() + state.timeout});
  return done;
}

}  // namespace

std::shared_ptr<Work> NcclCommunicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  const auto seq = begin("all_reduce", &tensor);
  const std::string what =
      fmt::format("all_reduce #{} ({}, {})", seq, to_string(op), describe(tensor));
  c10::cuda::CUDAGuard guard(device_);
  at::Tensor work = tensor.is_contiguous() ? tensor : tensor.contiguous();
  const ncclDataType_t type = nccl_type(work);
  auto done = issue(*state_, what, {work}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclAllReduce(work.data_ptr(), work.data_ptr(), work.numel(), type, nccl_op(op), comm,
                         stream);
  });
  std::function<at::Tensor()> finish = copy_back(work, tensor);
  return std::make_shared<Request>(state_, std::move(done), what, tensor, std::move(finish));
}

std::shared_ptr<Work> NcclCommunicator::all_gather_async(const at::Tensor& tensor,
                                                         const std::vector<std::int64_t>& rows) {
  const auto seq = begin("all_gather", &tensor);
  const std::string what = fmt::format("all_gather #{} ({})", seq, describe(tensor));
  c10::cuda::CUDAGuard guard(device_);
  const at::Tensor input = (tensor.dim() == 0 ? tensor.reshape({1}) : tensor).contiguous();
  check_rows(what, rows, input.size(0));
  const std::int64_t most = *std::max_element(rows.begin(), rows.end());
  const bool equal =
      std::all_of(rows.begin(), rows.end(), [&](std::int64_t r) { return r == most; });
  auto shape = input.sizes().vec();
  at::Tensor padded = input;
  if (!equal && input.size(0) != most) {
    shape[0] = most;
    padded = at::zeros(shape, input.options());
    padded.narrow(0, 0, input.size(0)).copy_(input);
  }
  shape[0] = most * size_;
  at::Tensor gathered = at::empty(shape, input.options());
  if (gathered.numel() == 0) return std::make_shared<CompletedWork>(gathered);
  const ncclDataType_t type = nccl_type(padded);
  auto done = issue(*state_, what, {padded, gathered}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclAllGather(padded.data_ptr(), gathered.data_ptr(), padded.numel(), type, comm,
                         stream);
  });
  std::function<at::Tensor()> finish;
  if (!equal) {
    finish = [gathered, rows, most]() {
      std::vector<at::Tensor> parts;
      for (std::size_t r = 0; r < rows.size(); ++r) {
        parts.push_back(gathered.narrow(0, static_cast<std::int64_t>(r) * most, rows[r]));
      }
      return at::cat(parts);
    };
  }
  return std::make_shared<Request>(state_, std::move(done), what, gathered, std::move(finish));
}

std::vector<std::int64_t> NcclCommunicator::host_all_gather(
    const std::vector<std::int64_t>& values) {
  state_->check("host_all_gather");
  return host_->host_all_gather(values);
}

at::Tensor NcclCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  const auto seq = begin("reduce_scatter", &input);
  if (input.dim() == 0 || input.size(0) % size_ != 0) {
    throw DistError(
        fmt::format("reduce_scatter #{} on rank {}: dim 0 ({}) must be a multiple of "
                    "the world size {}",
                    seq, rank_, input.dim() == 0 ? 0 : input.size(0), size_));
  }
  const std::string what =
      fmt::format("reduce_scatter #{} ({}, {})", seq, to_string(op), describe(input));
  c10::cuda::CUDAGuard guard(device_);
  const at::Tensor work = input.contiguous();
  auto shape = work.sizes().vec();
  shape[0] /= size_;
  at::Tensor out = at::empty(shape, work.options());
  if (out.numel() == 0) return out;
  const ncclDataType_t type = nccl_type(work);
  auto done = issue(*state_, what, {work, out}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclReduceScatter(work.data_ptr(), out.data_ptr(), out.numel(), type, nccl_op(op), comm,
                             stream);
  });
  Request(state_, std::move(done), what, out, nullptr).wait();
  return out;
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  const auto seq = begin("broadcast", &tensor);
  const std::string what = fmt::format("broadcast #{} (root {}, {})", seq, root, describe(tensor));
  if (root < 0 || root >= size_) {
    throw DistError(fmt::format("{}: root {} out of range [0, {})", what, root, size_));
  }
  c10::cuda::CUDAGuard guard(device_);
  at::Tensor work = tensor.is_contiguous() ? tensor : tensor.contiguous();
  if (work.numel() == 0) return;
  const ncclDataType_t type = nccl_type(work);
  auto done = issue(*state_, what, {work}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclBroadcast(work.data_ptr(), work.data_ptr(), work.numel(), type, root, comm, stream);
  });
  std::function<at::Tensor()> finish = copy_back(work, tensor);
  Request(state_, std::move(done), what, tensor, std::move(finish)).wait();
}

void NcclCommunicator::barrier() {
  at::Tensor one = at::ones({1}, at::TensorOptions().device(device_).dtype(at::kFloat));
  // A barrier holds the host: the only collective here that synchronises with the device.
  all_reduce_async(one, ReduceOp::kSum)->synchronize();
}

std::shared_ptr<Communicator> NcclCommunicator::duplicate() {
  const auto seq = begin("duplicate", nullptr);
  auto host = host_->duplicate();
  c10::cuda::CUDAGuard guard(device_);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t child = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->comm == nullptr) {
      throw DistError(fmt::format("duplicate on rank {}: the NCCL communicator is unusable: {}",
                                  rank_, state_->broken));
    }
    const std::string what = fmt::format("duplicate #{} (ncclCommSplit)", seq);
    try {
      FT_CHECK_NCCL(ncclCommSplit(state_->comm, 0, rank_, &child, &config), state_->comm);
      settle(state_->comm, Clock::now() + timeout_, what);
      settle(child, Clock::now() + timeout_, what + ", new communicator");
    } catch (const DistError& e) {
      if (child != nullptr) ncclCommAbort(child);
      state_->abort_locked(fmt::format("{} on rank {}: {}", what, rank_, e.what()));
      throw DistError(state_->broken);
    }
  }
  auto state = std::make_shared<State>(child, device_, rank_, timeout_, peers_);
  return std::shared_ptr<Communicator>(
      new NcclCommunicator(std::move(state), std::move(host), rank_, size_, device_, timeout_));
}

}  // namespace facetrain::dist
