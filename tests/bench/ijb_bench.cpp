// IJB-C at full size with random features: template aggregation of 469,375 images, scoring of
// 15,658,489 template pairs and the ROC with TAR@FAR, against one std::sort of the 15.6M scores
// in the same run, on one core. With --write-weights PATH it writes an untrained mbf instead
// (for scripts/bench.sh's embedding-throughput runs of `facetrain eval --ijb`).
//
// usage: ijb_bench [--images N] [--templates T] [--pairs K] [--dim D] | --write-weights PATH

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "app/eval/ijb.h"
#include "models/backbone.h"
#include "models/state_dict.h"

namespace {

using namespace facetrain::eval;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t images = 469375, templates = 23124, pairs = 15658489, dim = 512, genuine = 19557;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--write-weights") {
      at::manual_seed(1);
      facetrain::models::write_state_dict(
          argv[i + 1], facetrain::models::state_dict(*facetrain::models::make_backbone("mbf")));
      return 0;
    }
    const std::int64_t v = std::stoll(argv[i + 1]);
    if (key == "--images") images = v;
    if (key == "--templates") templates = v;
    if (key == "--pairs") pairs = v;
    if (key == "--dim") dim = v;
  }
  at::set_num_threads(1);
  at::manual_seed(1);
  fmt::print("IJB-C size: {} images, {} templates, {} pairs, {}-d features, one core\n", images,
             templates, pairs, dim);

  // Images spread over templates and media (about 3 media per template), float32 as a network
  // gives them.
  const at::Tensor features = at::randn({images, dim});
  std::vector<std::int64_t> tids(static_cast<std::size_t>(images)), mids(tids.size());
  for (std::int64_t i = 0; i < images; ++i) {
    tids[static_cast<std::size_t>(i)] = 1 + i * templates / images;
    mids[static_cast<std::size_t>(i)] = 1 + i * 3 * templates / images;
  }
  auto t0 = std::chrono::steady_clock::now();
  const TemplateFeatures tf = template_features(features, tids, mids);
  const double aggregate_s = seconds_since(t0);

  // Pairs as IJB-C's file orders them: by first template, the second anywhere.
  std::vector<std::int64_t> first(static_cast<std::size_t>(pairs)), second(first.size());
  std::vector<std::uint8_t> labels(first.size(), 0);
  const at::Tensor random_second = at::randint(1, templates + 1, {pairs}, at::kLong);
  const auto* rs = random_second.data_ptr<std::int64_t>();
  for (std::int64_t k = 0; k < pairs; ++k) {
    first[static_cast<std::size_t>(k)] = 1 + k * templates / pairs;
    second[static_cast<std::size_t>(k)] = rs[k];
    labels[static_cast<std::size_t>(k)] = k % (pairs / genuine) == 0 ? 1 : 0;
  }
  t0 = std::chrono::steady_clock::now();
  const at::Tensor scores = pair_scores(tf, first, second);
  const double score_s = seconds_since(t0);
  const double* s = scores.data_ptr<double>();
  std::vector<double> values(s, s + pairs);

  t0 = std::chrono::steady_clock::now();
  const RocCurve roc = sklearn_roc(values, labels);
  const auto tar = tar_at_far(roc, {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1});
  const double roc_s = seconds_since(t0);

  std::vector<double> copy = values;
  t0 = std::chrono::steady_clock::now();
  std::sort(copy.begin(), copy.end());
  const double sort_s = seconds_since(t0);

  fmt::print("  {:<34} {:>8.2f} s\n", "template aggregation", aggregate_s);
  fmt::print("  {:<34} {:>8.2f} s\n", "pair scores", score_s);
  fmt::print("  {:<34} {:>8.2f} s   ({} points, TAR@FAR=1e-4 {:.4f})\n", "ROC + TAR@FAR", roc_s,
             roc.fpr.size(), tar[2].tar_closest);
  fmt::print("  {:<34} {:>8.2f} s\n", "baseline: std::sort of the scores", sort_s);
  fmt::print("  (pair scores + ROC) / sort: {:.2f}x   (goal <= 3x)\n", (score_s + roc_s) / sort_s);
  return 0;
}
