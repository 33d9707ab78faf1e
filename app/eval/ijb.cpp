#include "app/eval/ijb.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "data/verification/ijb_protocol.h"
#include "framework/core/error.h"

namespace facetrain::eval {

namespace {

// Template id → row: a dense table when the ids are compact (IJB's are), a hash map otherwise.
class RowIndex {
 public:
  explicit RowIndex(const std::vector<std::int64_t>& ids) {
    if (ids.empty()) return;
    lo_ = *std::min_element(ids.begin(), ids.end());
    const std::int64_t hi = *std::max_element(ids.begin(), ids.end());
    const auto n = static_cast<std::int64_t>(ids.size());
    // Ids may be any int64: the span is taken in unsigned arithmetic, where it cannot overflow.
    if (offset(hi) < static_cast<std::uint64_t>(16 * n + (1 << 20))) {
      dense_.assign(static_cast<std::size_t>(offset(hi) + 1), -1);
      for (std::int64_t t = 0; t < n; ++t) dense_[static_cast<std::size_t>(offset(ids[t]))] = t;
    } else {
      for (std::int64_t t = 0; t < n; ++t) sparse_[ids[t]] = t;
    }
  }
  // The row of `id`, −1 when it has none.
  std::int64_t operator()(std::int64_t id) const {
    if (!sparse_.empty()) {
      const auto it = sparse_.find(id);
      return it == sparse_.end() ? -1 : it->second;
    }
    return id < lo_ || offset(id) >= dense_.size() ? -1 : dense_[static_cast<std::size_t>(offset(id))];
  }

 private:
  // id − lo_ for id >= lo_, exactly, in unsigned arithmetic.
  std::uint64_t offset(std::int64_t id) const {
    return static_cast<std::uint64_t>(id) - static_cast<std::uint64_t>(lo_);
  }

