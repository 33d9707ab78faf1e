// The loader pipeline (shard reads, libjpeg-turbo decode, flip, batching, queue) against a tight
// decode loop over the same JPEG bytes already in memory, both at 1 and 2 threads, in one run.
//
//   loader_bench [--images 4096] [--batch 128] [--quality 95]

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "data/image/jpeg_codec.h"
#include "data/loader/face_loader.h"
#include "data/shards/sharded_dataset.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using namespace facetrain::data;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Smooth face-sized images with noise, so the JPEGs have realistic entropy.
at::Tensor synthetic_image(std::int64_t i) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(i) + 1);
  const at::Tensor base = at::rand({3, 14, 14}, gen) * 255;
  const at::Tensor up = at::upsample_bilinear2d(base.unsqueeze(0), {112, 112}, false).squeeze(0);
  const at::Tensor noisy = up + at::randn({3, 112, 112}, gen) * 6;
  return noisy.clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
}

// Decodes every blob `rounds` times on `threads` threads; returns images per second.
double raw_decode_rate(const std::vector<std::vector<std::uint8_t>>& blobs, int threads,
                       int rounds) {
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      JpegCodec codec;
      at::Tensor out;
      for (int r = 0; r < rounds; ++r) {
        for (std::size_t i = static_cast<std::size_t>(t); i < blobs.size();
             i += static_cast<std::size_t>(threads)) {
          codec.decode(blobs[i].data(), blobs[i].size(), out, "bench");
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return static_cast<double>(blobs.size()) * rounds / since(start);
}

double loader_rate(const std::shared_ptr<ShardedDataset>& ds, int workers, std::int64_t batch,
                   int epochs, bool flip) {
  LoaderOptions o;
  o.flip = flip;
  o.batch_size = batch;
  o.num_workers = workers;
  o.prefetch = 4;
  FaceLoader loader(ds, o);
  std::int64_t images = 0;
  const auto start = Clock::now();
  for (int e = 0; e < epochs; ++e) {
    loader.start({e, 0});
    while (auto b = loader.next()) images += b->images.size(0);
  }
  return static_cast<double>(images) / since(start);
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t n = 4096;
  std::int64_t batch = 128;
  int quality = 95;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--images")
      n = std::atoll(argv[i + 1]);
    else if (flag == "--batch")
      batch = std::atoll(argv[i + 1]);
    else if (flag == "--quality")
      quality = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(1);
  const fs::path dir =
      fs::temp_directory_path() / ("facetrain_loader_bench_" + std::to_string(::getpid()));
  std::vector<std::vector<std::uint8_t>> blobs;
  {
    JpegCodec codec;
    ShardedDatasetWriter writer(dir, 112, 112, 1024);
    for (std::int64_t i = 0; i < n; ++i) {
      blobs.push_back(codec.encode(synthetic_image(i), quality));
      writer.add(static_cast<std::int32_t>(i % 100), blobs.back());
    }
    writer.finish(100);
  }
  auto ds = std::make_shared<ShardedDataset>(dir);
  std::size_t bytes = 0;
  for (const auto& b : blobs) bytes += b.size();
  fmt::print("{} JPEGs 112x112 q{} 4:2:0, {:.1f} KB each; batch {}\n", n, quality,
             bytes / 1024.0 / static_cast<double>(n), batch);
  fmt::print("{:<8} {:>16} {:>16} {:>8} {:>20} {:>8}\n", "threads", "raw decode img/s",
             "loader img/s", "ratio", "loader no-flip img/s", "ratio");
  for (int threads : {1, 2}) {
    raw_decode_rate(blobs, threads, 1);  // warm caches
    const double raw = raw_decode_rate(blobs, threads, 3);
    loader_rate(ds, threads, batch, 1, true);
    const double pipe = loader_rate(ds, threads, batch, 3, true);
    const double no_flip = loader_rate(ds, threads, batch, 3, false);
    fmt::print("{:<8} {:>16.0f} {:>16.0f} {:>8.2f} {:>20.0f} {:>8.2f}\n", threads, raw, pipe,
               pipe / raw, no_flip, no_flip / raw);
  }
  fs::remove_all(dir);
  return 0;
}
