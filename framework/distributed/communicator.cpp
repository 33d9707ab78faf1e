#include "framework/distributed/communicator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <exception>

#include "framework/core/error.h"

namespace facetrain::dist {

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

std::string describe(const at::Tensor& t) {
  std::vector<std::string> dims;
  for (auto d : t.sizes()) dims.push_back(std::to_string(d));
  return fmt::format("{}[{}]", c10::toString(t.scalar_type()), fmt::join(dims, ","));
}

at::Tensor Communicator::all_gather(const at::Tensor& tensor) {
  const at::Tensor input = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
  // Every rank's first dimension and a signature of the rest, so a mismatch is reported
  // instead of corrupting memory: [rows, dtype, ndim, trailing dims... (padded with -1)].
  constexpr int kMaxTrailing = 7;
  constexpr std::size_t kMeta = 3 + kMaxTrailing;
  if (input.dim() - 1 > kMaxTrailing) {
    throw DistError(fmt::format("all_gather ({}) on rank {}: at most {} dims are supported",
                                describe(tensor), rank(), kMaxTrailing + 1));
  }
  std::vector<std::int64_t> mine(kMeta, -1);
  mine[0] = input.size(0);
  mine[1] = static_cast<std::int64_t>(input.scalar_type());
  mine[2] = input.dim();
  for (int d = 1; d < input.dim(); ++d) mine[2 + d] = input.size(d);
  const std::vector<std::int64_t> all = host_all_gather(mine);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(size()));
  for (int r = 0; r < size(); ++r) {
    const std::int64_t* theirs = all.data() + kMeta * static_cast<std::size_t>(r);
    for (std::size_t i = 1; i < kMeta; ++i) {
      if (theirs[i] != mine[i]) {
        throw DistError(
            fmt::format("all_gather ({}) on rank {}: rank {} passed a tensor of another dtype or "
                        "trailing shape (signature element {}: {} here, {} there)",
                        describe(tensor), rank(), r, i, mine[i], theirs[i]));
      }
    }
    rows[static_cast<std::size_t>(r)] = theirs[0];
  }
  auto work = all_gather_async(input, rows);
  work->wait();
  return work->result();
}

void Communicator::check_rows(const std::string& what, const std::vector<std::int64_t>& rows,
                              std::int64_t mine) const {
  const bool negative = std::any_of(rows.begin(), rows.end(), [](std::int64_t r) { return r < 0; });
  if (static_cast<int>(rows.size()) != size() || negative ||
      rows[static_cast<std::size_t>(rank())] != mine) {
    throw DistError(
        fmt::format("{} on rank {}: row counts [{}] for a world of {}; this rank "
                    "has {} rows",
                    what, rank(), fmt::join(rows, ", "), size(), mine));
  }
}

at::Tensor Communicator::all_gather_equal(const at::Tensor& tensor) {
  const at::Tensor input = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
  auto work = all_gather_async(input, std::vector<std::int64_t>(size(), input.size(0)));
  work->wait();
  return work->result();
}

void agree_on_every_rank(Communicator& comm, const std::string& what,
                         const std::function<void()>& step) {
  std::exception_ptr failure;
  try {
    step();
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  const std::vector<std::int64_t> ok = comm.host_all_gather({failure ? 0 : 1});
  if (failure) std::rethrow_exception(failure);
  for (std::size_t r = 0; r < ok.size(); ++r) {
    if (ok[r] == 0) {
      throw DistError(fmt::format("{}: rank {} failed (its log and message say why)", what, r));
    }
  }
}

}  // namespace facetrain::dist
