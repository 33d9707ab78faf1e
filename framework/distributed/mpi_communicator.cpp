#include "framework/core/checked.h"
#include "framework/distributed/mpi_communicator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <optional>
#include <thread>
#include <vector>

#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "framework/distributed/mpi_check.h"
#include "framework/distributed/peer_probe.h"
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

// An element count as MPI's int counts take it.
int checked_count(std::int64_t n, const std::string& what) {
  return checked::narrow<int, DistError>(n, what + ": the elements MPI's int count takes");
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

// Communicators are created collectively, in the same order on every rank, so a count of them
// names the same communicator on every rank.
std::string next_label() {
  static std::atomic<int> created{0};
  return fmt::format("communicator {}", created++);
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::chrono::milliseconds timeout,
                                 std::shared_ptr<PeerProbe> peers)
    : timeout_(timeout),
      peers_(std::move(peers)),
      recorder_(std::make_shared<FlightRecorder>(next_label())) {
  if (peers_) peers_->watch(recorder_);
  FT_CHECK_MPI(MPI_Comm_rank(comm, &rank_));
  FT_CHECK_MPI(MPI_Comm_size(comm, &size_));
  // The duplication waits for every rank: non-blocking, with the collectives' deadline.
  MPI_Request request = MPI_REQUEST_NULL;
  FT_CHECK_MPI(MPI_Comm_idup(comm, &comm_, &request));
  wait(request, "creating the communicator (MPI_Comm_idup)", Clock::now() + timeout_);
  FT_CHECK_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
}

std::shared_ptr<Communicator> MpiCommunicator::duplicate() {
  begin("duplicate");
  return std::make_shared<MpiCommunicator>(comm_, timeout_, peers_);
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

// The requests of one collective and what completes it on this rank (a copy back, a division).
class MpiCommunicator::Request final : public Work {
 public:
  Request(MpiCommunicator* comm, std::uint64_t seq, std::string what,
          std::vector<MPI_Request> requests, at::Tensor result, std::vector<at::Tensor> keep,
          std::function<void()> complete)
      : comm_(comm),
        seq_(seq),
        what_(std::move(what)),
        deadline_(Clock::now() + comm->timeout_),
        requests_(std::move(requests)),
        keep_(std::move(keep)),
        complete_(std::move(complete)) {
    result_ = std::move(result);
    comm_->recorder_->issued(seq_, what_);
  }

  void wait() override {
    if (done_) return;
    for (auto& request : requests_) comm_->wait(request, what_, deadline_);
    comm_->recorder_->completed(seq_);
    if (complete_) complete_();
    keep_.clear();
    done_ = true;
  }

 private:
  MpiCommunicator* comm_;
  std::uint64_t seq_;
  std::string what_;
  Clock::time_point deadline_;
  std::vector<MPI_Request> requests_;
  std::vector<at::Tensor> keep_;  // buffers MPI reads or writes until the requests complete
  std::function<void()> complete_;
  bool done_ = false;
};

void MpiCommunicator::wait(MPI_Request& request, const std::string& what,
                           Clock::time_point deadline) {
  int spins = 0;
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      broken_ = what + " failed";
      detail::throw_mpi_error(rc, what.c_str(), __FILE__, __LINE__);
    }
    if (done) return;
    if (Clock::now() >= deadline) timed_out(what);
    // Spin briefly for small, fast collectives; then yield the core to ranks sharing it.
    if (++spins > 2000) {
      std::this_thread::sleep_for(std::chrono::microseconds(spins > 20000 ? 500 : 20));
    }
  }
}

void MpiCommunicator::timed_out(const std::string& what) {
  const auto noticed = Clock::now();
  broken_ = fmt::format("{} timed out", what);
  const auto history = recorder_->history(noticed);
  const auto shown = static_cast<std::ptrdiff_t>(std::min<std::size_t>(5, history.size()));
  log::warn("rank {}: the last collectives: {}", rank_,
            join(std::vector<std::string>(history.end() - shown, history.end()), "; "));
  const std::string host = peers_ ? fmt::format(" on {}", peers_->hosts().at(rank_)) : "";
  const std::string who =
      peers_ ? peers_->account(PeerProbe::grace(timeout_))
             : "at least one other rank did not join it; it has stalled, died or is running a "
               "different collective";
  throw DistError(fmt::format("rank {}/{}{}: {} timed out after {:.1f} s (dist.timeout_s): {}",
                              rank_, size_, host, what,
                              std::chrono::duration<double>(timeout_).count(), who));
}

