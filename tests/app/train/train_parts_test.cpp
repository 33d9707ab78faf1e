// The trainer's parts alone: the loss scaler, the LR schedule (against arcface_torch's closed
// form), the metrics window, the checkpoint policy, the recipes (against arcface_torch's
// configs, key by key) and one training step on a small backbone.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "app/train/checkpoint_policy.h"
#include "app/train/loss_scaler.h"
#include "app/train/lr_schedule.h"
#include "app/train/metrics_window.h"
#include "app/train/recipe.h"
#include "app/train/train_step.h"
#include "framework/config/config.h"
#include "framework/core/error.h"
#include "framework/distributed/communicator.h"
#include "framework/distributed/gradient_reducer.h"
#include "losses/margin_head_factory.h"
#include "losses/partial_fc.h"
#include "models/backbone.h"
#include "tests/support/process.h"

namespace facetrain::train {
namespace {

namespace fs = std::filesystem;

// ---- LossScaler ----------------------------------------------------------------------------

TEST(LossScalerTest, DisabledIsOneAndAppliesEveryStep) {
  LossScaler off;
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.scale(), 1.0);
  EXPECT_TRUE(off.update(false));
  EXPECT_TRUE(off.update(true));
  EXPECT_EQ(off.scale(), 1.0);
}

TEST(LossScalerTest, BacksOffSkipsAndGrows) {
  LossScaler s(LossScalerOptions().initial_scale(1024).growth_interval(3));
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_FALSE(s.update(true));  // overflow: skip, halve
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_TRUE(s.update(false));
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.good_steps(), 2);
  EXPECT_TRUE(s.update(false));  // the third good step in a row doubles it
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_TRUE(s.update(false));
  EXPECT_FALSE(s.update(true));  // an overflow resets the count
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.good_steps(), 0);
}

TEST(LossScalerTest, NeverBelowTheMinimumAndRestores) {
  LossScaler s(LossScalerOptions().initial_scale(4).min_scale(2));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(s.update(true));
  EXPECT_EQ(s.scale(), 2);
  s.restore(8192, 17);
  EXPECT_EQ(s.scale(), 8192);
  EXPECT_EQ(s.good_steps(), 17);
  s.restore(0, 0);  // a checkpoint of a run without a scale: the initial one
  EXPECT_EQ(s.scale(), 4);
  EXPECT_THROW(LossScaler(LossScalerOptions().initial_scale(0.5)), ConfigError);
  EXPECT_THROW(LossScaler(LossScalerOptions().growth_interval(0)), ConfigError);
  EXPECT_THROW(LossScaler(LossScalerOptions().backoff_factor(1.0)), ConfigError);
}

// ---- LrSchedule ----------------------------------------------------------------------------

// arcface_torch's PolynomialLRWarmup in closed form (lr_scheduler.py, _get_closed_form_lr), at
// scheduler step l: with no warmup its first step is the base rate.
double arcface_lr(double base, std::int64_t W, std::int64_t T, double power, std::int64_t l) {
  if (W == 0 && l == 0) return base;
  if (l <= W) return base * static_cast<double>(l) / static_cast<double>(W);
  const double done = static_cast<double>(std::min(T, l) - W) / static_cast<double>(T - W);
  return base * std::pow(1.0 - done, power);
}

TEST(LrScheduleTest, PolyIsArcfaceTorchsPolynomialLRWarmup) {
  for (const std::int64_t warmup : {0, 10}) {
    for (const double power : {1.0, 2.0}) {
      LrSchedule s;
      s.base = 0.1;
      s.power = power;
      s.warmup_steps = warmup;
      s.total_steps = 100;
      s.validate();
      for (std::int64_t t = 0; t <= 110; ++t) {
        EXPECT_NEAR(s.at(t), arcface_lr(0.1, warmup, 100, power, t), 1e-15)
            << "step " << t << ", warmup " << warmup << ", power " << power;
      }
    }
  }
  EXPECT_EQ(LrSchedule().power, 1.0);  // arcface_torch's default
}

TEST(LrScheduleTest, CosineAfterWarmup) {
  LrSchedule s;
  s.kind = "cosine";
  s.base = 0.2;
  s.warmup_steps = 4;
  s.total_steps = 24;
  EXPECT_DOUBLE_EQ(s.at(2), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.2);
  EXPECT_NEAR(s.at(14), 0.1, 1e-15);  // half way: cos(pi/2)
  EXPECT_NEAR(s.at(9), 0.2 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-15);
  EXPECT_NEAR(s.at(24), 0.0, 1e-15);
  s.kind = "step";
  EXPECT_THROW(s.validate(), ConfigError);
  s.kind = "poly";
  s.warmup_steps = 25;
  EXPECT_THROW(s.validate(), ConfigError);
}

