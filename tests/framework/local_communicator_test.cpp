#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "framework/core/error.h"
#include "framework/distributed/communicator.h"
#include "framework/distributed/mpi_runtime.h"

namespace facetrain {
namespace {

TEST(LocalCommunicatorTest, EveryCollectiveIsTheIdentity) {
  dist::LocalCommunicator comm;
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.rank(), 0);
  at::Tensor t = at::arange(6, at::kFloat);
  for (auto op :
       {dist::ReduceOp::kSum, dist::ReduceOp::kAvg, dist::ReduceOp::kMax, dist::ReduceOp::kMin}) {
    comm.all_reduce(t, op);
    EXPECT_TRUE(t.equal(at::arange(6, at::kFloat)));
  }
  const at::Tensor g = comm.all_gather(t);
  EXPECT_TRUE(g.equal(t));
  EXPECT_NE(g.data_ptr(), t.data_ptr());
  EXPECT_EQ(comm.all_gather(at::scalar_tensor(3.0)).sizes(), at::IntArrayRef({1}));
  EXPECT_TRUE(comm.reduce_scatter(t, dist::ReduceOp::kSum).equal(t));
  comm.broadcast(t, 0);
  EXPECT_THROW(comm.broadcast(t, 1), DistError);
  at::Tensor ints = at::ones({2}, at::kInt);
  EXPECT_THROW(comm.all_reduce(ints, dist::ReduceOp::kAvg), DistError);
  comm.barrier();
}

TEST(LocalCommunicatorTest, FactoryChoosesByWorldAndRejectsUnknown) {
  dist::LaunchEnv env;
  EXPECT_EQ(dist::make_communicator("auto", env, 1.0)->backend(), "local");
  EXPECT_EQ(dist::make_communicator("local", env, 1.0)->backend(), "local");
  env.world_size = 2;
  EXPECT_THROW(dist::make_communicator("local", env, 1.0), ConfigError);
  EXPECT_THROW(dist::make_communicator("gloo", env, 1.0), ConfigError);
  EXPECT_THROW(dist::make_communicator("nccl", env, 1.0), ConfigError);
}

TEST(LocalCommunicatorTest, DeviceChoiceOnThisHost) {
  dist::LaunchEnv env;
  EXPECT_TRUE(dist::choose_device("cpu", env).is_cpu());
  EXPECT_THROW(dist::choose_device("tpu", env), ConfigError);
  if (!torch::cuda::is_available()) {
    EXPECT_TRUE(dist::choose_device("auto", env).is_cpu());
    EXPECT_THROW(dist::choose_device("cuda", env), Error);
  } else {
    env.local_rank = static_cast<int>(torch::cuda::device_count());
    EXPECT_THROW(dist::choose_device("cuda", env), Error);
  }
}

}  // namespace
}  // namespace facetrain
