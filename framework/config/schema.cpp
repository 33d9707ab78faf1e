#include <algorithm>

#include "framework/core/checked.h"
#include "framework/config/config.h"
#include "framework/core/strings.h"

namespace facetrain {
namespace {

// Small builders so the table below reads as one line per key.
ConfigKey key(std::string name, ValueType type, ConfigValue def, std::string arcface,
              std::string help) {
  ConfigKey k;
  k.name = std::move(name);
  k.type = type;
  k.default_value = std::move(def);
  k.arcface_key = std::move(arcface);
  k.help = std::move(help);
  return k;
}
ConfigKey at_least(ConfigKey k, double lo, bool exclusive = false) {
  k.min = lo;
  k.min_exclusive = exclusive;
  return k;
}
ConfigKey between(ConfigKey k, double lo, double hi, bool lo_exclusive, bool hi_exclusive) {
  k.min = lo;
  k.min_exclusive = lo_exclusive;
  k.max = hi;
  k.max_exclusive = hi_exclusive;
  return k;
}
// An integer key between lo and hi inclusive: the upper bound keeps a typo (or 2^32 + 1) from
// becoming an allocation or a silently narrowed value.
ConfigKey in_range(ConfigKey k, double lo, double hi) {
  return between(std::move(k), lo, hi, false, false);
}
ConfigKey one_of(ConfigKey k, std::vector<std::string> choices) {
  k.choices = std::move(choices);
  return k;
}

constexpr auto B = ValueType::kBool;
constexpr auto I = ValueType::kInt;
constexpr auto F = ValueType::kFloat;
constexpr auto S = ValueType::kString;
constexpr auto FL = ValueType::kFloatList;
constexpr auto SL = ValueType::kStringList;

}  // namespace

ConfigSchema::ConfigSchema() {
  using std::int64_t;
  auto margins = key("loss.margin_list", FL, std::vector<double>{1.0, 0.5, 0.0}, "margin_list",
                     "combined margin (m1, m2, m3): logit s*(cos(m1*theta + m2) - m3)");
  margins.length = 3;
  keys_ = {
      // model
      key("model.network", S, std::string("iresnet50"), "network",
          "backbone: a name or arcface_torch alias of the backbone registry (listed below the "
          "table)"),
      in_range(key("model.embedding_size", I, int64_t{512}, "embedding_size",
                   "length of the face embedding"),
               1, 65536),
      between(key("model.dropout", F, 0.0, "", "dropout before the embedding FC"), 0.0, 1.0, false,
              true),
      one_of(key("model.checkpointing", S, std::string("auto"), "",
                 "Vision Transformers: recompute block activations in the backward pass "
                 "(auto: on for vit_b, vit_l, vit_h, as arcface_torch)"),
             {"auto", "on", "off"}),
      // loss
      one_of(key("loss.head", S, std::string("combined"), "",
                 "margin head: combined (ArcFace/CosFace/SphereFace by margin_list), curricular, "
                 "adaface, magface, subcenter, softmax"),
             {"combined", "curricular", "adaface", "magface", "subcenter", "softmax"}),
      margins,
      at_least(key("loss.scale", F, 64.0, "", "logit scale s (arcface_torch fixes it at 64)"), 0.0,
               true),
      between(key("loss.sample_rate", F, 1.0, "sample_rate",
                  "Partial FC: fraction of each rank's class centres used per step"),
              0.0, 1.0, true, false),
      between(key("loss.interclass_filtering_threshold", F, 0.0, "interclass_filtering_threshold",
                  "drop negative logits whose cosine exceeds this (0 disables)"),
              0.0, 1.0, false, true),
      in_range(key("loss.subcenter_k", I, int64_t{3}, "",
                   "sub-center ArcFace: centres per class (margin m is margin_list[1])"),
               1, 64),
      between(key("loss.curricular_alpha", F, 0.01, "",
                  "CurricularFace: running-mean factor of t (margin m is margin_list[1])"),
              0.0, 1.0, true, false),
      between(key("loss.adaface_m", F, 0.4, "", "AdaFace: margin m"), 0.0, 1.5707963, false, true),
      at_least(key("loss.adaface_h", F, 0.333, "", "AdaFace: norm concentration h"), 0.0, true),
      between(key("loss.adaface_alpha", F, 0.01, "",
                  "AdaFace: running-mean factor of the norm statistics"),
              0.0, 1.0, true, false),
      at_least(key("loss.magface_l_a", F, 10.0, "", "MagFace: lower norm bound l_a"), 0.0, true),
      at_least(key("loss.magface_u_a", F, 110.0, "", "MagFace: upper norm bound u_a"), 0.0, true),
      at_least(key("loss.magface_l_m", F, 0.45, "", "MagFace: margin at l_a"), 0.0),
      at_least(key("loss.magface_u_m", F, 0.8, "", "MagFace: margin at u_a"), 0.0),
      at_least(key("loss.magface_lambda_g", F, 35.0, "", "MagFace: weight of the norm regulariser"),
               0.0),
      // data
      key("data.path", S, std::string(""), "rec",
          "dataset folder (manifest.json + shard-NNNNN.h5)"),
      in_range(key("data.num_classes", I, int64_t{0}, "num_classes",
                   "number of identities; 0 takes it from the dataset manifest"),
               0, 2147483647),
      in_range(key("data.num_samples", I, int64_t{0}, "num_image",
                   "number of training images; 0 takes it from the dataset manifest"),
               0, 4294967295),
      in_range(key("data.num_workers", I, int64_t{2}, "num_workers", "decode threads per rank"), 0,
               256),
      in_range(key("data.image_size", I, int64_t{112}, "", "aligned face size (square)"), 1, 1024),
      in_range(key("data.prefetch", I, int64_t{4}, "", "batches decoded ahead per rank"), 1, 1024),
      one_of(key("data.corrupt_policy", S, std::string("error"), "",
                 "an undecodable image: error stops the run, skip drops it and counts it"),
             {"error", "skip"}),
      // optim
      one_of(key("optim.optimizer", S, std::string("sgd"), "optimizer", "sgd or adamw"),
             {"sgd", "adamw"}),
      at_least(key("optim.lr", F, 0.1, "lr", "base learning rate"), 0.0, true),
      between(key("optim.momentum", F, 0.9, "momentum", "SGD momentum"), 0.0, 1.0, false, true),
      at_least(key("optim.weight_decay", F, 5e-4, "weight_decay", "L2 weight decay"), 0.0),
      one_of(key("optim.lr_schedule", S, std::string("poly"), "",
                 "poly (arcface_torch's PolynomialLRWarmup) or cosine, both after a linear warmup"),
             {"poly", "cosine"}),
      at_least(key("optim.poly_power", F, 1.0, "",
                   "exponent of the polynomial decay (arcface_torch's: 1, linear)"),
               0.0, true),
      at_least(key("optim.warmup_epoch", F, 0.0, "warmup_epoch", "epochs of linear warmup"), 0.0),
      at_least(key("optim.clip_grad_norm", F, 5.0, "",
                   "backbone gradient-norm clip (arcface_torch fixes it at 5); 0 disables"),
               0.0),
      // train
      // 2 at least: every backbone has BatchNorm, which needs two samples per rank in training.
      in_range(key("train.batch_size", I, int64_t{128}, "batch_size",
                   "images per rank per step (>= 2: BatchNorm needs two)"),
               2, 1048576),
      in_range(key("train.num_epoch", I, int64_t{20}, "num_epoch", "epochs to train"), 1, 1000000),
      in_range(key("train.gradient_acc", I, int64_t{1}, "gradient_acc",
                   "micro-batches accumulated per optimizer step"),
               1, 65536),
      key("train.seed", I, int64_t{2048}, "seed", "seed of every random stream of the run"),
      one_of(key("train.device", S, std::string("auto"), "",
                 "auto (CUDA GPU local_rank when one is visible, else CPU), cpu or cuda"),
             {"auto", "cpu", "cuda"}),
      between(key("train.cpu_threads", I, int64_t{0}, "",
                  "threads of the training thread's parallel tensor work; 0: the cores shared "
                  "by the ranks on the host (or OMP_NUM_THREADS when set)"),
              0, 4096, false, false),
      one_of(key("train.amp", S, std::string("none"), "fp16",
                 "mixed precision on GPU: none, bf16, or fp16 with a dynamic loss scale"),
             {"none", "bf16", "fp16"}),
      at_least(key("train.frequent", I, int64_t{10}, "frequent", "steps between progress lines"),
               1),
      at_least(key("train.verbose", I, int64_t{2000}, "verbose", "steps between verification runs"),
               1),
      key("train.output", S, std::string("output"), "output", "run folder"),
      at_least(key("train.checkpoint_every", I, int64_t{2000}, "",
                   "steps between checkpoints (one is always written at the end)"),
               1),
      at_least(key("train.checkpoint_keep", I, int64_t{3}, "",
                   "checkpoints kept; older ones are deleted"),
               1),
      at_least(key("train.max_nonfinite", I, int64_t{10}, "",
                   "consecutive NaN/inf losses that stop the run"),
               1),
      // eval
      key("eval.val_targets", SL, std::vector<std::string>{"lfw", "cfp_fp", "agedb_30"},
          "val_targets", "verification sets: names looked up in eval.val_dir, or paths"),
      key("eval.val_dir", S, std::string(""), "", "folder holding NAME.h5 verification sets"),
      in_range(key("eval.batch_size", I, int64_t{64}, "", "images per forward in evaluation"), 1,
               65536),
      // dist
      one_of(key("dist.backend", S, std::string("auto"), "",
                 "auto (nccl on GPU, mpi on CPU, local for one process), local, mpi, nccl"),
             {"auto", "local", "mpi", "nccl"}),
      in_range(key("dist.timeout_s", F, 600.0, "",
                   "deadline of every collective; a missed one aborts the job"),
               0.001, checked::kMaxSeconds),
      at_least(key("dist.bucket_mb", F, 25.0, "", "gradient all-reduce bucket size in MB"), 0.0,
               true),
      key("dist.interface", S, std::string(""), "",
          "network interface for MPI's TCP traffic and NCCL's sockets, e.g. eth0 (also "
          "FACETRAIN_IFNAME); empty: the transports choose"),
      // log
      one_of(key("log.level", S, std::string("info"), "", "debug, info, warn or error"),
             {"debug", "info", "warn", "error"}),
      one_of(key("log.console", S, std::string("rank0"), "",
                 "which ranks print to the console: rank0 (others print errors only) or all"),
             {"rank0", "all"}),
      key("log.tensorboard", B, true, "", "write TensorBoard scalar event files"),
  };
}

const ConfigSchema& ConfigSchema::instance() {
  static const ConfigSchema schema;
  return schema;
}

const ConfigKey* ConfigSchema::find(std::string_view name) const {
  for (const auto& k : keys_) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::vector<std::string> ConfigSchema::sections() const {
  std::vector<std::string> out;
  for (const auto& k : keys_) {
    std::string section = k.name.substr(0, k.name.find('.'));
    if (std::find(out.begin(), out.end(), section) == out.end()) out.push_back(section);
  }
  return out;
}

std::string ConfigSchema::nearest(std::string_view name) const {
  const std::string_view leaf = name.substr(name.rfind('.') + 1);
  std::string best;
  std::size_t best_distance = static_cast<std::size_t>(-1);
  for (const auto& k : keys_) {
    const std::string_view k_leaf = std::string_view(k.name).substr(k.name.rfind('.') + 1);
    // A right leaf in the wrong section (or none) is the likeliest slip, so it weighs most.
    const std::size_t d = std::min(edit_distance(name, k.name), edit_distance(leaf, k_leaf) + 1);
    if (d < best_distance) {
      best_distance = d;
      best = k.name;
    }
  }
  return best;
}

}  // namespace facetrain
