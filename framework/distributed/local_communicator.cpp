#include <ATen/ATen.h>
#include <fmt/format.h>

#include "framework/core/error.h"
#include "framework/distributed/communicator.h"

namespace facetrain::dist {

std::shared_ptr<Work> LocalCommunicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  if (op == ReduceOp::kAvg && !tensor.is_floating_point()) {
    throw DistError(fmt::format("all_reduce(avg) on rank 0: needs a floating dtype, found {}",
                                c10::toString(tensor.scalar_type())));
  }
  return std::make_shared<CompletedWork>(tensor);
}

std::shared_ptr<Work> LocalCommunicator::all_gather_async(const at::Tensor& tensor,
                                                          const std::vector<std::int64_t>& rows) {
  const at::Tensor input = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
  check_rows(fmt::format("all_gather ({})", describe(tensor)), rows, input.size(0));
  return std::make_shared<CompletedWork>(input.clone());
}

at::Tensor LocalCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  at::Tensor out = input.clone();
  all_reduce(out, op);
  return out;
}

void LocalCommunicator::broadcast(at::Tensor& tensor, int root) {
  if (root != 0) {
    throw DistError(fmt::format("broadcast: root {} out of range [0, 1)", root));
  }
}

}  // namespace facetrain::dist
