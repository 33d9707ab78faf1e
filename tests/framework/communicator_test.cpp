// Collectives of the MPI communicator across real processes (mpirun -np 1, 2, 4), each checked
// against its closed form in the ranks and the world size.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include "framework/core/error.h"
#include "framework/distributed/launcher_daemon.h"
#include "framework/distributed/mpi_communicator.h"
#include "framework/distributed/peer_probe.h"
#include "tests/support/thrown_message.h"
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

// --- naming what went wrong -----------------------------------------------------------------

TEST(JobHealthTest, HostsAndPlacementComeWithTheLaunch) {
  const auto& env = test::launch_env();
  ASSERT_EQ(static_cast<int>(env.hosts.size()), env.world_size);
  EXPECT_EQ(env.hosts.at(env.rank), env.hostname);
  const std::string placement = dist::describe_placement(env);
  EXPECT_EQ(placement.rfind(fmt::format("{} rank", env.world_size), 0), 0u) << placement;
  EXPECT_NE(placement.find(env.hostname), std::string::npos) << placement;
  // The tests run under mpirun (mpiexec): the launcher that started this rank is found.
  const auto daemon = dist::launcher_daemon();
  ASSERT_TRUE(daemon.has_value());
  EXPECT_TRUE((std::set<std::string>{"mpiexec", "mpirun", "orterun", "orted"}.count(daemon->name)))
      << daemon->name;
  EXPECT_EQ(dist::process_start_ticks(daemon->pid), daemon->start_ticks);
}

TEST(JobHealthTest, EveryLiveRankAnswersEvenWhileItComputes) {
  const auto peers = test::launch_env().peers;
  if (!peers) GTEST_SKIP() << "a world of one has no peers";
  auto world = test::world();
  world->barrier();
  if (world->rank() == world->size() - 1) {
    std::this_thread::sleep_for(std::chrono::seconds(1));  // busy, outside any MPI call
  } else if (world->rank() == 0) {
    const auto answers = peers->ask_peers(std::chrono::seconds(5));
    ASSERT_EQ(static_cast<int>(answers.size()), world->size() - 1);
    for (const auto& a : answers) {
      EXPECT_TRUE(a.answered) << "rank " << a.rank << ": " << a.status;
      EXPECT_FALSE(a.status.empty());
    }
  }
  world->barrier();
}

// Whether process `pid` is stopped (state T in /proc/PID/stat).
bool stopped(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.substr(close + 2, 1) == "T";
}

TEST(JobHealthTest, AStoppedRankIsNamedAsSilent) {
  const auto& env = test::launch_env();
  if (!env.peers) GTEST_SKIP() << "a world of one has no peers";
  if (std::set<std::string>(env.hosts.begin(), env.hosts.end()).size() != 1) {
    GTEST_SKIP() << "the stopped rank is continued by pid: needs one host";
  }
  auto world = test::world();
  const auto pids = world->host_all_gather({static_cast<std::int64_t>(::getpid())});
  const int last = world->size() - 1;
  world->barrier();
  if (world->rank() == last) ::raise(SIGSTOP);  // until rank 0 continues it
  if (world->rank() == 0) {
    const auto pid = static_cast<pid_t>(pids.at(last));
    for (int i = 0; i < 200 && !stopped(pid); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::string account = env.peers->account(std::chrono::milliseconds(800));
    ::kill(pid, SIGCONT);
    EXPECT_NE(account.find(fmt::format("no answer within 0.8 s from rank {} on {}", last,
                                       env.hosts.at(last))),
              std::string::npos)
        << account;
    if (last > 1) {
      EXPECT_NE(account.find("answered: rank 1 on "), std::string::npos) << account;
    }
  }
  world->barrier();
}

TEST(JobHealthTest, ATimeoutSaysWhereTheOtherRanksAre) {
  const auto& env = test::launch_env();
  if (!env.peers) GTEST_SKIP() << "a world of one has no peers";
  auto world = test::world();
  auto comm = std::make_shared<dist::MpiCommunicator>(MPI_COMM_WORLD,
                                                      std::chrono::milliseconds(500), env.peers);
  at::Tensor t = at::ones({4});
  if (world->rank() == 0) {
    const std::string message = test::thrown_message<DistError>([&] { comm->all_reduce(t); });
    EXPECT_NE(message.find(fmt::format("rank 0/{} on {}: all_reduce #1 (sum, Float[4]) timed out "
                                       "after 0.5 s (dist.timeout_s): every other rank answered",
                                       world->size(), env.hosts[0])),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(fmt::format("rank 1 on {} (communicator ", env.hosts[1])),
              std::string::npos)
        << message;
    world->barrier();
  } else {
    world->barrier();
    comm->all_reduce(t);  // late: completes rank 0's abandoned collective, so none stays open
  }
  world->barrier();
}

}  // namespace
}  // namespace facetrain