std::vector<MPI_Request> MpiCommunicator::in_chunks(
    const at::Tensor& work, const std::function<int(void*, int, MPI_Request*)>& issue) {
  const std::int64_t total = work.numel();
  const std::int64_t chunk = INT_MAX / 2;
  auto* base = static_cast<char*>(work.data_ptr());
  std::vector<MPI_Request> requests;
  for (std::int64_t offset = 0; offset < total; offset += chunk) {
    const int count = static_cast<int>(std::min(chunk, total - offset));
    MPI_Request request;
    FT_CHECK_MPI(issue(base + offset * work.element_size(), count, &request));
    requests.push_back(request);
  }
  return requests;
}

std::shared_ptr<Work> MpiCommunicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  const auto seq = begin("all_reduce");
  std::string what = fmt::format("all_reduce #{} ({}, {})", seq, to_string(op), describe(tensor));
  transport_or_throw(tensor, what);
  check_avg(tensor, op, what);
  if (tensor.numel() == 0 || size_ == 1) return std::make_shared<CompletedWork>(tensor);
  at::Tensor work = tensor.to(reduction_dtype(tensor.scalar_type())).contiguous();
  const MPI_Datatype type = *transport_type(work.scalar_type());
  auto requests = in_chunks(work, [&](void* data, int count, MPI_Request* request) {
    return MPI_Iallreduce(MPI_IN_PLACE, data, count, type, mpi_op(op), comm_, request);
  });
  const int world = size_;
  return std::make_shared<Request>(this, seq, std::move(what), std::move(requests), tensor,
                                   std::vector<at::Tensor>{work},
                                   [work, tensor, op, world]() mutable {
                                     if (op == ReduceOp::kAvg) work.div_(world);
                                     if (work.data_ptr() != tensor.data_ptr()) tensor.copy_(work);
                                   });
}

std::shared_ptr<Work> MpiCommunicator::all_gather_async(const at::Tensor& tensor,
                                                        const std::vector<std::int64_t>& rows) {
  const auto seq = begin("all_gather");
  std::string what = fmt::format("all_gather #{} ({})", seq, describe(tensor));
  const MPI_Datatype type = transport_or_throw(tensor, what);
  const at::Tensor input = (tensor.dim() == 0 ? tensor.reshape({1}) : tensor).contiguous();
  check_rows(what, rows, input.size(0));
  std::int64_t row_numel = 1;
  for (int d = 1; d < input.dim(); ++d) row_numel *= input.size(d);
  std::vector<int> counts(size_), displs(size_);
  std::int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    counts[r] = checked_count(checked::mul<DistError>(rows[r], row_numel, what), what);
    displs[r] = checked_count(checked::mul<DistError>(total, row_numel, what), what);
    total += rows[r];
  }
  std::vector<std::int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape[0] = total;
  at::Tensor out = at::empty(out_shape, input.options());
  if (out.numel() == 0 || size_ == 1) {
    if (out.numel() > 0) out.copy_(input);
    return std::make_shared<CompletedWork>(out);
  }
  MPI_Request request;
  FT_CHECK_MPI(MPI_Iallgatherv(input.data_ptr(), static_cast<int>(input.numel()), type,
                               out.data_ptr(), counts.data(), displs.data(), type, comm_,
                               &request));
  return std::make_shared<Request>(this, seq, std::move(what), std::vector<MPI_Request>{request}, out,
                                   std::vector<at::Tensor>{input, out}, nullptr);
}

std::vector<std::int64_t> MpiCommunicator::host_all_gather(
    const std::vector<std::int64_t>& values) {
  const auto seq = begin("host_all_gather");
  const std::string what = fmt::format("host_all_gather #{} ({} values)", seq, values.size());
  if (size_ == 1) return values;
  std::vector<std::int64_t> all(values.size() * static_cast<std::size_t>(size_));
  MPI_Request request;
  FT_CHECK_MPI(MPI_Iallgather(
      values.data(), checked_count(static_cast<std::int64_t>(values.size()), what), MPI_INT64_T,
      all.data(), static_cast<int>(values.size()), MPI_INT64_T, comm_, &request));
  Request(this, seq, what, {request}, at::Tensor(), {}, nullptr).wait();
  return all;
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
    Request(this, seq, what, {request}, out, {work}, nullptr).wait();
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
  auto requests = in_chunks(work, [&](void* data, int count, MPI_Request* request) {
    return MPI_Ibcast(data, count, type, root, comm_, request);
  });
  Request(this, seq, what, std::move(requests), work, {work}, nullptr).wait();
  if (work.data_ptr() != tensor.data_ptr()) tensor.copy_(work);
}

void MpiCommunicator::barrier() {
  const auto seq = begin("barrier");
  const std::string what = fmt::format("barrier #{}", seq);
  MPI_Request request;
  FT_CHECK_MPI(MPI_Ibarrier(comm_, &request));
  Request(this, seq, what, {request}, at::Tensor(), {}, nullptr).wait();
}

}  // namespace facetrain::dist
