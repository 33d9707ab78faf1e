#include "framework/distributed/mpi_communicator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <climits>
#include <optional>
#include <thread>
#include <vector>

#include "framework/core/error.h"
#include "framework/distributed/mpi_check.h"
#include "framework/log/logger.h"

namespace facetrain::dist {
namespace detail {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw DistError(fmt::format("{} failed at {}:{}: {}", call, file, line, text));
}

}  // namespace detail

namespace {

// MPI type moving a tensor's elements unchanged (gather, broadcast).
std::optional<MPI_Datatype> transport_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kInt:
      return MPI_INT32_T;
    case at::kLong:
      return MPI_INT64_T;
    case at::kByte:
      return MPI_UINT8_T;
    case at::kBFloat16:
    case at::kHalf:
      return MPI_UINT16_T;
    default:
      return std::nullopt;
  }
}

// The dtype a reduction is computed in: 16-bit floats are widened to float32.
at::ScalarType reduction_dtype(at::ScalarType t) {
  return (t == at::kBFloat16 || t == at::kHalf) ? at::kFloat : t;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_SUM;
}

std::string describe(const at::Tensor& t) {
  std::vector<std::string> dims;
  for (auto d : t.sizes()) dims.push_back(std::to_string(d));
  return fmt::format("{}[{}]", c10::toString(t.scalar_type()), fmt::join(dims, ","));
}

int checked_count(std::int64_t n, const std::string& what) {
  if (n > INT_MAX) {
    throw DistError(fmt::format("{}: {} elements exceed MPI's int count limit", what, n));
  }
  return static_cast<int>(n);
}

MPI_Datatype transport_or_throw(const at::Tensor& t, const std::string& what) {
  if (!t.device().is_cpu()) {
    throw DistError(fmt::format("{}: the mpi back end takes CPU tensors, found one on {}", what,
                                t.device().str()));
  }
  auto type = transport_type(t.scalar_type());
  if (!type) {
    throw DistError(
        fmt::format("{}: unsupported dtype {} (supported: float32, float64, "
                    "bfloat16, float16, int32, int64, uint8)",
                    what, c10::toString(t.scalar_type())));
  }
  return *type;
}

void check_avg(const at::Tensor& t, ReduceOp op, const std::string& what) {
  if (op == ReduceOp::kAvg && !t.is_floating_point()) {
    throw DistError(fmt::format("{}: avg needs a floating dtype, found {}", what,
                                c10::toString(t.scalar_type())));
  }
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  FT_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
  FT_CHECK_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  FT_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  FT_CHECK_MPI(MPI_Comm_size(comm_, &size_));
}

std::shared_ptr<Communicator> MpiCommunicator::duplicate() {
  begin("duplicate");
  return std::make_shared<MpiCommunicator>(comm_, timeout_);
}

MpiCommunicator::~MpiCommunicator() {
  // A communicator with a collective still pending (after a timeout) cannot be freed safely;
  // the job is being aborted then anyway.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && broken_.empty() && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::uint64_t MpiCommunicator::begin(const char* name) {
  if (!broken_.empty()) {
    throw DistError(
        fmt::format("{} on rank {}: the communicator is unusable after an earlier "
                    "failure: {}",
                    name, rank_, broken_));
  }
  return ++sequence_;
}

void MpiCommunicator::wait(MPI_Request& request, const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout_;
  int spins = 0;
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      broken_ = what + " failed";
      detail::throw_mpi_error(rc, what.c_str(), __FILE__, __LINE__);
    }
    if (done) return;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      broken_ = fmt::format("{} timed out", what);
      throw DistError(fmt::format(
          "rank {}/{}: {} timed out after {:.1f} s (dist.timeout_s): at least one other rank "
          "did not join it; it has stalled, died or is running a different collective",
          rank_, size_, what, std::chrono::duration<double>(timeout_).count()));
    }
    // Spin briefly for small, fast collectives; then yield the core to ranks sharing it.
    if (++spins > 2000) {
      std::this_thread::sleep_for(std::chrono::microseconds(spins > 20000 ? 500 : 20));
    }
  }
}

void MpiCommunicator::in_chunks(const at::Tensor& work, const std::string& what,
                                const std::function<int(void*, int, MPI_Request*)>& issue) {
  const std::int64_t total = work.numel();
  const std::int64_t chunk = INT_MAX / 2;
  auto* base = static_cast<char*>(work.data_ptr());
  for (std::int64_t offset = 0; offset < total; offset += chunk) {
    const int count = static_cast<int>(std::min(chunk, total - offset));
    MPI_Request request;
    FT_CHECK_MPI(issue(base + offset * work.element_size(), count, &request));
    wait(request, what);
  }
}

void MpiCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  const auto seq = begin("all_reduce");
  const std::string what =
      fmt::format("all_reduce #{} ({}, {})", seq, to_string(op), describe(tensor));
  transport_or_throw(tensor, what);
  check_avg(tensor, op, what);
  if (tensor.numel() == 0 || size_ == 1) {
    if (op == ReduceOp::kAvg && size_ > 1) tensor.div_(size_);
    return;
  }
  at::Tensor work = tensor.to(reduction_dtype(tensor.scalar_type())).contiguous();
  const MPI_Datatype type = *transport_type(work.scalar_type());
  in_chunks(work, what, [&](void* data, int count, MPI_Request* request) {
    return MPI_Iallreduce(MPI_IN_PLACE, data, count, type, mpi_op(op), comm_, request);
  });
  if (op == ReduceOp::kAvg) work.div_(size_);
  if (work.data_ptr() != tensor.data_ptr()) tensor.copy_(work);
}

