#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "app/cli/option_ranges.h"
#include "app/cli/commands.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"

namespace facetrain::cli {
namespace {

struct EnvArgs {
  std::string device = "auto";
  std::string backend = "auto";
  double timeout_s = 60.0;
  bool check = false;
  double check_mb = 64.0;
};

// Closed-form checks of the collectives across the real launch, then all_reduce bandwidth.
void run_checks(dist::Communicator& comm, const EnvArgs& args) {
  const int w = comm.size();
  const int r = comm.rank();
  auto fail = [&](const std::string& what) {
    throw DistError(fmt::format("env --check on rank {}: {}", r, what));
  };
  at::Tensor t = at::full({1000}, static_cast<double>(r + 1), at::kDouble);
  comm.all_reduce(t, dist::ReduceOp::kSum);
  if (!t.eq(w * (w + 1) / 2.0).all().item<bool>()) fail("all_reduce(sum) gave a wrong value");
  at::Tensor gathered = comm.all_gather(at::full({2}, r, at::kLong));
  if (!gathered.equal(at::arange(w, at::kLong).repeat_interleave(2))) {
    fail("all_gather returned the ranks out of order");
  }
  at::Tensor b = at::full({16}, r == w - 1 ? 7 : -1, at::kInt);
  comm.broadcast(b, w - 1);
  if (!b.eq(7).all().item<bool>()) fail("broadcast did not deliver the root's tensor");
  comm.barrier();

  const auto n = static_cast<std::int64_t>(args.check_mb * 1e6 / 4);
  at::Tensor big = at::ones({n}, at::kFloat);
  comm.all_reduce(big, dist::ReduceOp::kSum);  // warm-up
  constexpr int kIters = 5;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) {
    big.fill_(1.0f);
    comm.all_reduce(big, dist::ReduceOp::kSum);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / kIters;
  if (!big.eq(static_cast<float>(w)).all().item<bool>()) fail("large all_reduce gave a wrong sum");
  if (r == 0) {
    const double algbw = static_cast<double>(n) * 4 / secs / 1e9;
    fmt::print("collectives: all_reduce, all_gather, broadcast, barrier correct on {} rank(s)\n",
               w);
    fmt::print("all_reduce {:.1f} MB float32: {:.2f} ms, algbw {:.2f} GB/s, busbw {:.2f} GB/s\n",
               args.check_mb, secs * 1e3, algbw, algbw * 2.0 * (w - 1) / w);
  }
}

}  // namespace

void add_env_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "env",
      "Show how the launcher placed the ranks (host, local rank, device); --check also "
      "verifies the collectives and measures all_reduce bandwidth");
  auto args = std::make_shared<EnvArgs>();
  sub->add_option("--device", args->device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sub->add_option("--backend", args->backend, "auto, local or mpi")
      ->check(CLI::IsMember({"auto", "local", "mpi", "nccl"}));
  sub->add_option("--timeout", args->timeout_s, "deadline of each collective in seconds")
      ->check(seconds_range());
  sub->add_flag("--check", args->check, "Run the collective checks and the bandwidth test");
  sub->add_option("--check-mb", args->check_mb, "all_reduce size of the bandwidth test in MB")
      ->check(megabytes_range());
  out.emplace_back(sub, [&ctx, args] {
    const auto& env = ctx.start_mpi().env();
    const c10::Device device = dist::choose_device(args->device, env);
    auto comm = dist::make_communicator(args->backend, env, args->timeout_s);

    // Host names come with the launch; each rank's local rank and device are gathered here.
    const at::Tensor mine = at::tensor(
        {static_cast<std::int64_t>(env.local_rank),
         static_cast<std::int64_t>(device.is_cuda() ? device.index() : -1)},
        at::kLong);
    const at::Tensor all = comm->all_gather(mine.unsqueeze(0));
    if (env.rank == 0) {
      fmt::print("world size {} ({} back end): {}\n", comm->size(), comm->backend(),
                 dist::describe_placement(env));
      fmt::print("{:>5}  {:<24} {:>10}  {}\n", "rank", "host", "local rank", "device");
      for (int r = 0; r < comm->size(); ++r) {
        const auto gpu = all[r][1].item<std::int64_t>();
        fmt::print("{:>5}  {:<24} {:>10}  {}\n", r, env.hosts.at(r), all[r][0].item<std::int64_t>(),
                   gpu < 0 ? std::string("cpu") : fmt::format("cuda:{}", gpu));
      }
    }
    if (args->check) run_checks(*comm, *args);
    return 0;
  });
}

}  // namespace facetrain::cli