// ---- MetricsWindow -------------------------------------------------------------------------

TEST(MetricsWindowTest, MeanOfFiniteLossesAndThroughput) {
  MetricsWindow w(0.5);
  w.add(1.0, 32);
  w.add(std::nan(""), 32);
  w.add(3.0, 32);
  const auto first = w.close(2.0);
  EXPECT_EQ(first.steps, 3);
  EXPECT_DOUBLE_EQ(first.mean_loss, 2.0);
  EXPECT_DOUBLE_EQ(first.images_per_second, 96 / 1.5);
  w.add(std::numeric_limits<double>::infinity(), 10);
  const auto second = w.close(3.0);  // starts where the first ended
  EXPECT_TRUE(std::isnan(second.mean_loss));
  EXPECT_DOUBLE_EQ(second.images_per_second, 10.0);
}

// ---- CheckpointPolicy ----------------------------------------------------------------------

TEST(CheckpointPolicyTest, CadenceOnOptimizerBoundariesAndAtTheEnd) {
  CheckpointPolicy p;
  p.every = 3;
  p.accumulation = 2;
  p.verify_every = 4;
  p.total_steps = 12;
  p.validate();
  std::vector<std::int64_t> saves, verifies;
  for (std::int64_t done = 1; done <= 12; ++done) {
    if (p.save_after(done)) saves.push_back(done);
    if (p.verify_after(done)) verifies.push_back(done);
  }
  EXPECT_EQ(saves, (std::vector<std::int64_t>{6}));  // 3 and 9 are mid-accumulation; 12 is the end
  EXPECT_EQ(verifies, (std::vector<std::int64_t>{4, 8}));
  EXPECT_TRUE(p.save_at_end(12, 6));
  EXPECT_FALSE(p.save_at_end(6, 6));
  p.keep = 0;
  EXPECT_THROW(p.validate(), ConfigError);
}

TEST(CheckpointPolicyTest, KeepsTheNewestByStepNumber) {
  CheckpointPolicy p;
  p.keep = 2;
  EXPECT_EQ(p.retired({9, 1, 5, 3, 7}, 9), (std::vector<std::int64_t>{1, 3, 5}));
  EXPECT_EQ(p.retired({10000000, 9999999, 5}, 10000000), (std::vector<std::int64_t>{5}));
  EXPECT_TRUE(p.retired({4, 8}, 8).empty());
  p.keep = 1;
  // A resumed run re-writing an older step keeps the folder it just wrote.
  EXPECT_EQ(p.retired({3, 5, 9}, 3), (std::vector<std::int64_t>{5}));
}

// ---- Recipes -------------------------------------------------------------------------------

// arcface_torch's values (configs/base.py and each recipe's file) that a facetrain recipe
// reproduces.
struct ArcfaceConfig {
  const char* recipe;  // experiments/NAME.toml
  const char* network;
  std::array<double, 3> margins;
  double sample_rate, weight_decay;
  std::int64_t num_classes, num_image, num_epoch, verbose;
};

const ArcfaceConfig kArcfaceConfigs[] = {
    {"ms1mv3_mbf", "mbf", {1.0, 0.5, 0.0}, 1.0, 1e-4, 93431, 5179510, 40, 2000},
    {"ms1mv3_r50", "r50", {1.0, 0.5, 0.0}, 1.0, 5e-4, 93431, 5179510, 20, 2000},
    {"ms1mv3_r100", "r100", {1.0, 0.5, 0.0}, 1.0, 5e-4, 93431, 5179510, 20, 2000},
    {"glint360k_r100", "r100", {1.0, 0.0, 0.4}, 1.0, 1e-4, 360232, 17091657, 20, 2000},
    {"webface42m_r100", "r100", {1.0, 0.0, 0.4}, 0.2, 5e-4, 2059906, 42474557, 20, 10000},
};

fs::path recipe_path(const char* name) {
  return fs::path(test::env("FACETRAIN_SOURCE_DIR")) / "experiments" /
         (std::string(name) + ".toml");
}

