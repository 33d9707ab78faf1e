#include "app/eval/ijb.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "framework/core/error.h"

namespace facetrain::eval {

TemplateFeatures template_features(const at::Tensor& features,
                                   const std::vector<std::int64_t>& templates,
                                   const std::vector<std::int64_t>& medias) {
  const auto n = static_cast<std::size_t>(features.size(0));
  if (features.dim() != 2 || templates.size() != n || medias.size() != n) {
    throw DataError(
        fmt::format("IJB templates: {} features, {} template ids, {} media ids: "
                    "expected one of each per image",
                    features.size(0), templates.size(), medias.size()));
  }
  // Images grouped by (template, media), both ascending as numpy's unique returns them.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return templates[a] != templates[b] ? templates[a] < templates[b] : medias[a] < medias[b];
  });
  const at::Tensor f = features.to(at::kDouble).contiguous();
  const std::int64_t d = f.size(1);
  TemplateFeatures out;
  std::vector<at::Tensor> rows;
  for (std::size_t i = 0; i < n;) {
    const std::int64_t t = templates[order[i]];
    at::Tensor sum = at::zeros({d}, at::kDouble);
    while (i < n && templates[order[i]] == t) {
      const std::int64_t m = medias[order[i]];
      at::Tensor media_sum = at::zeros({d}, at::kDouble);
      std::int64_t count = 0;
      for (; i < n && templates[order[i]] == t && medias[order[i]] == m; ++i, ++count) {
        media_sum += f[static_cast<std::int64_t>(order[i])];
      }
      sum += media_sum / static_cast<double>(count);
    }
    out.ids.push_back(t);
    rows.push_back(sum / sum.norm().clamp_min(1e-12));
  }
  out.features = rows.empty() ? at::empty({0, d}, at::kDouble) : at::stack(rows);
  return out;
}

at::Tensor pair_scores(const TemplateFeatures& templates, const std::vector<std::int64_t>& first,
                       const std::vector<std::int64_t>& second) {
  std::unordered_map<std::int64_t, std::int64_t> row;
  for (std::size_t t = 0; t < templates.ids.size(); ++t) {
    row[templates.ids[t]] = static_cast<std::int64_t>(t);
  }
  const auto index = [&](const std::vector<std::int64_t>& ids, const char* side) {
    std::vector<std::int64_t> out(ids.size());
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const auto it = row.find(ids[k]);
      if (it == row.end()) {
        throw DataError(fmt::format("IJB pair {}: {} template {} has no images", k, side, ids[k]));
      }
      out[k] = it->second;
    }
    return at::tensor(out, at::kLong);
  };
  if (first.size() != second.size()) {
    throw DataError(
        fmt::format("IJB pairs: {} first and {} second templates", first.size(), second.size()));
  }
  const at::Tensor a = templates.features.index_select(0, index(first, "first"));
  const at::Tensor b = templates.features.index_select(0, index(second, "second"));
  return (a * b).sum(1);
}

Roc sklearn_roc(const std::vector<double>& scores, const std::vector<std::uint8_t>& labels) {
  const std::size_t n = scores.size();
  if (labels.size() != n) {
    throw DataError(fmt::format("ROC: {} scores, {} labels", n, labels.size()));
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  // One point per distinct score: the counts of positives and negatives scoring at least it.
  std::vector<double> tps, fps, thresholds;
  double tp = 0;
  for (std::size_t k = 0; k < n; ++k) {
    tp += labels[order[k]] != 0 ? 1.0 : 0.0;
    if (k + 1 == n || scores[order[k + 1]] != scores[order[k]]) {
      tps.push_back(tp);
      fps.push_back(static_cast<double>(k + 1) - tp);
      thresholds.push_back(scores[order[k]]);
    }
  }
  if (tps.empty() || tps.back() == 0 || fps.back() == 0) {
    throw DataError("ROC: the labels must hold both genuine (1) and impostor (0) pairs");
  }
  // drop_intermediate: keep the ends and every point where either count's slope changes.
  Roc roc;
  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  roc.thresholds.push_back(std::numeric_limits<double>::infinity());
  const std::size_t m = tps.size();
  for (std::size_t k = 0; k < m; ++k) {
    const bool keep = m <= 2 || k == 0 || k + 1 == m || fps[k + 1] - 2 * fps[k] + fps[k - 1] != 0 ||
                      tps[k + 1] - 2 * tps[k] + tps[k - 1] != 0;
    if (!keep) continue;
    roc.fpr.push_back(fps[k] / fps.back());
    roc.tpr.push_back(tps[k] / tps.back());
    roc.thresholds.push_back(thresholds[k]);
  }
  return roc;
}

std::vector<TarAtFar> tar_at_far(const Roc& roc, const std::vector<double>& fars) {
  std::vector<TarAtFar> out;
  for (const double far : fars) {
    TarAtFar r;
    r.far = far;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < roc.fpr.size(); ++k) {
      const double gap = std::abs(roc.fpr[k] - far);
      if (gap < best) {
        best = gap;
        r.tar_closest = roc.tpr[k];
      }
      if (roc.fpr[k] <= far) r.tar_at_most = std::max(r.tar_at_most, roc.tpr[k]);
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace facetrain::eval
