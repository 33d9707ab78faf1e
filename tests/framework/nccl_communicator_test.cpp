// The NCCL communicator on GPUs (one per rank): collectives against their closed forms, and
// Partial FC with the gradient reducer on CUDA against the same computation on the CPU. Skipped,
// with the reason, on hosts without enough GPUs (CI); run by scripts/gpu_check.sh on GPU hosts.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/modules/linear.h>

#include "framework/core/error.h"
#include "framework/distributed/gradient_reducer.h"
#include "framework/distributed/mpi_runtime.h"
#include "framework/distributed/nccl_communicator.h"
#include "losses/combined_margin_head.h"
#include "losses/partial_fc.h"
#include "tests/support/world.h"

namespace facetrain {
namespace {

// The NCCL communicator of this job, or nullptr when the host lacks a GPU per local rank.
std::shared_ptr<dist::Communicator> nccl_world(std::string* why) {
  const auto& env = test::launch_env();
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  // Every rank must agree on skipping, or the others would wait in NCCL's set-up.
  at::Tensor enough = at::full({1}, gpus >= env.local_size ? 1 : 0, at::kInt);
  test::world()->all_reduce(enough, dist::ReduceOp::kMin);
  if (enough.item<int>() == 0) {
    *why = fmt::format("needs one CUDA GPU per local rank ({} here, {} found)", env.local_size, gpus);
    return nullptr;
  }
  static std::shared_ptr<dist::Communicator> comm = dist::make_communicator("nccl", env, 60.0);
  return comm;
}

TEST(NcclCommunicator, CollectivesMatchClosedForms) {
  std::string why;
  auto comm = nccl_world(&why);
  if (!comm) GTEST_SKIP() << why;
  const int w = comm->size();
  const int r = comm->rank();
  const auto cuda = at::TensorOptions().device(at::kCUDA, test::launch_env().local_rank);
  for (const auto dtype : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kInt, at::kLong}) {
    at::Tensor t = at::full({1000}, r + 1, cuda.dtype(dtype));
    comm->all_reduce(t, dist::ReduceOp::kSum);
    EXPECT_TRUE(t.cpu().equal(at::full({1000}, w * (w + 1) / 2, at::dtype(dtype))));
    at::Tensor m = at::full({7}, r, cuda.dtype(dtype));
    comm->all_reduce(m, dist::ReduceOp::kMax);
    EXPECT_TRUE(m.cpu().equal(at::full({7}, w - 1, at::dtype(dtype))));
  }
  // Different row counts per rank.
  const at::Tensor rows = at::full({r + 1, 3}, r, cuda.dtype(at::kFloat));
  const at::Tensor gathered = comm->all_gather(rows).cpu();
  ASSERT_EQ(gathered.size(0), w * (w + 1) / 2);
  std::int64_t at_row = 0;
  for (int q = 0; q < w; ++q) {
    EXPECT_TRUE(gathered.narrow(0, at_row, q + 1).eq(q).all().item<bool>()) << q;
    at_row += q + 1;
  }
  at::Tensor b = at::full({5}, r == 0 ? 42.0 : -1.0, cuda.dtype(at::kFloat));
  comm->broadcast(b, 0);
  EXPECT_TRUE(b.cpu().eq(42).all().item<bool>());
  const at::Tensor scattered =
      comm->reduce_scatter(at::ones({2 * w, 4}, cuda.dtype(at::kFloat)), dist::ReduceOp::kSum);
  EXPECT_TRUE(scattered.cpu().eq(w).all().item<bool>());
  comm->barrier();
  at::Tensor on_cpu = at::ones({2});
  EXPECT_THROW(comm->all_reduce(on_cpu, dist::ReduceOp::kSum), DistError);
}

TEST(NcclCommunicator, PartialFcOnCudaMatchesCpu) {
  std::string why;
  auto comm = nccl_world(&why);
  if (!comm) GTEST_SKIP() << why;
  const c10::Device cuda(at::kCUDA, static_cast<c10::DeviceIndex>(test::launch_env().local_rank));
  constexpr std::int64_t kClasses = 1001, kBatch = 64, kDim = 32;
  at::manual_seed(5);
  const at::Tensor x = at::randn({kBatch, 48});
  const at::Tensor labels = at::randint(kClasses, {kBatch}, at::kLong);
  const auto rows = losses::class_shard(kBatch, comm->rank(), comm->size());
  auto head = std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0);
  const auto options = losses::PartialFCOptions().num_classes(kClasses).embedding_size(kDim);

  double losses_seen[2];
  at::Tensor grads[2];
  for (int pass = 0; pass < 2; ++pass) {
    const bool on_gpu = pass == 1;
    auto pass_comm = on_gpu ? comm : test::world();
    at::manual_seed(9);
    torch::nn::Linear net(48, kDim);
    if (on_gpu) net->to(cuda);
    dist::GradientReducer reducer(net->parameters(), net->buffers(), pass_comm);
    reducer.broadcast_from_root();
    losses::PartialFC fc(options, head, pass_comm);
    if (on_gpu) fc.to(cuda);
    const auto device = on_gpu ? cuda : c10::Device(at::kCPU);
    reducer.prepare();
    const at::Tensor loss = fc.forward(net->forward(x.narrow(0, rows.lo, rows.size()).to(device)),
                                       labels.narrow(0, rows.lo, rows.size()).to(device), 0);
    loss.backward();
    reducer.finish();
    losses_seen[pass] = loss.item<double>();
    grads[pass] = net->weight.grad().cpu();
  }
  EXPECT_NEAR(losses_seen[1], losses_seen[0], 1e-4 * std::abs(losses_seen[0]));
  EXPECT_LE(((grads[1] - grads[0]).abs().max() / grads[0].abs().max()).item<double>(), 1e-4);
}

}  // namespace
}  // namespace facetrain