TEST(RecipeTest, EveryRecipeIsItsArcfaceTorchConfigKeyByKey) {
  for (const auto& a : kArcfaceConfigs) {
    SCOPED_TRACE(a.recipe);
    const TrainRecipe r = TrainRecipe::from(Config::from_file(recipe_path(a.recipe)));
    EXPECT_EQ(r.network, models::canonical_backbone_name(a.network));
    EXPECT_EQ(r.backbone.embedding_size(), 512);
    EXPECT_EQ(r.head.kind(), "combined");
    EXPECT_EQ(r.head.margins(), a.margins);
    EXPECT_EQ(r.head.scale(), 64.0);
    EXPECT_EQ(r.head.interclass_filtering_threshold(), 0.0);
    EXPECT_EQ(r.sample_rate, a.sample_rate);
    EXPECT_EQ(r.amp, "fp16");
    EXPECT_EQ(r.loader.batch_size, 128);
    EXPECT_EQ(r.optimizer.kind(), OptimizerKind::kSgd);
    EXPECT_EQ(r.schedule.base, 0.1);
    EXPECT_EQ(r.optimizer.momentum(), 0.9);
    EXPECT_EQ(r.optimizer.weight_decay(), a.weight_decay);
    EXPECT_EQ(r.num_classes, a.num_classes);
    EXPECT_EQ(r.num_samples, a.num_image);
    EXPECT_EQ(r.num_epoch, a.num_epoch);
    EXPECT_EQ(r.warmup_epoch, 0.0);
    EXPECT_EQ(r.checkpoints.verify_every, a.verbose);
    EXPECT_EQ(r.frequent, 10);
    EXPECT_EQ(r.gradient_acc, 1);
    EXPECT_EQ(r.seed, 2048);
    EXPECT_EQ(r.loader.num_workers, 2);
    EXPECT_EQ(r.val_targets, (std::vector<std::string>{"lfw", "cfp_fp", "agedb_30"}));
    EXPECT_EQ(r.schedule.kind, "poly");
    EXPECT_EQ(r.schedule.power, 1.0);
  }
}

TEST(RecipeTest, VitRecipesAreArcfaceTorchsWebFace42mConfigs) {
  // configs/wf42m_pfc03_40epoch_8gpu_vit_{t,b}.py: AdamW at 1e-3 with weight decay 0.1, 40
  // epochs, warm-up num_epoch // 10, Partial FC 0.3, CosFace 0.4; vit_b at 256 x 12.
  struct Vit {
    const char* recipe;
    const char* network;
    std::int64_t batch, accumulation;
  };
  for (const Vit& v : {Vit{"wf42m_vit_t", "vit_t_dp005_mask0", 512, 1},
                       Vit{"wf42m_vit_b", "vit_b_dp005_mask_005", 256, 12}}) {
    SCOPED_TRACE(v.recipe);
    const TrainRecipe r = TrainRecipe::from(Config::from_file(recipe_path(v.recipe)));
    EXPECT_EQ(r.network, v.network);
    EXPECT_EQ(r.head.margins(), (std::array<double, 3>{1.0, 0.0, 0.4}));
    EXPECT_EQ(r.sample_rate, 0.3);
    EXPECT_EQ(r.optimizer.kind(), OptimizerKind::kAdamW);
    EXPECT_EQ(r.schedule.base, 0.001);
    EXPECT_EQ(r.optimizer.weight_decay(), 0.1);
    EXPECT_EQ(r.num_epoch, 40);
    EXPECT_EQ(r.warmup_epoch, 4.0);
    EXPECT_EQ(r.loader.batch_size, v.batch);
    EXPECT_EQ(r.gradient_acc, v.accumulation);
    EXPECT_EQ(r.num_classes, 2059906);
    EXPECT_EQ(r.amp, "bf16");
    EXPECT_EQ(r.backbone.checkpointing(), -1);  // the network's default: on for vit_b
  }
  const TrainRecipe cpu = TrainRecipe::from(Config::from_file(recipe_path("synthetic_vit_t")));
  EXPECT_EQ(cpu.network, "vit_t");
  EXPECT_EQ(cpu.optimizer.kind(), OptimizerKind::kAdamW);
}

TEST(RecipeTest, EveryRecipesLearningRateIsArcfaceTorchsAtEveryStep) {
  // A short run of each recipe (7 steps per epoch), and the same with a warmup epoch.
  const std::int64_t steps_per_epoch = 7;
  for (const auto& a : kArcfaceConfigs) {
    for (const double warmup_epoch : {0.0, 1.0}) {
      SCOPED_TRACE(fmt::format("{}, warmup {}", a.recipe, warmup_epoch));
      Config config = Config::from_file(recipe_path(a.recipe));
      config.apply_override(fmt::format("optim.warmup_epoch={}", warmup_epoch));
      const LrSchedule s = TrainRecipe::from(config).schedule_for(steps_per_epoch);
      const std::int64_t T = steps_per_epoch * a.num_epoch;
      const auto W = static_cast<std::int64_t>(warmup_epoch) * steps_per_epoch;
      ASSERT_EQ(s.total_steps, T);
      ASSERT_EQ(s.warmup_steps, W);
      for (std::int64_t t = 0; t <= T; ++t) {
        ASSERT_NEAR(s.at(t), arcface_lr(0.1, W, T, 1.0, t), 1e-15) << "step " << t;
      }
    }
  }
}

