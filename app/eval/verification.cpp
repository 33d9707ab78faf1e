#include "app/eval/verification.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "framework/core/error.h"

namespace facetrain::eval {
namespace {

// Fold f of KFold(n_splits=k, shuffle=False) over n items: [begin, end).
std::pair<std::int64_t, std::int64_t> fold_range(std::int64_t n, std::int64_t k, std::int64_t f) {
  const std::int64_t base = n / k;
  const std::int64_t extra = n % k;
  const std::int64_t begin = f * base + std::min(f, extra);
  return {begin, begin + base + (f < extra ? 1 : 0)};
}

// The threshold grid 0, step, 2·step, … < max, as numpy's arange builds it (start + i·step).
std::vector<double> threshold_grid(double step, double max) {
  std::vector<double> t;
  for (std::int64_t i = 0;; ++i) {
    const double v = static_cast<double>(i) * step;
    if (v >= max) break;
    t.push_back(v);
  }
  return t;
}

// For each distance, the index of the first threshold of `grid` that accepts it (d < t), or
// grid.size() when none does. Found from d/step, then corrected with the exact comparisons so
// the result agrees with comparing against every threshold.
std::vector<std::int32_t> first_accepting(const std::vector<double>& d,
                                          const std::vector<double>& grid, double step) {
  const auto t = static_cast<std::int64_t>(grid.size());
  std::vector<std::int32_t> out(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    std::int64_t j =
        std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(d[i] / step)), 0, t);
    while (j < t && !(d[i] < grid[j])) ++j;
    while (j > 0 && d[i] < grid[j - 1]) --j;
    out[i] = static_cast<std::int32_t>(j);
  }
  return out;
}

// Per threshold, accepted same (tp) and different (fp) pairs among pairs [begin, end) — or among
// all pairs outside it when `outside` — from their first accepting thresholds: O(pairs + T).
struct Counts {
  std::vector<std::int64_t> tp, fp;
  std::int64_t same = 0, diff = 0;
};
Counts counts(const std::vector<std::int32_t>& first, const std::vector<std::uint8_t>& same,
              std::size_t num_thresholds, std::int64_t begin, std::int64_t end, bool outside) {
  Counts c;
  c.tp.assign(num_thresholds + 1, 0);
  c.fp.assign(num_thresholds + 1, 0);
  const auto n = static_cast<std::int64_t>(first.size());
  for (std::int64_t i = 0; i < n; ++i) {
    if ((i >= begin && i < end) == outside) continue;
    if (same[i]) {
      ++c.tp[first[i]];
      ++c.same;
    } else {
      ++c.fp[first[i]];
      ++c.diff;
    }
  }
  std::partial_sum(c.tp.begin(), c.tp.end(), c.tp.begin());
  std::partial_sum(c.fp.begin(), c.fp.end(), c.fp.begin());
  return c;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double population_std(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// VAL and FAR of pairs [begin, end) at one threshold (insightface's calculate_val_far; a rate
// over an empty class is 0).
std::pair<double, double> val_far(const std::vector<double>& d,
                                  const std::vector<std::uint8_t>& same, std::int64_t begin,
                                  std::int64_t end, double threshold) {
  std::int64_t ta = 0, fa = 0, ns = 0, nd = 0;
  for (std::int64_t i = begin; i < end; ++i) {
    const bool accept = d[i] < threshold;
    if (same[i]) {
      ++ns;
      ta += accept;
    } else {
      ++nd;
      fa += accept;
    }
  }
  return {ns > 0 ? static_cast<double>(ta) / ns : 0.0, nd > 0 ? static_cast<double>(fa) / nd : 0.0};
}

// The threshold at which FAR reaches `target` on the training folds: linear interpolation of
// threshold against FAR over the distinct FAR values (each with the first threshold reaching it),
// with numpy.interp's formula; 0 when FAR never reaches the target.
double threshold_at_far(const std::vector<double>& far, const std::vector<double>& grid,
                        double target) {
  if (far.empty() || *std::max_element(far.begin(), far.end()) < target) return 0.0;
  std::vector<std::pair<double, double>> xy;  // (far, threshold), strictly increasing far
  std::vector<std::size_t> order(far.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return far[a] < far[b]; });
  for (std::size_t i : order) {
    if (xy.empty() || far[i] != xy.back().first) xy.emplace_back(far[i], grid[i]);
  }
  if (target <= xy.front().first) return xy.front().second;
  for (std::size_t j = 0; j + 1 < xy.size(); ++j) {
    if (target < xy[j + 1].first) {
      const double slope = (xy[j + 1].second - xy[j].second) / (xy[j + 1].first - xy[j].first);
      return slope * (target - xy[j].first) + xy[j].second;
    }
  }
  return xy.back().second;
}

std::vector<std::uint8_t> flags_of(const at::Tensor& issame) {
  const at::Tensor t = issame.ne(0).to(at::kByte).contiguous().cpu();
  return {t.data_ptr<std::uint8_t>(), t.data_ptr<std::uint8_t>() + t.numel()};
}

}  // namespace

