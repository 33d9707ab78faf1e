#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace facetrain::eval {

// How verify_pairs scores pairs. The defaults are insightface's verification protocol
// (recognition/arcface_torch/eval/verification.py).
struct VerificationOptions {
  // Folds of the k-fold accuracy and VAL (KFold without shuffle: the first N mod k folds hold
  // one pair more). Needs 2 <= num_folds <= number of pairs.
  TORCH_ARG(std::int64_t, num_folds) = 10;
  // Accuracy thresholds on the squared L2 distance: 0, step, 2·step, … below threshold_max.
  TORCH_ARG(double, threshold_step) = 0.01;
  TORCH_ARG(double, threshold_max) = 4.0;
  // VAL thresholds: the same range at this finer step.
  TORCH_ARG(double, val_threshold_step) = 0.001;
  // The FAR at which VAL is reported.
  TORCH_ARG(double, far_target) = 1e-3;
};

// A receiver operating characteristic over squared L2 distances of unit embeddings, one point
// per distinct distance. Point 0 is (0, 0) with threshold −1 (nothing accepted); point k >= 1
// accepts every pair whose distance is <= thresholds[k], the k-th smallest distinct distance, so
// the last point is (1, 1). Pairs with equal distances enter together (one diagonal segment).
// A rate over an empty class (no same, or no different pairs) is 0.
struct RocCurve {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<double> thresholds;
};

// 1:1 verification metrics of N pairs.
struct VerificationResult {
  // k-fold accuracy: per fold, the threshold with the best accuracy on the other folds is applied
  // to this fold; mean and (population) standard deviation over the folds.
  double accuracy = 0;
  double accuracy_std = 0;
  // Mean over the folds of the chosen squared-distance threshold.
  double best_threshold = 0;
  // insightface's calculate_val: per fold, the threshold at which the other folds reach FAR =
  // far_target (linear interpolation of threshold over the distinct FARs of the fine threshold
  // grid; 0 when that FAR is never reached), applied to this fold. Mean VAL, its standard
  // deviation, and the mean FAR actually reached.
  double val_at_far_1e3 = 0;
  double val_std = 0;
  double far_at_val = 0;
  // (FAR, TAR) at FAR = 1e-1, 1e-2, … for every decade with at least one negative pair at that
  // rate: the highest TPR of the ROC among the points with FPR <= FAR.
  std::vector<std::pair<double, double>> tar_at_far;
  // Area under the ROC (trapezoid) and equal error rate (where FPR = 1 − TPR, linearly
  // interpolated between ROC points); NaN when the pairs are all same or all different.
  double auc = 0;
  double eer = 0;
  // Mean L2 norm of the embeddings before normalisation.
  double xnorm = 0;
  std::int64_t num_pairs = 0;
  std::int64_t num_same = 0;
  RocCurve roc;
};

// Verification metrics of pairs of embeddings: rows 2i and 2i + 1 of `embeddings` ([2N, D],
// any floating dtype, not normalised; computed in float64) are pair i, and issame[i] (any
// integral or bool dtype, [N]) is nonzero when they show one person. Embeddings are scaled to
// unit length and compared by squared L2 distance (0 … 4); a pair is accepted as the same person
// when its distance is below the threshold. Rates over an empty class are 0 (insightface's guard),
// so sets of only same or only different pairs are scored too (AUC, EER NaN, no TAR@FAR).
// Throws facetrain::Error when the shapes disagree or N < num_folds.
VerificationResult verify_pairs(const at::Tensor& embeddings, const at::Tensor& issame,
                                const VerificationOptions& options = {});

// The ROC of squared distances `distances` [N] (float64) with labels `issame` [N]: one sort,
// O(N log N). Throws facetrain::Error when the lengths differ.
RocCurve roc_curve(const at::Tensor& distances, const at::Tensor& issame);

}  // namespace facetrain::eval