  std::int64_t lo_ = 0;
  std::vector<std::int64_t> dense_;
  std::unordered_map<std::int64_t, std::int64_t> sparse_;
};

// Four float64 lanes (GCC/Clang vector extension): the same arithmetic with SSE2 or AVX2 code, so
// scores do not depend on the machine (no FMA contraction).
using Lanes = double __attribute__((vector_size(32)));

// a·b: sixteen running sums (four four-lane vectors over consecutive elements), combined
// pairwise; independent sums keep the adder busy.
__attribute__((target_clones("avx2", "default"))) double dot(const double* a, const double* b,
                                                             std::int64_t d) {
  Lanes s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  const auto load = [](const double* p) {
    Lanes v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  std::int64_t k = 0;
  for (; k + 16 <= d; k += 16) {
    s0 += load(a + k) * load(b + k);
    s1 += load(a + k + 4) * load(b + k + 4);
    s2 += load(a + k + 8) * load(b + k + 8);
    s3 += load(a + k + 12) * load(b + k + 12);
  }
  double tail = 0;
  for (; k < d; ++k) tail += a[k] * b[k];
  const Lanes t = (s0 + s1) + (s2 + s3);
  return ((t[0] + t[1]) + (t[2] + t[3])) + tail;
}

// Sorts finite numbers in descending order: an LSD radix sort (11-bit digits, digits that every
// key shares skipped) of their bit patterns mapped to integers that order as the numbers do in
// reverse; std::sort below a few thousand. −0 must have been made +0.
void sort_descending(std::vector<double>& v) {
  const std::size_t n = v.size();
  if (n < 4096) {
    std::sort(v.begin(), v.end(), std::greater<>());
    return;
  }
  constexpr std::uint64_t kSign = std::uint64_t{1} << 63;
  constexpr int kBits = 11, kPasses = 6, kBuckets = 1 << kBits;
  std::vector<std::uint64_t> keys(n), other(n);
  std::vector<std::size_t> count(static_cast<std::size_t>(kPasses * kBuckets), 0);
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t u;
    std::memcpy(&u, &v[k], sizeof u);
    const std::uint64_t ascending = (u & kSign) != 0 ? ~u : u | kSign;
    keys[k] = ~ascending;
    for (int p = 0; p < kPasses; ++p) {
      ++count[static_cast<std::size_t>(p * kBuckets) + ((keys[k] >> (p * kBits)) & (kBuckets - 1))];
    }
  }
  for (int p = 0; p < kPasses; ++p) {
    std::size_t* c = count.data() + p * kBuckets;
    if (std::find(c, c + kBuckets, n) != c + kBuckets) continue;  // one digit for all keys
    std::size_t sum = 0;
    for (int b = 0; b < kBuckets; ++b) sum += std::exchange(c[b], sum);
    for (const std::uint64_t key : keys) other[c[(key >> (p * kBits)) & (kBuckets - 1)]++] = key;
    keys.swap(other);
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint64_t ascending = ~keys[k];
    const std::uint64_t u = (ascending & kSign) != 0 ? ascending & ~kSign : ~ascending;
    std::memcpy(&v[k], &u, sizeof u);
  }
}

// A point of the ROC before normalisation: genuine and impostor counts at a threshold.
struct RocPoint {
  double tp, fp, threshold;
};

// A pair to score: its rows and its index.
struct PairRef {
  std::int32_t a, b;
  std::uint32_t k;
};

// The pairs (first row a[k], second row b[k]) in an order that reads memory once rather than once
// per pair: by blocks of kBlock first rows (which stay in cache), and within a block by second row
// (streamed in order). A counting sort; file order when the key space is much larger than the
// pairs.
std::vector<PairRef> cache_friendly_order(const std::vector<std::int32_t>& a,
                                          const std::vector<std::int32_t>& b, std::int64_t rows) {
  constexpr std::int64_t kBlock = 128;  // 128 float64 rows of 512: 512 KiB, half an L2
  const auto n = static_cast<std::int64_t>(a.size());
  std::vector<PairRef> order(static_cast<std::size_t>(n));
  const std::int64_t buckets = ((rows + kBlock - 1) / kBlock) * rows;
  if (buckets > 4 * n + (1 << 22) || n >= (std::int64_t{1} << 32)) {
    for (std::int64_t k = 0; k < n; ++k) {
      const auto i = static_cast<std::size_t>(k);
      order[i] = {a[i], b[i], static_cast<std::uint32_t>(k)};
    }
    return order;
  }
  const auto key = [&](std::size_t k) {
    return static_cast<std::size_t>(a[k] / kBlock * rows + b[k]);
  };
  std::vector<std::uint32_t> start(static_cast<std::size_t>(buckets) + 1, 0);
  for (std::size_t k = 0; k < a.size(); ++k) ++start[key(k) + 1];
  for (std::size_t i = 1; i < start.size(); ++i) start[i] += start[i - 1];
  for (std::size_t k = 0; k < a.size(); ++k) {
    order[start[key(k)]++] = {a[k], b[k], static_cast<std::uint32_t>(k)};
  }
  return order;
}

}  // namespace

std::vector<std::int64_t> TemplateFeatures::rows_of(const std::vector<std::int64_t>& templates,
                                                    const std::string& what) const {
  const RowIndex index(ids);
  std::vector<std::int64_t> rows(templates.size());
  for (std::size_t k = 0; k < templates.size(); ++k) {
    rows[k] = index(templates[k]);
    if (rows[k] < 0) {
      throw DataError(fmt::format("{}: template {} has no images", what, templates[k]));
    }
  }
  return rows;
}

namespace {

// Sums the templates' features in T (the features' own precision, as numpy keeps float32) into
// float64 rows `y`: per template, each media's images averaged in file order, the media summed in
// ascending id order. `order` groups the images by (template, media).
template <typename T>
void sum_templates(const T* x, std::int64_t d, const std::vector<std::size_t>& order,
                   const std::vector<std::int64_t>& templates,
                   const std::vector<std::int64_t>& medias, double* y) {
  const std::size_t n = order.size();
  std::vector<T> media(static_cast<std::size_t>(d)), sum(static_cast<std::size_t>(d));
  for (std::size_t i = 0, t = 0; i < n; ++t) {
    const std::int64_t id = templates[order[i]];
    std::fill(sum.begin(), sum.end(), T(0));
    while (i < n && templates[order[i]] == id) {
      const std::int64_t m = medias[order[i]];
      std::fill(media.begin(), media.end(), T(0));
      std::int64_t count = 0;
      for (; i < n && templates[order[i]] == id && medias[order[i]] == m; ++i, ++count) {
        const T* image = x + static_cast<std::int64_t>(order[i]) * d;
        for (std::int64_t k = 0; k < d; ++k) media[static_cast<std::size_t>(k)] += image[k];
      }
      for (std::int64_t k = 0; k < d; ++k) {
        sum[static_cast<std::size_t>(k)] +=
            media[static_cast<std::size_t>(k)] / static_cast<T>(count);
      }
    }
    double* row = y + static_cast<std::int64_t>(t) * d;
    for (std::int64_t k = 0; k < d; ++k)
      row[k] = static_cast<double>(sum[static_cast<std::size_t>(k)]);
  }
}

}  // namespace

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
  TemplateFeatures out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == 0 || templates[order[i]] != templates[order[i - 1]])
      out.ids.push_back(templates[order[i]]);
  }
  const std::int64_t d = features.size(1);
  out.features = at::empty({static_cast<std::int64_t>(out.ids.size()), d}, at::kDouble);
  double* y = out.features.data_ptr<double>();
  const bool single = features.scalar_type() == at::kFloat;
  const at::Tensor f = features.to(single ? at::kFloat : at::kDouble).contiguous();
  if (single) {
    sum_templates(f.data_ptr<float>(), d, order, templates, medias, y);
  } else {
    sum_templates(f.data_ptr<double>(), d, order, templates, medias, y);
  }
  for (std::size_t t = 0; t < out.ids.size(); ++t) {
    double* row = y + static_cast<std::int64_t>(t) * d;
    const double norm = std::max(std::sqrt(dot(row, row, d)), 1e-12);
    for (std::int64_t k = 0; k < d; ++k) row[k] /= norm;
  }
  return out;
}

