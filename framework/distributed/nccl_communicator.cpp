#include "framework/distributed/nccl_communicator.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <cstring>
#include <thread>

#include "framework/core/error.h"
#include "framework/distributed/mpi_communicator.h"

namespace facetrain::dist {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_nccl(ncclResult_t rc, const char* call, const char* file, int line,
                             ncclComm_t comm) {
  const char* last = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  throw DistError(fmt::format("{} failed at {}:{}: {}{}{}", call, file, line,
                              ncclGetErrorString(rc), last && *last ? ": " : "",
                              last ? last : ""));
}

[[noreturn]] void throw_cuda(cudaError_t rc, const char* call, const char* file, int line) {
  throw DistError(fmt::format("{} failed at {}:{}: {}", call, file, line, cudaGetErrorString(rc)));
}

}  // namespace

// Every NCCL call is checked; ncclInProgress is the normal answer of a non-blocking comm.
#define FT_CHECK_NCCL(call, comm)                                                     \
  do {                                                                                \
    const ncclResult_t ft_nccl_rc_ = (call);                                          \
    if (ft_nccl_rc_ != ncclSuccess && ft_nccl_rc_ != ncclInProgress) {                \
      throw_nccl(ft_nccl_rc_, #call, __FILE__, __LINE__, comm);                       \
    }                                                                                 \
  } while (false)

#define FT_CHECK_CUDA(call)                                                           \
  do {                                                                                \
    const cudaError_t ft_cuda_rc_ = (call);                                           \
    if (ft_cuda_rc_ != cudaSuccess) throw_cuda(ft_cuda_rc_, #call, __FILE__, __LINE__); \
  } while (false)

struct NcclCommunicator::Handle {
  ncclComm_t comm = nullptr;
};

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
      throw DistError(fmt::format("NCCL communicator: unsupported dtype {}",
                                  c10::toString(t.scalar_type())));
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

// Polls a non-blocking communicator until its pending operation (init, split, enqueue) is done.
void settle(ncclComm_t comm, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    FT_CHECK_NCCL(ncclCommGetAsyncError(comm, &state), comm);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) {
      ncclCommAbort(comm);
      throw_nccl(state, what.c_str(), __FILE__, __LINE__, nullptr);
    }
    if (Clock::now() > deadline) {
      ncclCommAbort(comm);
      throw DistError(fmt::format("{}: NCCL did not finish in time", what));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace

NcclCommunicator::NcclCommunicator(MPI_Comm bootstrap, c10::Device device,
                                   std::chrono::milliseconds timeout)
    : handle_(std::make_unique<Handle>()), device_(device), timeout_(timeout) {
  if (!device.is_cuda()) {
    throw DistError(fmt::format("NCCL communicator needs a CUDA device, got {}", device.str()));
  }
  MpiCommunicator mpi(bootstrap, timeout);
  rank_ = mpi.rank();
  size_ = mpi.size();
  at::Tensor id_bytes = at::zeros({static_cast<std::int64_t>(sizeof(ncclUniqueId))}, at::kByte);
  if (rank_ == 0) {
    ncclUniqueId id;
    FT_CHECK_NCCL(ncclGetUniqueId(&id), nullptr);
    std::memcpy(id_bytes.data_ptr(), &id, sizeof(id));
  }
  mpi.broadcast(id_bytes, 0);  // with the deadline: a missing rank cannot hang the start
  ncclUniqueId id;
  std::memcpy(&id, id_bytes.data_ptr(), sizeof(id));
  c10::cuda::CUDAGuard guard(device_);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  FT_CHECK_NCCL(ncclCommInitRankConfig(&handle_->comm, size_, id, rank_, &config), nullptr);
  settle(handle_->comm, Clock::now() + timeout_,
         fmt::format("ncclCommInitRankConfig on rank {} of {}", rank_, size_));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Handle> handle, int rank, int size,
                                   c10::Device device, std::chrono::milliseconds timeout)
    : handle_(std::move(handle)), rank_(rank), size_(size), device_(device), timeout_(timeout) {}

NcclCommunicator::~NcclCommunicator() {
  if (handle_ && handle_->comm != nullptr) {
    if (broken_.empty()) {
      ncclCommFinalize(handle_->comm);
      ncclCommDestroy(handle_->comm);
    } else {
      ncclCommAbort(handle_->comm);
    }
  }
}

std::uint64_t NcclCommunicator::begin(const char* name, const at::Tensor* tensor) {
  if (!broken_.empty()) {
    throw DistError(fmt::format("{} on rank {}: the NCCL communicator is unusable after an "
                                "earlier failure: {}",
                                name, rank_, broken_));
  }
  if (tensor != nullptr && tensor->device() != device_) {
    throw DistError(fmt::format("{} on rank {}: tensor on {}, the NCCL communicator works on {}",
                                name, rank_, tensor->device().str(), device_.str()));
  }
  return ++sequence_;
}

void NcclCommunicator::fail(const std::string& why) {
  broken_ = why;
  ncclCommAbort(handle_->comm);
  handle_->comm = nullptr;
  throw DistError(why);
}

void NcclCommunicator::wait(const std::string& what) {
  const auto deadline = Clock::now() + timeout_;
  const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
  cudaEvent_t done = nullptr;
  FT_CHECK_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  FT_CHECK_CUDA(cudaEventRecord(done, stream.stream()));
  for (;;) {
    const cudaError_t state = cudaEventQuery(done);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady) {
      cudaEventDestroy(done);
      throw_cuda(state, "cudaEventQuery", __FILE__, __LINE__);
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(handle_->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      cudaEventDestroy(done);
      fail(fmt::format("{} on rank {}: NCCL error: {}", what, rank_, ncclGetErrorString(async)));
    }
    if (Clock::now() > deadline) {
      cudaEventDestroy(done);
      fail(fmt::format("{} on rank {} timed out after {:.1f} s (dist.timeout_s): another rank "
                       "did not join",
                       what, rank_, static_cast<double>(timeout_.count()) / 1000.0));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  cudaEventDestroy(done);
}

void NcclCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  const auto seq = begin("all_reduce", &tensor);
  c10::cuda::CUDAGuard guard(device_);
  at::Tensor work = tensor.is_contiguous() ? tensor : tensor.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
  FT_CHECK_NCCL(ncclAllReduce(work.data_ptr(), work.data_ptr(), work.numel(), nccl_type(work),
                              nccl_op(op), handle_->comm, stream.stream()),
                handle_->comm);
  wait(fmt::format("all_reduce #{} ({})", seq, to_string(op)));
  if (!work.is_same(tensor)) tensor.copy_(work);
}

at::Tensor NcclCommunicator::all_gather(const at::Tensor& tensor) {
  const auto seq = begin("all_gather", &tensor);
  c10::cuda::CUDAGuard guard(device_);
  const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
  const at::Tensor input = (tensor.dim() == 0 ? tensor.reshape({1}) : tensor).contiguous();
  // Row counts first: ranks may pass different numbers of rows.
  at::Tensor counts = at::empty({size_}, input.options().dtype(at::kLong));
  at::Tensor mine = at::full({1}, input.size(0), counts.options());
  FT_CHECK_NCCL(ncclAllGather(mine.data_ptr(), counts.data_ptr(), 1, ncclInt64, handle_->comm,
                              stream.stream()),
                handle_->comm);
  wait(fmt::format("all_gather #{} (row counts)", seq));
  const at::Tensor host = counts.cpu();
  const auto* c = host.data_ptr<std::int64_t>();
  std::int64_t most = 0, total = 0;
  for (int r = 0; r < size_; ++r) {
    most = std::max(most, c[r]);
    total += c[r];
  }
  auto shape = input.sizes().vec();
  shape[0] = most;
  at::Tensor padded = input.size(0) == most ? input : at::zeros(shape, input.options());
  if (!padded.is_same(input)) padded.narrow(0, 0, input.size(0)).copy_(input);
  shape[0] = most * size_;
  at::Tensor gathered = at::empty(shape, input.options());
  FT_CHECK_NCCL(ncclAllGather(padded.data_ptr(), gathered.data_ptr(), padded.numel(),
                              nccl_type(padded), handle_->comm, stream.stream()),
                handle_->comm);
  wait(fmt::format("all_gather #{}", seq));
  if (total == most * size_) return gathered;
  std::vector<at::Tensor> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(gathered.narrow(0, r * most, c[r]));
  return at::cat(parts);
}

at::Tensor NcclCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  const auto seq = begin("reduce_scatter", &input);
  if (input.dim() == 0 || input.size(0) % size_ != 0) {
    throw DistError(fmt::format("reduce_scatter #{} on rank {}: dim 0 ({}) must be a multiple of "
                                "the world size {}",
                                seq, rank_, input.dim() == 0 ? 0 : input.size(0), size_));
  }
  c10::cuda::CUDAGuard guard(device_);
  const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
  const at::Tensor work = input.contiguous();
  auto shape = work.sizes().vec();
  shape[0] /= size_;
  at::Tensor out = at::empty(shape, work.options());
  FT_CHECK_NCCL(ncclReduceScatter(work.data_ptr(), out.data_ptr(), out.numel(), nccl_type(work),
                                  nccl_op(op), handle_->comm, stream.stream()),
                handle_->comm);
  wait(fmt::format("reduce_scatter #{} ({})", seq, to_string(op)));
  return out;
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  const auto seq = begin("broadcast", &tensor);
  c10::cuda::CUDAGuard guard(device_);
  const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
  at::Tensor work = tensor.is_contiguous() ? tensor : tensor.contiguous();
  FT_CHECK_NCCL(ncclBroadcast(work.data_ptr(), work.data_ptr(), work.numel(), nccl_type(work),
                              root, handle_->comm, stream.stream()),
                handle_->comm);
  wait(fmt::format("broadcast #{} (root {})", seq, root));
  if (!work.is_same(tensor)) tensor.copy_(work);
}

void NcclCommunicator::barrier() {
  at::Tensor one = at::ones({1}, at::TensorOptions().device(device_).dtype(at::kFloat));
  all_reduce(one, ReduceOp::kSum);
}

std::shared_ptr<Communicator> NcclCommunicator::duplicate() {
  const auto seq = begin("duplicate", nullptr);
  c10::cuda::CUDAGuard guard(device_);
  auto handle = std::make_unique<Handle>();
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  FT_CHECK_NCCL(ncclCommSplit(handle_->comm, 0, rank_, &handle->comm, &config), handle_->comm);
  settle(handle_->comm, Clock::now() + timeout_, fmt::format("duplicate #{} (split)", seq));
  settle(handle->comm, Clock::now() + timeout_, fmt::format("duplicate #{} (new comm)", seq));
  return std::shared_ptr<Communicator>(
      new NcclCommunicator(std::move(handle), rank_, size_, device_, timeout_));
}

}  // namespace facetrain::dist
