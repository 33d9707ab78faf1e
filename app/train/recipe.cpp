#include "app/train/recipe.h"

#include <fmt/format.h>

#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"

namespace facetrain::train {
namespace fs = std::filesystem;

namespace {

OptimizerOptions optimizer_options(const Config& c) {
  const std::string& kind = c.get_string("optim.optimizer");
  if (kind != "sgd" && kind != "adamw") {
    throw ConfigError(fmt::format("optim.optimizer = \"{}\": expected sgd or adamw", kind));
  }
  return OptimizerOptions()
      .kind(kind == "sgd" ? OptimizerKind::kSgd : OptimizerKind::kAdamW)
      .momentum(c.get_float("optim.momentum"))
      .weight_decay(c.get_float("optim.weight_decay"));
}

losses::MarginHeadSpec head_spec(const Config& c) {
  const auto& m = c.get_float_list("loss.margin_list");
  if (m.size() != 3) {
    throw ConfigError(
        fmt::format("loss.margin_list: {} values, expected 3 (m1, m2, m3)", m.size()));
  }
  return losses::MarginHeadSpec()
      .kind(c.get_string("loss.head"))
      .scale(c.get_float("loss.scale"))
      .margins({m[0], m[1], m[2]})
      .interclass_filtering_threshold(c.get_float("loss.interclass_filtering_threshold"))
      .curricular_alpha(c.get_float("loss.curricular_alpha"))
      .subcenter_k(c.get_int("loss.subcenter_k"))
      .adaface_m(c.get_float("loss.adaface_m"))
      .adaface_h(c.get_float("loss.adaface_h"))
      .adaface_alpha(c.get_float("loss.adaface_alpha"))
      .magface(losses::MagFaceOptions()
                   .l_a(c.get_float("loss.magface_l_a"))
                   .u_a(c.get_float("loss.magface_u_a"))
                   .l_m(c.get_float("loss.magface_l_m"))
                   .u_m(c.get_float("loss.magface_u_m"))
                   .lambda_g(c.get_float("loss.magface_lambda_g")));
}

}  // namespace

TrainRecipe TrainRecipe::from(const Config& c) {
  TrainRecipe r;
  r.output = c.get_string("train.output");
  r.device = c.get_string("train.device");
  r.backend = c.get_string("dist.backend");
  r.timeout_s = c.get_float("dist.timeout_s");
  r.bucket_mb = c.get_float("dist.bucket_mb");
  r.cpu_threads = checked::narrow<int, ConfigError>(c.get_int("train.cpu_threads"), "train.cpu_threads");
  r.seed = c.get_int("train.seed");
  r.frequent = c.get_int("train.frequent");
  r.tensorboard = c.get_bool("log.tensorboard");

  r.data_path = c.get_string("data.path");
  if (r.data_path.empty()) throw ConfigError("data.path: no training dataset given");
  r.num_classes = c.get_int("data.num_classes");
  r.num_samples = c.get_int("data.num_samples");
  r.num_epoch = c.get_int("train.num_epoch");
  r.loader.batch_size = c.get_int("train.batch_size");
  r.loader.seed = static_cast<std::uint64_t>(r.seed);
  r.loader.num_workers =
      checked::narrow<int, ConfigError>(c.get_int("data.num_workers"), "data.num_workers");
  r.loader.prefetch = checked::narrow<int, ConfigError>(c.get_int("data.prefetch"), "data.prefetch");
  r.loader.skip_corrupt = c.get_string("data.corrupt_policy") == "skip";

  try {
    r.network = models::canonical_backbone_name(c.get_string("model.network"));
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("model.network: {}", e.what()));
  }
  r.backbone = models::BackboneOptions()
                   .embedding_size(c.get_int("model.embedding_size"))
                   .dropout(c.get_float("model.dropout"))
                   .checkpointing(c.get_string("model.checkpointing") == "auto" ? -1
                                  : c.get_string("model.checkpointing") == "on" ? 1
                                                                                : 0);
  r.head = head_spec(c);
  r.sample_rate = c.get_float("loss.sample_rate");

  r.optimizer = optimizer_options(c);
  r.schedule.kind = c.get_string("optim.lr_schedule");
  r.schedule.base = c.get_float("optim.lr");
  r.schedule.power = c.get_float("optim.poly_power");
  r.warmup_epoch = c.get_float("optim.warmup_epoch");
  r.clip_grad_norm = c.get_float("optim.clip_grad_norm");
  r.amp = c.get_string("train.amp");
  r.gradient_acc = c.get_int("train.gradient_acc");
  r.max_nonfinite = c.get_int("train.max_nonfinite");

  r.checkpoints.every = c.get_int("train.checkpoint_every");
  r.checkpoints.keep = c.get_int("train.checkpoint_keep");
  r.checkpoints.verify_every = c.get_int("train.verbose");
  r.checkpoints.accumulation = r.gradient_acc;
  r.checkpoints.validate();
  r.val_targets = c.get_string_list("eval.val_targets");
  r.val_dir = c.get_string("eval.val_dir");
  r.eval_batch_size = c.get_int("eval.batch_size");
  return r;
}

LrSchedule TrainRecipe::schedule_for(std::int64_t steps_per_epoch) const {
  LrSchedule s = schedule;
  // As arcface_torch: warmup_step = steps per epoch × warmup_epoch, total = × num_epoch.
  s.warmup_steps = static_cast<std::int64_t>(warmup_epoch * static_cast<double>(steps_per_epoch));
  s.total_steps = steps_per_epoch * num_epoch;
  s.validate();
  return s;
}

CheckpointPolicy TrainRecipe::checkpoints_for(std::int64_t steps_per_epoch) const {
  CheckpointPolicy p = checkpoints;
  p.total_steps = steps_per_epoch * num_epoch;
  p.validate();
  return p;
}

LossScaler TrainRecipe::loss_scaler() const {
  return amp == "fp16" ? LossScaler(LossScalerOptions()) : LossScaler();
}

losses::PartialFCOptions TrainRecipe::partial_fc(std::int64_t classes) const {
  return losses::PartialFCOptions()
      .num_classes(classes)
      .embedding_size(backbone.embedding_size())
      .sample_rate(sample_rate)
      .seed(static_cast<std::uint64_t>(seed))
      .optimizer(optimizer);
}

std::vector<VerificationTarget> TrainRecipe::verification_targets() const {
  std::vector<VerificationTarget> out;
  for (const auto& target : val_targets) {
    fs::path path = target;
    if (target.find('/') == std::string::npos && path.extension() != ".h5") {
      path = val_dir / (target + ".h5");
    }
    if (!fs::exists(path)) {
      log::warn("eval.val_targets: {} ({}) not found; not evaluated", target, path.string());
      continue;
    }
    out.push_back({path.stem().string(), path});
  }
  return out;
}

}  // namespace facetrain::train