at::Tensor pair_scores(const TemplateFeatures& templates, const std::vector<std::int64_t>& first,
                       const std::vector<std::int64_t>& second) {
  if (first.size() != second.size()) {
    throw DataError(
        fmt::format("IJB pairs: {} first and {} second templates", first.size(), second.size()));
  }
  const RowIndex index(templates.ids);
  std::vector<std::int32_t> a(first.size()), b(first.size());
  for (std::size_t k = 0; k < first.size(); ++k) {
    const std::int64_t ra = index(first[k]), rb = index(second[k]);
    if (ra < 0 || rb < 0) {
      throw DataError(fmt::format("IJB pair {}: {} template {} has no images", k,
                                  ra < 0 ? "first" : "second", ra < 0 ? first[k] : second[k]));
    }
    a[k] = static_cast<std::int32_t>(ra);
    b[k] = static_cast<std::int32_t>(rb);
  }
  const at::Tensor f = templates.features.contiguous();
  const double* x = f.data_ptr<double>();
  const std::int64_t d = f.size(1);
  at::Tensor out = at::empty({static_cast<std::int64_t>(first.size())}, at::kDouble);
  double* score = out.data_ptr<double>();
  for (const PairRef& p : cache_friendly_order(a, b, f.size(0))) {
    score[p.k] = dot(x + std::int64_t{p.a} * d, x + std::int64_t{p.b} * d, d);
  }
  return out;
}

RocCurve sklearn_roc(const std::vector<double>& scores, const std::vector<std::uint8_t>& labels) {
  const std::size_t n = scores.size();
  if (labels.size() != n) {
    throw DataError(fmt::format("ROC: {} scores, {} labels", n, labels.size()));
  }
  // Genuine and impostor scores sorted apart (descending), then merged: one point per distinct
  // score, the counts of each class scoring at least it.
  std::vector<double> genuine, impostor;
  impostor.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(scores[k])) {
      throw DataError(
          fmt::format("ROC: pair {} scores {}: expected a finite score (the model's "
                      "features hold non-finite values?)",
                      k, scores[k]));
    }
    (labels[k] != 0 ? genuine : impostor).push_back(scores[k] == 0 ? 0.0 : scores[k]);
  }
  if (genuine.empty() || impostor.empty()) {
    throw DataError("ROC: the labels must hold both genuine (1) and impostor (0) pairs");
  }
  sort_descending(genuine);
  sort_descending(impostor);
  const auto positives = static_cast<double>(genuine.size());
  const auto negatives = static_cast<double>(impostor.size());
  RocCurve roc;
  const auto add = [&](const RocPoint& p) {
    roc.fpr.push_back(p.fp / negatives);
    roc.tpr.push_back(p.tp / positives);
    roc.thresholds.push_back(p.threshold);
  };
  add({0, 0, std::numeric_limits<double>::infinity()});
  // drop_intermediate, streamed: a point is kept when it is the first or the last, or when either
  // count's slope changes there (a non-zero second difference with its neighbours).
  RocPoint before{}, current{};
  std::size_t points = 0, i = 0, j = 0;
  while (i < genuine.size() || j < impostor.size()) {
    const double t = i == genuine.size()    ? impostor[j]
                     : j == impostor.size() ? genuine[i]
                                            : std::max(genuine[i], impostor[j]);
    while (i < genuine.size() && genuine[i] == t) ++i;
    while (j < impostor.size() && impostor[j] == t) ++j;
    const RocPoint next{static_cast<double>(i), static_cast<double>(j), t};
    if (points == 1 || (points > 1 && (next.fp - 2 * current.fp + before.fp != 0 ||
                                       next.tp - 2 * current.tp + before.tp != 0))) {
      add(current);
    }
    before = current;
    current = next;
    ++points;
  }
  add(current);
  return roc;
}