RocCurve roc_curve(const at::Tensor& distances, const at::Tensor& issame) {
  const at::Tensor dist = distances.to(at::kDouble).contiguous().cpu();
  const auto same = flags_of(issame);
  const std::int64_t n = dist.numel();
  if (issame.numel() != n) {
    throw Error(fmt::format("roc_curve: {} distances but {} issame flags", n, issame.numel()));
  }
  const double* d = dist.data_ptr<double>();
  // A non-finite distance (a diverged model, a zero embedding) has no place in an order.
  const auto bad = std::find_if(d, d + n, [](double x) { return !std::isfinite(x); });
  if (bad != d + n) {
    throw DataError(
        fmt::format("verification: pair {} has distance {}: the embeddings hold "
                    "non-finite values or zero vectors (a diverged model?)",
                    bad - d, *bad));
  }
  const auto positives = std::count(same.begin(), same.end(), 1);
  const auto negatives = n - positives;
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return d[a] < d[b]; });
  RocCurve roc;
  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  roc.thresholds.push_back(-1);
  std::int64_t tp = 0, fp = 0;
  for (std::int64_t i = 0; i < n;) {
    const double value = d[order[i]];
    for (; i < n && d[order[i]] == value; ++i) (same[order[i]] ? tp : fp) += 1;
    // A rate over an empty class is 0, as in insightface's calculate_accuracy.
    roc.fpr.push_back(negatives > 0 ? static_cast<double>(fp) / negatives : 0.0);
    roc.tpr.push_back(positives > 0 ? static_cast<double>(tp) / positives : 0.0);
    roc.thresholds.push_back(value);
  }
  return roc;
}

