#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace facetrain::eval {

// IJB-B / IJB-C 1:1 verification arithmetic, as insightface's eval_ijbc.py computes it (its
// default test mode: flip-summed image features, no per-image normalisation, detector-score
// weighting), from per-image features onward.

// Templates' features: within each template, the images of each media are averaged (a media of
// one image is that image), the media are summed, and the sum is L2-normalised. `features`
// [N, D] are the images' weighted features (feature · detector score); `templates[i]` and
// `medias[i]` are image i's template and media ids. Computed in float64. `ids` are the template
// ids in ascending order, row t of `features` is template ids[t]'s.
struct TemplateFeatures {
  std::vector<std::int64_t> ids;
  at::Tensor features;  // float64 [T, D], unit rows
};
TemplateFeatures template_features(const at::Tensor& features,
                                   const std::vector<std::int64_t>& templates,
                                   const std::vector<std::int64_t>& medias);

// The cosine similarity of each template pair (first[k], second[k]): float64 [K]. A template id
// without features is a DataError naming it and the pair.
at::Tensor pair_scores(const TemplateFeatures& templates, const std::vector<std::int64_t>& first,
                       const std::vector<std::int64_t>& second);

// The ROC of scores against 0/1 labels exactly as scikit-learn's roc_curve(labels, scores) with
// its default drop_intermediate=True: one point per distinct score (descending), collinear
// intermediate points dropped, (0, 0) prepended with an infinite threshold; fpr and tpr are the
// counts divided by their totals. Needs both labels present (DataError otherwise).
struct Roc {
  std::vector<double> fpr, tpr, thresholds;
};
Roc sklearn_roc(const std::vector<double>& scores, const std::vector<std::uint8_t>& labels);

// TAR at a target FAR, two ways: eval_ijbc.py's (the TPR of the ROC point whose FPR is closest
// to the target; on ties the first such point) and the conservative one (the highest TPR among
// points whose FPR does not exceed the target).
struct TarAtFar {
  double far = 0;
  double tar_closest = 0;
  double tar_at_most = 0;
};
std::vector<TarAtFar> tar_at_far(const Roc& roc, const std::vector<double>& fars);

}  // namespace facetrain::eval
