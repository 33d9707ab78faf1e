#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "app/eval/verification.h"

namespace facetrain::data {
struct IjbProtocol;
}

namespace facetrain::eval {

// IJB-B / IJB-C evaluation as insightface measures it (recognition/arcface_torch/eval_ijbc.py in
// its default test mode: flip-summed image features, no per-image normalisation, detector-score
// weighting; 1:N as the benchmark's open-set protocol), from per-image features onward.

// Templates' features: within each template, the images of each media are averaged (a media of
// one image is that image), the media are summed, and the sum is L2-normalised. `features`
// [N, D] are the images' weighted features (feature · detector score); `templates[i]` and
// `medias[i]` are image i's template and media ids. The sums are taken in the features' precision
// (float32 features: float32 sums, as numpy sums eval_ijbc.py's float32 arrays; else float64),
// images in file order within a media and media in ascending id order; the normalisation in
// float64. `ids` are the template ids in ascending order, row t of `features` is template ids[t]'s.
struct TemplateFeatures {
  std::vector<std::int64_t> ids;
  at::Tensor features;  // float64 [T, D], unit rows

  // The rows of `templates` (DataError naming `what` and the id of one without features).
  std::vector<std::int64_t> rows_of(const std::vector<std::int64_t>& templates,
                                    const std::string& what) const;
};
TemplateFeatures template_features(const at::Tensor& features,
                                   const std::vector<std::int64_t>& templates,
                                   const std::vector<std::int64_t>& medias);

// The cosine similarity of each template pair (first[k], second[k]): float64 [K], computed pair by
// pair (no [K, D] gather). A template id without features is a DataError naming it and the pair.
at::Tensor pair_scores(const TemplateFeatures& templates, const std::vector<std::int64_t>& first,
                       const std::vector<std::int64_t>& second);

// The ROC of scores against 0/1 labels exactly as scikit-learn's roc_curve(labels, scores) with
// its default drop_intermediate=True: one point per distinct score (descending), collinear
// intermediate points dropped, (0, 0) prepended with an infinite threshold; fpr and tpr are the
// counts divided by their totals; point k accepts the pairs scoring >= thresholds[k]. Needs both
// labels present and finite scores (DataError otherwise, naming the first non-finite pair).
RocCurve sklearn_roc(const std::vector<double>& scores, const std::vector<std::uint8_t>& labels);

// The area under the ROC by the trapezoidal rule (scikit-learn's auc of roc_curve).
double roc_auc(const RocCurve& roc);

// TAR at a target FAR, two ways: eval_ijbc.py's (the TPR of the ROC point whose FPR is closest
// to the target; among equally close points the last, i.e. the highest TPR, as that script's
// search over the reversed curve picks) and the conservative one (the highest TPR among points
// whose FPR does not exceed the target).
struct TarAtFar {
  double far = 0;
  double tar_closest = 0;
  double tar_at_most = 0;
};
std::vector<TarAtFar> tar_at_far(const RocCurve& roc, const std::vector<double>& fars);

// Open-set 1:N identification of probe templates against one gallery (one template per subject),
// by cosine similarity of unit template features. A probe is mated when its subject is in the
// gallery. Rank-k: the fraction of mated probes whose mate scores among the k highest (rank = 1 +
// the gallery templates scoring strictly higher). TPIR at FPIR f: with t the (⌊f·M⌋+1)-th highest
// top-1 score of the M non-mated probes (−∞ when ⌊f·M⌋ >= M), the fraction of mated probes whose
// mate is at rank 1 and scores above t; then at most f·M non-mated probes score above t.
struct TpirAtFpir {
  double fpir = 0;
  double tpir = 0;
  double threshold = 0;
};
struct OpenSetResult {
  std::string gallery;  // "G1", "G2", "S1", "S2", or "mean"
  std::int64_t gallery_templates = 0;
  std::int64_t mated_probes = 0;
  std::int64_t nonmated_probes = 0;
  std::vector<std::pair<std::int64_t, double>> rank;  // (k, rank-k identification rate)
  std::vector<TpirAtFpir> tpir;
};
OpenSetResult open_set_identification(const at::Tensor& gallery,
                                      const std::vector<std::int64_t>& gallery_subjects,
                                      const at::Tensor& probes,
                                      const std::vector<std::int64_t>& probe_subjects,
                                      const std::vector<std::int64_t>& ranks,
                                      const std::vector<double>& fpirs);

// What is measured, and the measurements.
struct IjbOptions {
  std::vector<double> fars = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1};
  std::vector<double> fpirs = {0.01, 0.1};
  std::vector<std::int64_t> ranks = {1, 5, 10};
};
struct IjbResult {
  std::string name;  // "IJBB" or "IJBC"
  std::int64_t images = 0, templates = 0, pairs = 0, genuine_pairs = 0;
  RocCurve roc;  // thresholds are cosine scores
  double auc = 0;
  std::vector<TarAtFar> tar;
  std::vector<OpenSetResult> identification;  // per gallery, then their mean (empty: no 1:N files)
};

// The protocol's measurements from its images' features (float [N, D] in the protocol's image
// order, each the sum of the image's and its mirror's embedding, not normalised): weighted by the
// detector scores, aggregated into templates, 1:1 pairs scored, and 1:N per gallery.
IjbResult score_ijb(const data::IjbProtocol& protocol, const at::Tensor& image_features,
                    const IjbOptions& options = {});

}  // namespace facetrain::eval
