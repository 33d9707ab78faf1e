// Training throughput of the backbones: forward + backward images/s at 112×112, and the
// arithmetic rate they reach as a fraction of a large matrix product's in the same precision,
// measured in the same run on the same device (model FLOPs utilisation against that product;
// with --peak-tflops also against the hardware's datasheet peak).
//
//   backbone_bench [--networks mbf,iresnet50,vit_t,vit_s] [--batch 32] [--iters 3] [--threads N]
//                  [--device cpu|cuda] [--amp none|bf16] [--peak-tflops T]

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#include <torch/nn.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "framework/core/autocast.h"
#include "models/backbone.h"

namespace {

using Clock = std::chrono::steady_clock;
using facetrain::models::make_backbone;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Forward FLOPs of one call, as counted by the profiler (convolutions and matrix products).
double forward_flops(facetrain::models::BackboneImpl& net, const at::Tensor& images) {
  namespace prof = torch::profiler::impl;
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true,
                                    /*profile_memory=*/false, /*with_stack=*/false,
                                    /*with_flops=*/true);
  const std::set<prof::ActivityType> cpu = {prof::ActivityType::CPU};
  torch::autograd::profiler::prepareProfiler(config, cpu);
  torch::autograd::profiler::enableProfiler(config, cpu);
  {
    torch::NoGradGuard no_grad;
    net.forward(images);
  }
  const auto result = torch::autograd::profiler::disableProfiler();
  double flops = 0;
  for (const auto& e : result->events()) flops += static_cast<double>(e.flops());
  return flops;
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double matmul_gflops(int iters, const c10::Device& device, at::ScalarType dtype) {
  const std::int64_t n = device.is_cuda() ? 8192 : 2048;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const at::Tensor a = torch::randn({n, n}, options);
  const at::Tensor b = torch::randn({n, n}, options);
  at::Tensor c = torch::mm(a, b);  // warm-up
  synchronize(device);
  const auto start = Clock::now();
  for (int i = 0; i < iters; ++i) c = torch::mm(a, b);
  synchronize(device);
  return 2.0 * n * n * n * iters / seconds_since(start) / 1e9;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string networks = "mbf,iresnet50,vit_t,vit_s";
  std::int64_t batch = 32;
  int iters = 3;
  int threads = 0;
  std::string device_name = "cpu", amp = "none";
  double peak_tflops = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--networks")
      networks = argv[i + 1];
    else if (flag == "--batch")
      batch = std::atoll(argv[i + 1]);
    else if (flag == "--iters")
      iters = std::atoi(argv[i + 1]);
    else if (flag == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (flag == "--device")
      device_name = argv[i + 1];
    else if (flag == "--amp")
      amp = argv[i + 1];
    else if (flag == "--peak-tflops")
      peak_tflops = std::atof(argv[i + 1]);
  }
  const c10::Device device(device_name);
  const auto amp_dtype = facetrain::autocast_dtype(amp);
  if (threads > 0) at::set_num_threads(threads);
  torch::manual_seed(0);
  const double peak = matmul_gflops(10, device, amp_dtype.value_or(at::kFloat));
  fmt::print("device {}  amp {}  threads {}  batch {}  112x112\n", device.str(), amp,
             at::get_num_threads(), batch);
  fmt::print("{} matmul: {:.1f} GFLOP/s (baseline){}\n", amp_dtype ? amp : "float32", peak,
             peak_tflops > 0 ? fmt::format("; datasheet peak {:.0f} TFLOP/s", peak_tflops) : "");
  fmt::print("{:<12} {:>10} {:>12} {:>14} {:>10}\n", "network", "img/s", "GFLOP/img", "GFLOP/s",
             "of matmul");
  for (const auto& name : split(networks)) {
    auto net = make_backbone(name);
    net->to(device);
    net->train();
    torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    const at::Tensor images = torch::rand({batch, 3, 112, 112}, torch::Device(device)) * 2 - 1;
    // Forward + backward ≈ 3 × forward in arithmetic (the backward needs two products per layer).
    const double step_flops = 3.0 * forward_flops(*net, images);
    auto step = [&] {
      sgd.zero_grad();
      at::Tensor loss;
      {
        facetrain::AutocastScope autocast(device.type(), amp_dtype);
        loss = net->forward(images).to(at::kFloat).pow(2).mean();
      }
      loss.backward();
    };
    step();  // warm-up
    synchronize(device);
    const auto start = Clock::now();
    for (int i = 0; i < iters; ++i) step();
    synchronize(device);
    const double secs = seconds_since(start) / iters;
    const double gflops = step_flops / secs / 1e9;
    fmt::print(
        "{:<12} {:>10.1f} {:>12.2f} {:>14.1f} {:>9.1f}%{}\n", name, batch / secs,
        step_flops / 3.0 / batch / 1e9, gflops, 100.0 * gflops / peak,
        peak_tflops > 0 ? fmt::format("  MFU {:.1f}%", 100.0 * gflops / (peak_tflops * 1e3)) : "");
  }
  return 0;
}