TEST(RecipeTest, ArcfaceTorchsNetworkNamesAreAccepted) {
  Config config;
  config.apply_override("data.path=/d");
  config.apply_override("model.network=r50");
  EXPECT_EQ(TrainRecipe::from(config).network, "iresnet50");
  config.apply_override("model.network=r5");
  try {
    TrainRecipe::from(config);
    ADD_FAILURE() << "r5 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.network: unknown network 'r5'"), std::string::npos)
        << e.what();
  }
}

TEST(RecipeTest, HeadSpecBuildsTheConfiguredHead) {
  Config config;
  config.apply_override("data.path=/d");
  config.apply_override("loss.head=subcenter");
  config.apply_override("loss.subcenter_k=4");
  const TrainRecipe r = TrainRecipe::from(config);
  EXPECT_EQ(losses::make_margin_head(r.head)->centres_per_class(), 4);
  config.apply_override("optim.optimizer=adamw");
  EXPECT_EQ(TrainRecipe::from(config).partial_fc(10).optimizer().kind(), OptimizerKind::kAdamW);
}

// ---- TrainStep -----------------------------------------------------------------------------

// A small backbone: a linear map of the flattened 3×4×4 image to an 8-d embedding.
class TinyBackboneImpl : public models::BackboneImpl {
 public:
  TinyBackboneImpl() : fc_(register_module("fc", torch::nn::Linear(48, 8))) {}
  at::Tensor forward(at::Tensor images) override { return fc_(images.flatten(1)); }
  std::string lower(models::GraphEmitter& g, const std::string& path,
                    const std::string& x) const override {
    return g.apply(child_path(path, "fc"), *fc_, g.flatten(child_path(path, "flatten"), x));
  }
  std::int64_t embedding_size() const override { return 8; }
  std::string network() const override { return "tiny"; }

 private:
  torch::nn::Linear fc_;
};

// A backbone, Partial FC, optimizer and reducer on one process, and a fixed batch.
struct StepRig {
  std::shared_ptr<dist::Communicator> comm = std::make_shared<dist::LocalCommunicator>();
  std::shared_ptr<TinyBackboneImpl> backbone;
  std::unique_ptr<losses::PartialFC> fc;
  std::vector<at::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<dist::GradientReducer> reducer;
  at::Tensor images, labels;

  explicit StepRig(const std::string& head = "combined") {
    at::manual_seed(5);
    backbone = std::make_shared<TinyBackboneImpl>();
    fc = std::make_unique<losses::PartialFC>(
        losses::PartialFCOptions().num_classes(6).embedding_size(8).seed(1),
        losses::make_margin_head(
            losses::MarginHeadSpec().kind(head).scale(8).curricular_alpha(0.5).adaface_alpha(0.5)),
        comm);
    params = backbone->parameters();
    optimizer = make_optimizer(OptimizerOptions().weight_decay(0), params, 0.1);
    reducer = std::make_unique<dist::GradientReducer>(params, backbone->buffers(), comm);
    images = at::randn({4, 3, 4, 4});
    labels = at::tensor({0, 2, 4, 5}, at::kLong);
  }
  TrainStep step(TrainStepOptions options, LossScaler scaler = {}) {
    return TrainStep(*backbone, *fc, *optimizer, *reducer, *comm, params, options, scaler);
  }
  at::Tensor weights() const { return backbone->parameters()[0].detach().clone(); }
};

TrainStepOptions step_options(std::int64_t total, std::int64_t accumulation = 1) {
  TrainStepOptions o;
  o.total_steps = total;
  o.accumulation = accumulation;
  o.max_nonfinite = 2;
  return o;
}

TEST(TrainStepTest, AStepUpdatesTheBackboneAndTheClassifier) {
  StepRig rig;
  auto step = rig.step(step_options(10));
  const at::Tensor w0 = rig.weights(), c0 = rig.fc->weight().clone();
  const StepOutcome out = step.run(rig.images, rig.labels, 0, 0.1);
  EXPECT_TRUE(std::isfinite(out.loss));
  EXPECT_TRUE(out.boundary);
  EXPECT_TRUE(out.applied);
  EXPECT_FALSE(rig.weights().equal(w0));
  EXPECT_FALSE(rig.fc->weight().equal(c0));
  // Training on one batch lowers its loss.
  double last = out.loss;
  for (int i = 1; i < 5; ++i) last = step.run(rig.images, rig.labels, i, 0.1).loss;
  EXPECT_LT(last, out.loss);
}

