#pragma once

#include <torch/nn/module.h>

#include <functional>

namespace facetrain::losses {

// What a margin head sees for a batch of B samples against N class columns.
struct HeadInput {
  // [B, N]: cos θ between each L2-normalised embedding and each L2-normalised class centre.
  at::Tensor cosine;
  // [B] int64: the column of each sample's own class, or -1 when that class is not among the N
  // columns (with Partial FC, when it lives on another rank's shard).
  at::Tensor labels;
  // [B]: the embeddings' L2 norms before normalisation. Needed by AdaFace and MagFace only.
  at::Tensor norms;
  // Sums a tensor over the ranks in place, for what only the rank holding a row's class knows
  // when each rank holds some of the columns (Partial FC); unset in a single process.
  std::function<void(at::Tensor&)> sum_over_ranks;
};

// A margin-based softmax head: turns cosines into the logits of a softmax cross-entropy, with a
// margin on each sample's own class. Every head scales by s > 0 and supports inter-class
// filtering (arcface_torch's interclass_filtering_threshold t in [0, 1)): a negative column whose
// cosine exceeds t (t > 0) is treated as a likely mislabelled duplicate and its cosine set to 0.
//
// Heads that need an angle θ + m beyond π (possible for large θ) continue the target curve
// past the point θ* where m1·θ* + m2 = π as cos θ − cos θ* − 1: continuous at θ*, decreasing
// in θ and differentiable, so the positive logit keeps falling as θ grows. (insightface's
// `cos θ − m·sin m` fallback jumps at θ*.)
class MarginHeadImpl : public torch::nn::Module {
 public:
  MarginHeadImpl(double scale, double interclass_filtering_threshold);

  // [B, N/K] logits (already multiplied by s).
  virtual at::Tensor forward(const HeadInput& input) = 0;
  // An extra term added to the cross-entropy (MagFace's feature-norm regulariser); 0 otherwise.
  virtual at::Tensor regularizer(const HeadInput& input) {
    return at::zeros({}, input.cosine.options());
  }
  // Class centres per class the FC must hold (sub-center ArcFace's K; 1 otherwise).
  virtual std::int64_t centres_per_class() const { return 1; }

  double scale() const { return scale_; }

 protected:
  // The cosines with inter-class filtering applied (unchanged when the threshold is 0).
  at::Tensor filtered(const HeadInput& input) const;
  // The target column of each row ([B]; rows with label -1 read column 0, use valid_rows()).
  static at::Tensor gather_target(const at::Tensor& cosine, const at::Tensor& labels);
  // `cosine` with each valid row's target column replaced by `target` ([B]).
  static at::Tensor replace_target(const at::Tensor& cosine, const at::Tensor& labels,
                                   const at::Tensor& target);
  // `values` [k, B] (no gradient) as the rank holding each row's class computed them: row i's
  // column from the rank where labels[i] >= 0, zeros where no rank holds the class.
  static at::Tensor from_class_owners(const HeadInput& input, const at::Tensor& values);

  double scale_;
  double filter_threshold_;
};

// cos(m1·θ + m2) for cos θ = `cosine`, continued past m1·θ + m2 = π as described above. m2 may
// be a tensor broadcast against `cosine` (per-sample margins).
at::Tensor angular_margin_cos(const at::Tensor& cosine, double m1, const at::Tensor& m2);

// θ = acos(cos θ), with the cosine clamped just inside [-1, 1] so the gradient stays finite.
at::Tensor safe_acos(const at::Tensor& cosine);

// Validates a head parameter; throws ConfigError "HEAD: NAME = VALUE: must be ...".
void require(bool ok, const char* head, const char* name, double value, const char* rule);

}  // namespace facetrain::losses