at::Tensor MpiCommunicator::all_gather(const at::Tensor& tensor) {
  const auto seq = begin("all_gather");
  const std::string what = fmt::format("all_gather #{} ({})", seq, describe(tensor));
  const MPI_Datatype type = transport_or_throw(tensor, what);
  const at::Tensor input = (tensor.dim() == 0 ? tensor.reshape({1}) : tensor).contiguous();

  // Every rank's first dimension and a signature of the rest, so a mismatch is reported
  // instead of corrupting memory: [rows, dtype, ndim, trailing dims... (padded with -1)].
  constexpr int kMaxTrailing = 7;
  constexpr int kMeta = 3 + kMaxTrailing;
  if (input.dim() - 1 > kMaxTrailing) {
    throw DistError(fmt::format("{}: at most {} dims are supported", what, kMaxTrailing + 1));
  }
  std::array<std::int64_t, kMeta> mine;
  mine.fill(-1);
  mine[0] = input.size(0);
  mine[1] = static_cast<std::int64_t>(input.scalar_type());
  mine[2] = input.dim();
  for (int d = 1; d < input.dim(); ++d) mine[2 + d] = input.size(d);
  std::vector<std::int64_t> all(static_cast<std::size_t>(kMeta) * size_);
  MPI_Request request;
  FT_CHECK_MPI(MPI_Iallgather(mine.data(), kMeta, MPI_INT64_T, all.data(), kMeta, MPI_INT64_T,
                              comm_, &request));
  wait(request, what + " (shape exchange)");

  std::int64_t row_numel = 1;
  for (int d = 1; d < input.dim(); ++d) row_numel *= input.size(d);
  std::vector<int> counts(size_), displs(size_);
  std::int64_t rows = 0;
  for (int r = 0; r < size_; ++r) {
    const std::int64_t* theirs = all.data() + static_cast<std::size_t>(kMeta) * r;
    for (int i = 1; i < kMeta; ++i) {
      if (theirs[i] != mine[i]) {
        throw DistError(
            fmt::format("{} on rank {}: rank {} passed a tensor of another dtype or trailing shape "
                        "(signature element {}: {} here, {} there)",
                        what, rank_, r, i, mine[i], theirs[i]));
      }
    }
    counts[r] = checked_count(theirs[0] * row_numel, what);
    displs[r] = checked_count(rows * row_numel, what);
    rows += theirs[0];
  }
  std::vector<std::int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape[0] = rows;
  at::Tensor out = at::empty(out_shape, input.options());
  if (out.numel() == 0) return out;
  FT_CHECK_MPI(MPI_Iallgatherv(input.data_ptr(), static_cast<int>(input.numel()), type,
                               out.data_ptr(), counts.data(), displs.data(), type, comm_,
                               &request));
  wait(request, what);
  return out;
}

at::Tensor MpiCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  const auto seq = begin("reduce_scatter");
  const std::string what =
      fmt::format("reduce_scatter #{} ({}, {})", seq, to_string(op), describe(input));
  transport_or_throw(input, what);
  check_avg(input, op, what);
  if (input.dim() == 0 || input.size(0) % size_ != 0) {
    throw DistError(fmt::format("{}: dim 0 must be a multiple of the world size {}", what, size_));
  }
  std::vector<std::int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape[0] /= size_;
  const at::Tensor work = input.to(reduction_dtype(input.scalar_type())).contiguous();
  at::Tensor out = at::empty(out_shape, work.options());
  if (out.numel() > 0) {
    const MPI_Datatype type = *transport_type(work.scalar_type());
    MPI_Request request;
    FT_CHECK_MPI(MPI_Ireduce_scatter_block(work.data_ptr(), out.data_ptr(),
                                           checked_count(out.numel(), what), type, mpi_op(op),
                                           comm_, &request));
    wait(request, what);
  }
  if (op == ReduceOp::kAvg) out.div_(size_);
  return out.to(input.scalar_type());
}

void MpiCommunicator::broadcast(at::Tensor& tensor, int root) {
  const auto seq = begin("broadcast");
  const std::string what = fmt::format("broadcast #{} (root {}, {})", seq, root, describe(tensor));
  const MPI_Datatype type = transport_or_throw(tensor, what);
  if (root < 0 || root >= size_) {
    throw DistError(fmt::format("{}: root {} out of range [0, {})", what, root, size_));
  }
  if (tensor.numel() == 0 || size_ == 1) return;
  at::Tensor work = tensor.contiguous();
  in_chunks(work, what, [&](void* data, int count, MPI_Request* request) {
    return MPI_Ibcast(data, count, type, root, comm_, request);
  });
  if (work.data_ptr() != tensor.data_ptr()) tensor.copy_(work);
}

void MpiCommunicator::barrier() {
  const auto seq = begin("barrier");
  const std::string what = fmt::format("barrier #{}", seq);
  MPI_Request request;
  FT_CHECK_MPI(MPI_Ibarrier(comm_, &request));
  wait(request, what);
}

}  // namespace facetrain::dist
