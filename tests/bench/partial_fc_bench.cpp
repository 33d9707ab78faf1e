// Partial FC step time and memory, and the bucketed gradient all-reduce against one raw
// MPI_Allreduce of the same bytes. Run under mpirun (scripts/bench.sh fc | allreduce).
//
//   partial_fc_bench fc [--classes 10000,100000,1000000] [--rates 1.0,0.1] [--batch 256]
//                       [--dim 512] [--steps 3] [--header 1]
//   partial_fc_bench allreduce [--repeats 5]
//
// fc: per class count and sample rate, the median step (all-gather, logits, margin head,
// distributed softmax, backward, sparse optimizer update) and this rank's memory: the resident
// classifier state measured as the RSS growth when it is built, against the model
// C/W·d·4 bytes·(1 + optimizer slots), and the peak RSS growth during the steps (VmHWM, reset
// per case through /proc/self/clear_refs). allreduce: the gradients of iresnet50's parameters
// (43.6M floats, 174 MB) reduced by GradientReducer in 25 MB buckets against one MPI_Allreduce of
// a 174 MB buffer, medians of --repeats runs, and the ratio raw time / bucketed time.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "framework/distributed/gradient_reducer.h"
#include "framework/distributed/mpi_runtime.h"
#include "losses/combined_margin_head.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"

namespace {

using namespace facetrain;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A /proc/self/status field in kB (VmRSS, VmHWM).
double status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  }
  return 0;
}

void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

int run_fc(int argc, char** argv, const std::shared_ptr<dist::Communicator>& comm) {
  std::vector<std::int64_t> classes;
  std::stringstream list(arg(argc, argv, "--classes", "10000,100000,1000000"));
  for (std::string item; std::getline(list, item, ',');) classes.push_back(std::stoll(item));
  const std::int64_t batch = std::stoll(arg(argc, argv, "--batch", "256"));
  const std::int64_t dim = std::stoll(arg(argc, argv, "--dim", "512"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "3"));
  std::vector<double> rates;
  std::stringstream rate_list(arg(argc, argv, "--rates", "1.0,0.1"));
  for (std::string item; std::getline(rate_list, item, ',');) rates.push_back(std::stod(item));
  const bool header = arg(argc, argv, "--header", "1") == "1";
  const int w = comm->size();
  const bool root = comm->rank() == 0;
  if (root && header) {
    fmt::print("world {}, global batch {}, d {}, SGD momentum (1 slot), {} thread(s)/rank\n", w,
               batch, dim, at::get_num_threads());
    fmt::print("{:>9} {:>6} {:>8} {:>10} {:>11} {:>11} {:>8} {:>11}\n", "classes", "rate",
               "sampled", "step ms", "state MB", "model MB", "ratio", "peak MB");
  }
  const auto rows = losses::class_shard(batch, comm->rank(), w);
  for (const std::int64_t c : classes) {
    double full_step = 0;
    for (const double rate : rates) {
      comm->barrier();
      const double rss0 = status_kb("VmRSS");
      auto fc = std::make_unique<losses::PartialFC>(
          losses::PartialFCOptions().num_classes(c).embedding_size(dim).sample_rate(rate),
          std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0), comm);
      const double state_mb = (status_kb("VmRSS") - rss0) / 1024.0;
      const double model_mb =
          static_cast<double>(fc->range().size() * dim * 4 * 2) / (1024.0 * 1024.0);
      at::manual_seed(1);
      const at::Tensor x = at::randn({batch, dim});
      const at::Tensor labels = at::randint(c, {batch}, at::kLong);
      reset_peak_rss();
      const double hwm0 = status_kb("VmRSS");
      std::vector<double> times;
      for (int s = 0; s <= steps; ++s) {
        at::Tensor e = x.narrow(0, rows.lo, rows.size()).clone().requires_grad_(true);
        comm->barrier();
        const auto t0 = Clock::now();
        fc->forward(e, labels.narrow(0, rows.lo, rows.size()), s).backward();
        fc->step(0.1);
        comm->barrier();
        if (s > 0) times.push_back(since(t0));  // the first step warms the allocator
      }
      const double peak_mb = (status_kb("VmHWM") - hwm0) / 1024.0;
      const double step_ms = median(times) * 1e3;
      if (rate == 1.0) full_step = step_ms;
      if (root) {
        fmt::print("{:>9} {:>6.1f} {:>8} {:>10.1f} {:>11.1f} {:>11.1f} {:>8.3f} {:>11.1f}", c, rate,
                   fc->last_sampled().numel(), step_ms, state_mb, model_mb, state_mb / model_mb,
                   peak_mb);
        if (rate < 1.0 && full_step > 0) {
          fmt::print("   step({})/step(1.0) = {:.3f}", rate, step_ms / full_step);
        }
        fmt::print("\n");
      }
    }
  }
  return 0;
}

int run_allreduce(int argc, char** argv, const std::shared_ptr<dist::Communicator>& comm) {
  const int repeats = std::stoi(arg(argc, argv, "--repeats", "5"));
  auto net = models::make_backbone("iresnet50");
  std::vector<at::Tensor> params;
  for (auto& p : net->parameters()) {
    if (p.requires_grad()) params.push_back(p);  // features.weight is frozen, as in insightface
  }
  std::int64_t elements = 0;
  for (auto& p : params) elements += p.numel();
  dist::GradientReducer reducer(params, {}, comm, dist::GradientReducerOptions().bucket_mb(25));
  at::Tensor raw = at::full({elements}, comm->rank() + 1.0f);
  std::vector<double> bucketed, direct;
  for (int i = 0; i <= repeats; ++i) {
    reducer.prepare();
    for (auto& p : params) p.mutable_grad().fill_(comm->rank() + 1.0);
    comm->barrier();
    auto t0 = Clock::now();
    reducer.finish();
    if (i > 0) bucketed.push_back(since(t0));
    comm->barrier();
    t0 = Clock::now();
    MPI_Allreduce(MPI_IN_PLACE, raw.data_ptr(), static_cast<int>(elements), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    if (i > 0) direct.push_back(since(t0));
    raw.fill_(comm->rank() + 1.0f);
  }
  const double expect = comm->size() * (comm->size() + 1) / 2.0;
  bool ok = true;
  for (auto& p : params) ok = ok && p.grad().eq(expect).all().item<bool>();
  if (comm->rank() == 0) {
    const double mb = static_cast<double>(elements) * 4 / 1e6;
    fmt::print("iresnet50 gradients: {} floats = {:.1f} MB, {} buckets of <= 25 MB, world {}\n",
               elements, mb, reducer.num_buckets(), comm->size());
    fmt::print("raw MPI_Allreduce (one buffer): {:.1f} ms  {:.2f} GB/s\n", median(direct) * 1e3,
               mb / 1e3 / median(direct));
    fmt::print("GradientReducer (buckets):      {:.1f} ms  {:.2f} GB/s\n", median(bucketed) * 1e3,
               mb / 1e3 / median(bucketed));
    fmt::print("ratio raw/bucketed = {:.3f} (1.0 = as fast as one raw all-reduce); sums {}\n",
               median(direct) / median(bucketed), ok ? "correct" : "WRONG");
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  dist::MpiRuntime mpi(&argc, &argv);
  auto comm = dist::make_communicator("auto", mpi.env(), 600.0);
  const std::string which = argc > 1 ? argv[1] : "fc";
  if (which == "fc") return run_fc(argc, argv, comm);
  if (which == "allreduce") return run_allreduce(argc, argv, comm);
  fmt::print(stderr, "usage: partial_fc_bench fc|allreduce [options]\n");
  return 2;
}
