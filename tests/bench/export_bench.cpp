// CPU inference throughput of exported models against LibTorch, measured in the same run on the
// same number of threads: images/s of the LibTorch backbone (eager), of its TorchScript export,
// and of its ONNX export in onnxruntime, at batch 1 and 32, with and without BatchNorm folding.
// Weights are random with BatchNorm statistics measured on random images (speed does not depend
// on their values).
//
//   export_bench [--networks mbf,iresnet50] [--batches 1,32] [--threads 1] [--seconds 2]

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn.h>
#include <torch/script.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "app/export/exporter.h"
#include "app/export/graph_builder.h"
#include "app/export/onnx_writer.h"
#include "app/export/torchscript_writer.h"
#include "models/backbone.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace facetrain;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

// Images/s of `forward` on random [batch, 3, 112, 112] inputs, after two warm-up calls, over at
// least `seconds`.
template <typename F>
double images_per_second(F&& forward, std::int64_t batch, double seconds) {
  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::rand({batch, 3, 112, 112}) * 2 - 1;
  forward(x);
  forward(x);
  int runs = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    forward(x);
    ++runs;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds || runs < 2);
  return static_cast<double>(runs * batch) / elapsed;
}

std::shared_ptr<models::BackboneImpl> calibrated(const std::string& network) {
  torch::manual_seed(5);
  auto net = models::make_backbone(network);
  torch::NoGradGuard no_grad;
  for (auto& m : net->modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) bn->options.momentum(1.0);
    if (auto* bn = m->as<torch::nn::BatchNorm1d>()) bn->options.momentum(1.0);
  }
  net->train();
  net->forward(torch::rand({8, 3, 112, 112}) * 2 - 1);
  net->eval();
  return net;
}

// onnxruntime's images/s per batch size, from tests/bench/onnxruntime_bench.py.
std::map<std::int64_t, double> onnxruntime_rates(const fs::path& model, const std::string& batches,
                                                 int threads, double seconds) {
  const fs::path script = fs::path(exporting::verify_onnx_script()).parent_path().parent_path() /
                          "tests" / "bench" / "onnxruntime_bench.py";
  const std::string command = fmt::format("{} {} {} --batches {} --threads {} --seconds {} 2>&1",
                                          exporting::python_executable(), script.string(),
                                          model.string(), batches, threads, seconds);
  FILE* pipe = ::popen(command.c_str(), "r");
  std::map<std::int64_t, double> rates;
  std::string output;
  char line[512];
  while (pipe != nullptr && std::fgets(line, sizeof(line), pipe) != nullptr) {
    output += line;
    long long batch = 0;
    double rate = 0;
    if (std::sscanf(line, "%lld %lf", &batch, &rate) == 2) rates[batch] = rate;
  }
  if (pipe == nullptr || ::pclose(pipe) != 0) {
    throw std::runtime_error("onnxruntime benchmark failed: " + command + "\n" + output);
  }
  return rates;
}

}  // namespace

int main(int argc, char** argv) {
  std::string networks = "mbf";
  std::string batches = "1,32";
  int threads = 1;
  double seconds = 2.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--networks")
      networks = argv[i + 1];
    else if (flag == "--batches")
      batches = argv[i + 1];
    else if (flag == "--threads")
      threads = std::stoi(argv[i + 1]);
    else if (flag == "--seconds")
      seconds = std::stod(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const fs::path dir =
      fs::temp_directory_path() / fmt::format("facetrain-export-bench-{}", ::getpid());
  fs::create_directories(dir);
  fmt::print(
      "CPU inference, {} thread(s), 112x112 inputs, >= {} s per figure; ratio = against "
      "LibTorch eager in this run\n",
      threads, seconds);
  fmt::print("{:<10} {:<28} {:>6} {:>10} {:>7}\n", "network", "runtime", "batch", "img/s", "ratio");
  int status = 0;
  try {
    for (const auto& network : split(networks)) {
      auto net = calibrated(network);
      std::map<std::int64_t, double> base;
      for (const auto& b : split(batches)) {
        const std::int64_t batch = std::stoll(b);
        base[batch] =
            images_per_second([&](const at::Tensor& x) { return net->forward(x); }, batch, seconds);
        fmt::print("{:<10} {:<28} {:>6} {:>10.1f} {:>7.2f}\n", network, "LibTorch eager", batch,
                   base[batch], 1.0);
      }
      for (const bool fold : {false, true}) {
        const auto graph = exporting::build_graph(*net, {false, fold});
        const fs::path onnx = dir / fmt::format("{}-{}.onnx", network, fold);
        std::ofstream(onnx, std::ios::binary) << exporting::onnx_model_bytes(graph, 17, "bench");
        torch::jit::Module script = exporting::torchscript_module(graph);
        const std::string suffix = fold ? ", BN folded" : "";
        for (const auto& [batch, rate] : base) {
          const double ts = images_per_second(
              [&](const at::Tensor& x) { return script.forward({x}); }, batch, seconds);
          fmt::print("{:<10} {:<28} {:>6} {:>10.1f} {:>7.2f}\n", network, "TorchScript" + suffix,
                     batch, ts, ts / rate);
        }
        for (const auto& [batch, rate] : onnxruntime_rates(onnx, batches, threads, seconds)) {
          fmt::print("{:<10} {:<28} {:>6} {:>10.1f} {:>7.2f}\n", network, "onnxruntime" + suffix,
                     batch, rate, rate / base.at(batch));
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_bench: %s\n", e.what());
    status = 1;
  }
  fs::remove_all(dir);
  return status;
}
