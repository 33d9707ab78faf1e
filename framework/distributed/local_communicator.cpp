#include <ATen/ATen.h>
#include <fmt/format.h>

#include "framework/core/error.h"
#include "framework/distributed/communicator.h"

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

void LocalCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  if (op == ReduceOp::kAvg && !tensor.is_floating_point()) {
    throw DistError(fmt::format("all_reduce(avg) on rank 0: needs a floating dtype, found {}",
                                c10::toString(tensor.scalar_type())));
  }
}

at::Tensor LocalCommunicator::all_gather(const at::Tensor& tensor) {
  return tensor.dim() == 0 ? tensor.reshape({1}).clone() : tensor.clone();
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
