// Collectives of the MPI communicator across real processes (mpirun -np 1, 2, 4), each checked
// against its closed form in the ranks and the world size.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>

#include "framework/core/error.h"
#include "tests/support/world.h"

namespace facetrain {
namespace {

using dist::ReduceOp;

// rank r's element i: (r + 1) * (i % 5 + 1), small integers exact in every dtype's sums.
at::Tensor ramp(std::int64_t n, int rank, at::ScalarType dtype) {
  return ((at::arange(n, at::kLong) % 5 + 1) * (rank + 1)).to(dtype);
}

class AllReduceTest : public ::testing::TestWithParam<std::tuple<at::ScalarType, std::int64_t>> {};

TEST_P(AllReduceTest, MatchesClosedForm) {
  const auto [dtype, n] = GetParam();
  auto comm = test::world();
  const int w = comm->size();
  const int r = comm->rank();
  const at::Tensor base = at::arange(n, at::kLong) % 5 + 1;
  const std::vector<std::pair<ReduceOp, at::Tensor>> cases = {
      {ReduceOp::kSum, base * (w * (w + 1) / 2)},
      {ReduceOp::kMax, base * w},
      {ReduceOp::kMin, base},
  };
  for (const auto& [op, expected_long] : cases) {
    at::Tensor t = ramp(n, r, dtype);
    comm->all_reduce(t, op);
    EXPECT_EQ(t.scalar_type(), dtype);
    EXPECT_TRUE(t.equal(expected_long.to(dtype))) << dist::to_string(op) << " n=" << n;
  }
  if (at::isFloatingType(dtype)) {
    at::Tensor t = ramp(n, r, dtype);
    comm->all_reduce(t, ReduceOp::kAvg);
    const at::Tensor expected = (base.to(at::kDouble) * ((w + 1) / 2.0)).to(dtype);
    EXPECT_TRUE(t.equal(expected)) << "avg n=" << n;
  } else {
    at::Tensor t = ramp(n, r, dtype);
    EXPECT_THROW(comm->all_reduce(t, ReduceOp::kAvg), DistError);
  }
}

INSTANTIATE_TEST_SUITE_P(DtypesAndSizes, AllReduceTest,
                         ::testing::Combine(::testing::Values(at::kFloat, at::kDouble,
                                                              at::kBFloat16, at::kHalf, at::kInt,
                                                              at::kLong),
                                            ::testing::Values(0, 1, 7, 1000, 65537)));

TEST(CommunicatorTest, WorldMatchesLauncher) {
  auto comm = test::world();
  EXPECT_EQ(comm->size(), test::launch_env().world_size);
  EXPECT_EQ(comm->rank(), test::launch_env().rank);
  EXPECT_EQ(comm->backend(), "mpi");
  EXPECT_GE(test::launch_env().local_rank, 0);
  EXPECT_LT(test::launch_env().local_rank, test::launch_env().local_size);
}

TEST(CommunicatorTest, AllReduceUint8Sum) {
  auto comm = test::world();
  at::Tensor t = at::full({300}, comm->rank() + 1, at::kByte);
  comm->all_reduce(t, ReduceOp::kSum);
  const int w = comm->size();
  EXPECT_TRUE(t.eq(w * (w + 1) / 2).all().item<bool>());
}

TEST(CommunicatorTest, AllReduceNonContiguousWritesThroughTheView) {
  auto comm = test::world();
  const int w = comm->size();
  at::Tensor base = at::arange(24, at::kDouble).reshape({4, 6}) * (comm->rank() + 1);
  at::Tensor view = base.t();
  ASSERT_FALSE(view.is_contiguous());
  comm->all_reduce(view, ReduceOp::kSum);
  const at::Tensor expected = at::arange(24, at::kDouble).reshape({4, 6}) * (w * (w + 1) / 2.0);
  EXPECT_TRUE(base.equal(expected));
}

class AllGatherTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(AllGatherTest, VariableRowsInRankOrder) {
  const at::ScalarType dtype = GetParam();
  auto comm = test::world();
  const int w = comm->size();
  // rank r sends r + 1 rows of 3: element (row, col) = 8r + 3row + col.
  auto rows_of = [&](int r) {
    return (at::arange(3 * (r + 1), at::kLong).reshape({r + 1, 3}) + 8 * r).to(dtype);
  };
  const at::Tensor got = comm->all_gather(rows_of(comm->rank()));
  std::vector<at::Tensor> parts;
  for (int r = 0; r < w; ++r) parts.push_back(rows_of(r));
  const at::Tensor expected = at::cat(parts);
  EXPECT_EQ(got.sizes(), expected.sizes());
  EXPECT_TRUE(got.equal(expected));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AllGatherTest,
                         ::testing::Values(at::kFloat, at::kDouble, at::kBFloat16, at::kHalf,
                                           at::kInt, at::kLong, at::kByte));

TEST(CommunicatorTest, AllGatherScalarsAndEmpty) {
  auto comm = test::world();
  const int w = comm->size();
  const at::Tensor scalars = comm->all_gather(at::scalar_tensor(comm->rank() * 2.5, at::kDouble));
  EXPECT_TRUE(scalars.equal(at::arange(w, at::kDouble) * 2.5));

  // Only odd ranks contribute rows; even ranks pass an empty [0, 2].
  const std::int64_t mine = comm->rank() % 2;
  const at::Tensor got = comm->all_gather(at::full({mine, 2}, comm->rank(), at::kInt));
  EXPECT_EQ(got.size(0), w / 2);
  EXPECT_EQ(got.size(1), 2);
  for (std::int64_t i = 0; i < got.size(0); ++i) {
    EXPECT_EQ(got[i][0].item<int>(), 2 * i + 1);
  }
}

TEST(CommunicatorTest, AllGatherShapeMismatchIsAnErrorOnEveryRank) {
  auto comm = test::world();
  if (comm->size() < 2) GTEST_SKIP() << "needs two ranks to disagree";
  const std::int64_t cols = comm->rank() == 0 ? 3 : 4;
  EXPECT_THROW(comm->all_gather(at::zeros({1, cols})), DistError);
  // The communicator stays usable: the mismatch was found before any data moved.
  at::Tensor t = at::ones({2});
  comm->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(t.eq(comm->size()).all().item<bool>());
}

TEST(CommunicatorWork, SeveralCollectivesInFlightCompleteInAnyWaitOrder) {
  auto comm = test::world();
  const int w = comm->size();
  const int r = comm->rank();
  // Two all-reduces (one bfloat16, reduced through a float copy) and a gather with known row
  // counts in flight together, waited for in reverse order.
  at::Tensor a = at::full({1000}, r + 1, at::kFloat);
  at::Tensor b = at::full({70000}, 2 * (r + 1), at::kBFloat16);
  std::vector<std::int64_t> rows;
  for (int q = 0; q < w; ++q) rows.push_back(q % 3);
  const at::Tensor mine = at::full({r % 3, 2}, r, at::kLong);
  auto reduce_a = comm->all_reduce_async(a, ReduceOp::kSum);
  auto reduce_b = comm->all_reduce_async(b, ReduceOp::kMax);
  auto gather = comm->all_gather_async(mine, rows);
  gather->wait();
  reduce_b->wait();
  reduce_a->wait();
  EXPECT_TRUE(a.eq(w * (w + 1) / 2).all().item<bool>());
  EXPECT_TRUE(b.eq(2 * w).all().item<bool>());
  EXPECT_TRUE(reduce_a->result().is_same(a));
  std::vector<at::Tensor> parts;
  for (int q = 0; q < w; ++q) parts.push_back(at::full({q % 3, 2}, q, at::kLong));
  EXPECT_TRUE(gather->result().equal(at::cat(parts)));
  // Waiting twice is harmless.
  reduce_a->wait();
  EXPECT_TRUE(a.eq(w * (w + 1) / 2).all().item<bool>());
}

TEST(CommunicatorWork, EqualRowsNeedNoExchangeAndHostValuesGather) {
  auto comm = test::world();
  const int w = comm->size();
  const int r = comm->rank();
  const at::Tensor got = comm->all_gather_equal(at::full({2, 3}, r, at::kFloat));
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2 * w, 3}));
  for (int q = 0; q < w; ++q) EXPECT_TRUE(got.narrow(0, 2 * q, 2).eq(q).all().item<bool>());
  const auto values = comm->host_all_gather({r, 10 * r, -r});
  ASSERT_EQ(values.size(), 3u * static_cast<std::size_t>(w));
  for (int q = 0; q < w; ++q) {
    EXPECT_EQ(values[3 * q], q);
    EXPECT_EQ(values[3 * q + 1], 10 * q);
    EXPECT_EQ(values[3 * q + 2], -q);
  }
}