VerificationResult verify_pairs(const at::Tensor& embeddings, const at::Tensor& issame,
                                const VerificationOptions& options) {
  if (embeddings.dim() != 2 || embeddings.size(0) % 2 != 0) {
    throw Error(fmt::format("verify_pairs: embeddings must be [2N, D], got {}",
                            fmt::join(embeddings.sizes(), "x")));
  }
  const std::int64_t n = embeddings.size(0) / 2;
  if (issame.dim() != 1 || issame.numel() != n) {
    throw Error(fmt::format("verify_pairs: {} embeddings make {} pairs but issame has shape [{}]",
                            embeddings.size(0), n, fmt::join(issame.sizes(), ", ")));
  }
  const std::int64_t k = options.num_folds();
  if (k < 2 || n < k) {
    throw Error(
        fmt::format("verify_pairs: {} pairs cannot be split in {} folds (needs 2 <= folds "
                    "<= pairs)",
                    n, k));
  }
  VerificationResult r;
  r.num_pairs = n;
  const at::Tensor e = embeddings.to(at::kDouble).cpu();
  const at::Tensor norms = e.norm(2, 1);
  r.xnorm = norms.mean().item<double>();
  const at::Tensor unit = e / norms.unsqueeze(1);
  const at::Tensor dist_t =
      (unit.slice(0, 0, 2 * n, 2) - unit.slice(0, 1, 2 * n, 2)).square().sum(1).contiguous();
  const std::vector<double> d(dist_t.data_ptr<double>(), dist_t.data_ptr<double>() + n);
  const auto same = flags_of(issame);
  r.num_same = std::count(same.begin(), same.end(), 1);

  // k-fold accuracy (insightface's calculate_roc).
  const auto grid = threshold_grid(options.threshold_step(), options.threshold_max());
  const auto first = first_accepting(d, grid, options.threshold_step());
  const std::size_t t = grid.size();
  std::vector<double> acc(static_cast<std::size_t>(k)), best(static_cast<std::size_t>(k));
  for (std::int64_t f = 0; f < k; ++f) {
    const auto [begin, end] = fold_range(n, k, f);
    const Counts train = counts(first, same, t, begin, end, true);
    const std::int64_t train_n = train.same + train.diff;
    std::size_t best_j = 0;
    double best_acc = -1;
    for (std::size_t j = 0; j < t; ++j) {
      // correct = tp + tn = tp + (diff − fp); argmax keeps the first maximum, as numpy's.
      const double a = static_cast<double>(train.tp[j] + train.diff - train.fp[j]) / train_n;
      if (a > best_acc) best_acc = a, best_j = j;
    }
    const Counts test = counts(first, same, t, begin, end, false);
    acc[f] = static_cast<double>(test.tp[best_j] + test.diff - test.fp[best_j]) /
             static_cast<double>(end - begin);
    best[f] = grid[best_j];
  }
  r.accuracy = mean(acc);
  r.accuracy_std = population_std(acc);
  r.best_threshold = mean(best);

  // VAL at the target FAR (insightface's calculate_val).
  const auto fine = threshold_grid(options.val_threshold_step(), options.threshold_max());
  const auto first_fine = first_accepting(d, fine, options.val_threshold_step());
  std::vector<double> vals(static_cast<std::size_t>(k)), fars(static_cast<std::size_t>(k));
  for (std::int64_t f = 0; f < k; ++f) {
    const auto [begin, end] = fold_range(n, k, f);
    const Counts train = counts(first_fine, same, fine.size(), begin, end, true);
    std::vector<double> far_train(fine.size());
    for (std::size_t j = 0; j < fine.size(); ++j) {
      far_train[j] = train.diff > 0 ? static_cast<double>(train.fp[j]) / train.diff : 0.0;
    }
    const double threshold = threshold_at_far(far_train, fine, options.far_target());
    std::tie(vals[f], fars[f]) = val_far(d, same, begin, end, threshold);
  }
  r.val_at_far_1e3 = mean(vals);
  r.val_std = population_std(vals);
  r.far_at_val = mean(fars);

  // The exact ROC and what follows from it.
  r.roc = roc_curve(dist_t, issame);
  const std::int64_t negatives = n - r.num_same;
  if (r.num_same == 0 || negatives == 0) {
    // One class only: AUC and EER are undefined, and there is no FAR to fix.
    r.auc = r.eer = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  const auto& fpr = r.roc.fpr;
  const auto& tpr = r.roc.tpr;
  for (std::size_t i = 1; i < fpr.size(); ++i) {
    r.auc += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2;
  }
  for (std::size_t i = 1; i < fpr.size(); ++i) {
    const double b = fpr[i] - (1 - tpr[i]);
    if (b >= 0) {
      const double a = fpr[i - 1] - (1 - tpr[i - 1]);  // < 0: not yet crossed
      const double s = a / (a - b);
      r.eer = fpr[i - 1] + s * (fpr[i] - fpr[i - 1]);
      break;
    }
  }
  for (int decade = 1;; ++decade) {
    const double far = std::pow(10.0, -decade);
    if (far * static_cast<double>(negatives) < 1.0 - 1e-9) break;
    double tar = 0;
    for (std::size_t i = 0; i < fpr.size() && fpr[i] <= far; ++i) tar = std::max(tar, tpr[i]);
    r.tar_at_far.emplace_back(far, tar);
  }
  return r;
}

}  // namespace facetrain::eval