TEST(TrainStepTest, AccumulatedStepsUpdateOnlyOnTheBoundary) {
  StepRig rig;
  auto step = rig.step(step_options(3, 2));
  const at::Tensor w0 = rig.weights();
  EXPECT_FALSE(step.run(rig.images, rig.labels, 0, 0.1).boundary);
  EXPECT_TRUE(rig.weights().equal(w0));
  const StepOutcome second = step.run(rig.images, rig.labels, 1, 0.1);
  EXPECT_TRUE(second.boundary && second.applied);
  EXPECT_FALSE(rig.weights().equal(w0));
  // The run's last step closes an optimizer step even mid-accumulation.
  EXPECT_TRUE(step.run(rig.images, rig.labels, 2, 0.1).boundary);
}

TEST(TrainStepTest, NonFiniteStepsAreSkippedThenStopTheRun) {
  StepRig rig;
  auto step = rig.step(step_options(10));
  const at::Tensor w0 = rig.weights();
  const StepOutcome poisoned = step.run(rig.images, rig.labels, 0, 0.1, /*poison=*/true);
  EXPECT_TRUE(std::isnan(poisoned.loss));
  EXPECT_FALSE(poisoned.applied);
  EXPECT_EQ(step.skipped(), 1);
  EXPECT_TRUE(rig.weights().equal(w0));
  EXPECT_TRUE(step.run(rig.images, rig.labels, 1, 0.1).applied);  // a good step resets the count
  EXPECT_FALSE(step.run(rig.images, rig.labels, 2, 0.1, true).applied);
  EXPECT_THROW(step.run(rig.images, rig.labels, 3, 0.1, true), Error);  // the second in a row
  EXPECT_EQ(step.skipped(), 3);
}

TEST(TrainStepTest, ASkippedStepLeavesTheHeadsRunningStatistics) {
  for (const std::string head : {"curricular", "adaface"}) {
    SCOPED_TRACE(head);
    StepRig rig(head);
    auto step = rig.step(step_options(10));
    ASSERT_TRUE(step.run(rig.images, rig.labels, 0, 0.1).applied);
    std::vector<at::Tensor> before;
    for (const auto& b : rig.fc->head().buffers()) before.push_back(b.clone());
    ASSERT_FALSE(before.empty());
    EXPECT_FALSE(step.run(rig.images, rig.labels, 1, 0.1, /*poison=*/true).applied);
    const auto after = rig.fc->head().buffers();
    for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(after[i].equal(before[i])) << i;
    // A good step moves them again.
    EXPECT_TRUE(step.run(rig.images, rig.labels, 2, 0.1).applied);
    bool moved = false;
    for (std::size_t i = 0; i < before.size(); ++i) moved |= !after[i].equal(before[i]);
    EXPECT_TRUE(moved);
  }
}

TEST(TrainStepTest, ALossScaleLeavesTheUpdateUnchanged) {
  // The same step with the loss scaled by 1024 and the gradients unscaled before the update.
  StepRig plain, scaled;
  auto a = plain.step(step_options(10));
  auto b = scaled.step(step_options(10), LossScaler(LossScalerOptions().initial_scale(1024)));
  for (int i = 0; i < 3; ++i) {
    a.run(plain.images, plain.labels, i, 0.1);
    EXPECT_TRUE(b.run(scaled.images, scaled.labels, i, 0.1).applied);
  }
  EXPECT_TRUE(at::allclose(plain.weights(), scaled.weights(), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(plain.fc->weight(), scaled.fc->weight(), 1e-5, 1e-6));
  EXPECT_EQ(b.scaler().good_steps(), 3);
  // An overflow skips the update and halves the scale.
  EXPECT_FALSE(b.run(scaled.images, scaled.labels, 3, 0.1, /*poison=*/true).applied);
  EXPECT_EQ(b.scaler().scale(), 512);
}

TEST(TrainStepTest, MixedPrecisionNeedsCuda) {
  StepRig rig;
  TrainStepOptions o = step_options(10);
  o.amp = at::kBFloat16;
  EXPECT_THROW(rig.step(o), ConfigError);
}

}  // namespace
}  // namespace facetrain::train