TEST(CommunicatorWork, RowCountsThatDoNotMatchThisRankAreAnError) {
  auto comm = test::world();
  // Every rank claims one row more than it has: caught before any message is sent.
  std::vector<std::int64_t> rows(static_cast<std::size_t>(comm->size()), 3);
  try {
    comm->all_gather_async(at::zeros({2, 4}), rows);
    ADD_FAILURE() << "accepted row counts that disagree with the tensor";
  } catch (const DistError& e) {
    EXPECT_NE(std::string(e.what()).find("this rank has 2 rows"), std::string::npos) << e.what();
  }
  at::Tensor t = at::ones({2});
  comm->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(t.eq(comm->size()).all().item<bool>());
}

class ReduceScatterTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(ReduceScatterTest, EachRankGetsItsReducedBlock) {
  const at::ScalarType dtype = GetParam();
  auto comm = test::world();
  const int w = comm->size();
  const int r = comm->rank();
  // Input rows: element (row, col) = (rank + 1) * (row + 1); 2 rows per rank, 3 columns.
  const at::Tensor rows = (at::arange(2 * w, at::kLong) + 1).unsqueeze(1).expand({2 * w, 3});
  const at::Tensor input = (rows * (r + 1)).to(dtype);
  const at::Tensor got = comm->reduce_scatter(input, ReduceOp::kSum);
  const at::Tensor expected = (rows.slice(0, 2 * r, 2 * r + 2) * (w * (w + 1) / 2)).to(dtype);
  EXPECT_EQ(got.scalar_type(), dtype);
  EXPECT_TRUE(got.equal(expected));