double roc_auc(const RocCurve& roc) {
  double area = 0;
  for (std::size_t k = 1; k < roc.fpr.size(); ++k) {
    area += (roc.fpr[k] - roc.fpr[k - 1]) * (roc.tpr[k] + roc.tpr[k - 1]) / 2;
  }
  return area;
}

std::vector<TarAtFar> tar_at_far(const RocCurve& roc, const std::vector<double>& fars) {
  std::vector<TarAtFar> out;
  for (const double far : fars) {
    TarAtFar r;
    r.far = far;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < roc.fpr.size(); ++k) {
      const double gap = std::abs(roc.fpr[k] - far);
      if (gap <= best) {  // ties: the later point, with the higher TPR
        best = gap;
        r.tar_closest = roc.tpr[k];
      }
      if (roc.fpr[k] <= far) r.tar_at_most = std::max(r.tar_at_most, roc.tpr[k]);
    }
    out.push_back(r);
  }
  return out;
}

OpenSetResult open_set_identification(const at::Tensor& gallery,
                                      const std::vector<std::int64_t>& gallery_subjects,
                                      const at::Tensor& probes,
                                      const std::vector<std::int64_t>& probe_subjects,
                                      const std::vector<std::int64_t>& ranks,
                                      const std::vector<double>& fpirs) {
  const std::int64_t g = gallery.size(0), p = probes.size(0);
  if (gallery.dim() != 2 || probes.dim() != 2 || gallery.size(1) != probes.size(1) ||
      static_cast<std::int64_t>(gallery_subjects.size()) != g ||
      static_cast<std::int64_t>(probe_subjects.size()) != p || g == 0) {
    throw DataError(fmt::format("1:N: gallery {} with {} subjects, probes {} with {} subjects",
                                gallery.sizes(), gallery_subjects.size(), probes.sizes(),
                                probe_subjects.size()));
  }
  std::unordered_map<std::int64_t, std::int64_t> mate_of;
  for (std::int64_t k = 0; k < g; ++k) {
    if (!mate_of.emplace(gallery_subjects[static_cast<std::size_t>(k)], k).second) {
      throw DataError(fmt::format("1:N: subject {} has two gallery templates",
                                  gallery_subjects[static_cast<std::size_t>(k)]));
    }
  }
  // Per probe: the mate's rank and score (mated probes), or the top-1 score (non-mated).
  std::vector<std::int64_t> mate_rank;
  std::vector<double> mate_score, nonmated_top;
  const at::Tensor gt = gallery.to(at::kDouble).t().contiguous();
  constexpr std::int64_t kChunk = 2048;
  for (std::int64_t first = 0; first < p; first += kChunk) {
    const std::int64_t last = std::min(p, first + kChunk);
    const at::Tensor sim = at::mm(probes.slice(0, first, last).to(at::kDouble), gt).contiguous();
    const double* row = sim.data_ptr<double>();
    for (std::int64_t i = first; i < last; ++i, row += g) {
      const auto it = mate_of.find(probe_subjects[static_cast<std::size_t>(i)]);
      if (it == mate_of.end()) {
        nonmated_top.push_back(*std::max_element(row, row + g));
        continue;
      }
      const double s = row[it->second];
      mate_score.push_back(s);
      mate_rank.push_back(1 + std::count_if(row, row + g, [s](double v) { return v > s; }));
    }
  }
  OpenSetResult r;
  r.gallery_templates = g;
  r.mated_probes = static_cast<std::int64_t>(mate_score.size());
  r.nonmated_probes = static_cast<std::int64_t>(nonmated_top.size());
  const auto mated = static_cast<double>(r.mated_probes);
  for (const std::int64_t k : ranks) {
    const auto hits = std::count_if(mate_rank.begin(), mate_rank.end(),
                                    [k](std::int64_t rank) { return rank <= k; });
    r.rank.emplace_back(k, mated > 0 ? static_cast<double>(hits) / mated
                                     : std::numeric_limits<double>::quiet_NaN());
  }
  std::sort(nonmated_top.begin(), nonmated_top.end(), std::greater<>());
  for (const double f : fpirs) {
    TpirAtFpir t;
    t.fpir = f;
    const auto allowed =
        static_cast<std::size_t>(std::floor(f * static_cast<double>(nonmated_top.size())));
    t.threshold = allowed < nonmated_top.size() ? nonmated_top[allowed]
                                                : -std::numeric_limits<double>::infinity();
    std::int64_t hits = 0;
    for (std::size_t k = 0; k < mate_score.size(); ++k) {
      hits += mate_rank[k] == 1 && mate_score[k] > t.threshold ? 1 : 0;
    }
    t.tpir =
        mated > 0 ? static_cast<double>(hits) / mated : std::numeric_limits<double>::quiet_NaN();
    r.tpir.push_back(t);
  }
  return r;
}

