#pragma once

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/optimizer_options.h"
#include "framework/distributed/communicator.h"
#include "losses/margin_head.h"

namespace facetrain::losses {

// The classes [lo, hi) whose centres rank `rank` of `world` holds: C/W each, the first C%W ranks
// one more. Throws ConfigError when there are fewer classes than ranks.
struct ClassRange {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  std::int64_t size() const { return hi - lo; }
};
ClassRange class_shard(std::int64_t num_classes, int rank, int world);

// How the classifier's rows are updated: only the rows sampled in a step, with their own
// optimizer state, so a step's cost does not grow with the number of classes.
//   sgd:   g = grad + wd·w;  v = momentum·v + g;  w -= lr·v           (torch.optim.SGD)
//   adamw: w -= lr·wd·w; m, v Adam moments; w -= lr·m̂/(√v̂ + eps), with the bias corrections
//          counted per row (a row's own number of updates), as lazy/sparse Adam.
// (framework/core/optimizer_options.h: the same options as the backbone's optimizer.)

struct PartialFCOptions {
  // Total identities C (> 0) and the embedding size d (> 0).
  TORCH_ARG(std::int64_t, num_classes) = 0;
  TORCH_ARG(std::int64_t, embedding_size) = 512;
  // Fraction of each rank's classes in a step's softmax, in (0, 1]: every positive class of the
  // global batch, plus uniformly drawn negatives up to int(sample_rate · num_local).
  TORCH_ARG(double, sample_rate) = 1.0;
  // Seeds the centres' initialisation (N(0, 0.01), identical for a class whatever the world
  // size) and the negative sampling (a stream per step and rank, so resumed runs repeat it).
  TORCH_ARG(std::uint64_t, seed) = 0;
  TORCH_ARG(OptimizerOptions, optimizer) = {};
  // The centres' and optimizer state's dtype (float32 for training; float64 for checks).
  TORCH_ARG(c10::ScalarType, dtype) = c10::kFloat;
};

// Partial FC (An et al., "Partial FC: Training 10 Million Identities on a Single Machine"): the
// classifier of a margin softmax loss, model-parallel over the ranks of `comm`. Rank r holds the
// centres of classes class_shard(C, r, W) (K rows per class for sub-center heads, class-major).
// A step: each rank's embeddings [b_r, d] and labels [b_r] are all-gathered into the global batch
// [B, d] (in backward each rank receives the sum over ranks of its rows' gradients); the rank's
// sampled centres and the normalised embeddings give cosines [B, S·K]; the margin head turns them
// into logits; the softmax cross-entropy over all C classes is computed distributedly (all-reduce
// of the row maxima and of the sums of exponentials, and of the target logits), averaged over
// the B rows. The returned loss is the same on every rank; its gradient with respect to a rank's
// embeddings is that rank's rows of the full-batch gradient, so the backbone's gradients are to
// be summed over ranks (GradientReducer with ReduceOp::kSum).
//
// Labels must lie in [0, C); otherwise DataError naming the rank, the position and the value.
class PartialFC {
 public:
  PartialFC(const PartialFCOptions& options, std::shared_ptr<MarginHeadImpl> head,
            std::shared_ptr<dist::Communicator> comm);

  // The loss of the global batch (a scalar, identical on every rank). `step` selects the
  // sampling stream. The head's regulariser (MagFace) is included once.
  at::Tensor forward(const at::Tensor& embeddings, const at::Tensor& labels, std::int64_t step);

  // Updates the rows sampled by the forwards since the last step (several with gradient
  // accumulation: their row gradients are summed) from their gradients, multiplied by
  // `grad_scale` (e.g. 1/loss scale), leaving every other row and its optimizer state bitwise
  // unchanged. Call after backward.
  void step(double lr, double grad_scale = 1.0);
  // Drops the gradients of the forwards since the last step (a skipped step).
  void discard_gradients() { pending_.clear(); }
  // True when every pending row gradient is finite.
  bool gradients_finite() const;

  // The classes of this rank and its centres [range().size()·K, d] (float32, on the device).
  ClassRange range() const { return range_; }
  const at::Tensor& weight() const { return weight_; }
  // Local class indices (into range()) sampled by the last forward, sorted; their count.
  const at::Tensor& last_sampled() const { return sampled_; }
  std::int64_t num_sample() const { return num_sample_; }
  std::int64_t centres_per_class() const { return k_; }
  // The margin head (its buffers: running statistics that checkpoints keep).
  MarginHeadImpl& head() const { return *head_; }

  // Moves the centres and optimizer state (e.g. to CUDA).
  void to(const c10::Device& device);

  // The state of this rank's rows: "weight" and the optimizer's ("momentum"; or "exp_avg",
  // "exp_avg_sq", "steps"), each with range().size()·K rows.
  std::map<std::string, at::Tensor> state() const;
  // Loads this rank's rows from a state covering classes [lo, hi) ⊇ range() (e.g. written at
  // another world size and concatenated). Throws CheckpointError on a missing key or a shape
  // that does not match.
  void load_state(const std::map<std::string, at::Tensor>& state, ClassRange covered,
                  const std::string& source);

 private:
  at::Tensor sample(const at::Tensor& local_labels, std::int64_t step);
  // Every rank's labels (int64 on the host, rows[r] from rank r) concatenated in rank order.
  at::Tensor gather_labels_on_host(const at::Tensor& host_labels,
                                   const std::vector<std::int64_t>& rows);

  PartialFCOptions options_;
  std::shared_ptr<MarginHeadImpl> head_;
  std::shared_ptr<dist::Communicator> comm_;
  ClassRange range_;
  std::int64_t k_ = 1;
  std::int64_t num_sample_ = 0;
  at::Tensor weight_;                 // [rows, d]
  at::Tensor slot1_, slot2_, steps_;  // momentum | exp_avg, exp_avg_sq, per-row step counts
  at::Tensor sampled_;                // local classes of the last forward
  at::Tensor rows_;                   // their rows (K per class)
  // Per forward since the last step: its rows (undefined: all rows) and the leaf whose gradient
  // step() applies.
  std::vector<std::pair<at::Tensor, at::Tensor>> pending_;
  bool all_rows_ = false;
};

// Softmax cross-entropy of `logits` [B, N_r] (this rank's columns of a row-wise softmax over all
// ranks' columns) against `labels` [B] (the column on this rank, or -1 when the target lives on
// another rank): mean over rows of log Σ_all exp(z) − z_target. Same value on every rank; in
// backward each rank gets (softmax − onehot)/B for its own columns.
at::Tensor distributed_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                     dist::Communicator& comm);

// The ranks' tensors concatenated along dim 0, rank r giving rows[r] rows (known to every rank);
// in backward, the gradient of this rank's rows summed over the ranks.
at::Tensor all_gather_with_grad(const at::Tensor& x, dist::Communicator& comm,
                                const std::vector<std::int64_t>& rows);

}  // namespace facetrain::losses