  const at::Tensor maxed = comm->reduce_scatter(input, ReduceOp::kMax);
  EXPECT_TRUE(maxed.equal((rows.slice(0, 2 * r, 2 * r + 2) * w).to(dtype)));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReduceScatterTest,
                         ::testing::Values(at::kFloat, at::kDouble, at::kBFloat16, at::kHalf,
                                           at::kInt, at::kLong));

TEST(CommunicatorTest, ReduceScatterAvgAndBadShape) {
  auto comm = test::world();
  const int w = comm->size();
  const at::Tensor input = at::full({w * 4}, static_cast<double>(comm->rank()), at::kDouble);
  const at::Tensor got = comm->reduce_scatter(input, ReduceOp::kAvg);
  EXPECT_TRUE(got.eq((w - 1) / 2.0).all().item<bool>());
  EXPECT_EQ(got.size(0), 4);
  if (w > 1) {
    EXPECT_THROW(comm->reduce_scatter(at::zeros({w * 4 + 1}), ReduceOp::kSum), DistError);
  }
  EXPECT_THROW(comm->reduce_scatter(at::scalar_tensor(1.0), ReduceOp::kSum), DistError);
}

TEST(CommunicatorTest, BroadcastFromEveryRoot) {
  auto comm = test::world();
  for (int root = 0; root < comm->size(); ++root) {
    for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16, at::kInt, at::kLong, at::kByte}) {
      at::Tensor t = comm->rank() == root ? (at::arange(10, at::kLong) + root).to(dtype)
                                          : at::zeros({10}, dtype);
      comm->broadcast(t, root);
      EXPECT_TRUE(t.equal((at::arange(10, at::kLong) + root).to(dtype)))
          << "root " << root << " dtype " << c10::toString(dtype);
    }
  }
  at::Tensor empty = at::zeros({0, 3});
  comm->broadcast(empty, 0);
  EXPECT_EQ(empty.numel(), 0);
  at::Tensor t = at::zeros({2});
  EXPECT_THROW(comm->broadcast(t, comm->size()), DistError);
}

TEST(CommunicatorTest, BarrierAndUnsupportedDtype) {
  auto comm = test::world();
  comm->barrier();
  at::Tensor b = at::zeros({3}, at::kBool);
  EXPECT_THROW(comm->all_reduce(b, ReduceOp::kMax), DistError);
  comm->barrier();
}

}  // namespace
}  // namespace facetrain