namespace {

// The mean of the galleries' figures (IJB-C reports 1:N as the average over G1 and G2).
OpenSetResult mean_of(const std::vector<OpenSetResult>& galleries) {
  OpenSetResult mean = galleries.front();
  mean.gallery = "mean";
  const auto n = static_cast<double>(galleries.size());
  for (std::size_t k = 0; k < mean.rank.size(); ++k) {
    double sum = 0;
    for (const auto& g : galleries) sum += g.rank[k].second;
    mean.rank[k].second = sum / n;
  }
  for (std::size_t k = 0; k < mean.tpir.size(); ++k) {
    double sum = 0;
    for (const auto& g : galleries) sum += g.tpir[k].tpir;
    mean.tpir[k].tpir = sum / n;
    mean.tpir[k].threshold = std::numeric_limits<double>::quiet_NaN();
  }
  mean.gallery_templates = mean.mated_probes = mean.nonmated_probes = 0;
  for (const auto& g : galleries) {
    mean.gallery_templates += g.gallery_templates;
    mean.mated_probes += g.mated_probes;
    mean.nonmated_probes += g.nonmated_probes;
  }
  return mean;
}

}  // namespace

IjbResult score_ijb(const data::IjbProtocol& protocol, const at::Tensor& image_features,
                    const IjbOptions& options) {
  const auto n = static_cast<std::int64_t>(protocol.images.size());
  if (image_features.dim() != 2 || image_features.size(0) != n) {
    throw DataError(
        fmt::format("{}: features {} for {} images", protocol.name, image_features.sizes(), n));
  }
  // In float32 up to the template sums, as eval_ijbc.py computes (its features and detector
  // scores are float32 arrays); the normalised templates and the cosines in float64.
  std::vector<float> detector(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < detector.size(); ++i) {
    detector[i] = static_cast<float>(protocol.images[i].score);
  }
  const at::Tensor weighted =
      image_features.to(at::kFloat) * at::tensor(detector, at::kFloat).unsqueeze(1);
  const TemplateFeatures templates =
      template_features(weighted, protocol.templates, protocol.medias);

  IjbResult r;
  r.name = protocol.name;
  r.images = n;
  r.templates = static_cast<std::int64_t>(templates.ids.size());
  r.pairs = static_cast<std::int64_t>(protocol.pair_label.size());
  r.genuine_pairs = std::count(protocol.pair_label.begin(), protocol.pair_label.end(), 1);
  const at::Tensor scores = pair_scores(templates, protocol.pair_first, protocol.pair_second);
  r.roc = sklearn_roc(
      std::vector<double>(scores.data_ptr<double>(), scores.data_ptr<double>() + r.pairs),
      protocol.pair_label);
  r.auc = roc_auc(r.roc);
  r.tar = tar_at_far(r.roc, options.fars);

  if (protocol.galleries.empty()) return r;
  const auto& probes = protocol.probes;
  const at::Tensor probe_features = templates.features.index_select(
      0, at::tensor(templates.rows_of(probes.templates, probes.file.string()), at::kLong));
  for (const auto& g : protocol.galleries) {
    const at::Tensor gallery_features = templates.features.index_select(
        0, at::tensor(templates.rows_of(g.templates, g.file.string()), at::kLong));
    r.identification.push_back(open_set_identification(gallery_features, g.subjects, probe_features,
                                                       probes.subjects, options.ranks,
                                                       options.fpirs));
    r.identification.back().gallery = g.name;
  }
  r.identification.push_back(mean_of(r.identification));
  return r;
}

}  // namespace facetrain::eval
