// A checkpoint's metadata (state.json) and the backbone optimizer's state as named tensors:
// written, read back the same, and refused by name when they contradict themselves.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <new>
#include <stdexcept>
#include <string>

#include "app/train/checkpoint.h"
#include "app/train/checkpoint_state.h"
#include "app/train/optimizer_state.h"
#include "framework/core/error.h"
#include "tests/support/thrown_message.h"

namespace facetrain::train {
namespace {

StateFile example() {
  StateFile s;
  s.state.step = 40;
  s.state.epoch = 2;
  s.state.consumed = 96;
  s.state.global_batch = 16;
  s.state.world_size = 2;
  s.state.num_classes = 24;
  s.state.seed = -3;
  s.files = {{"backbone.pt", {4096, 0xDEADBEEF}}, {"fc-0-12.pt", {700, 1}}, {"fc-12-24.pt", {700, 2}}};
  return s;
}

TEST(CheckpointStateTest, RoundTripsAndNamesContradictions) {
  const StateFile back = parse_state(state_json(example()), "state.json");
  EXPECT_EQ(back.state.step, 40);
  EXPECT_EQ(back.state.consumed, 96);
  EXPECT_EQ(back.state.seed, -3);
  ASSERT_EQ(back.files.size(), 3u);
  EXPECT_EQ(back.files.at("backbone.pt").crc32, 0xDEADBEEFu);
  EXPECT_EQ(back.files.at("fc-12-24.pt").bytes, 700);

  const auto refused = [](std::string text) {
    return test::thrown_message<CheckpointError>([&] { parse_state(text, "state.json"); });
  };
  const std::string good = state_json(example());
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  EXPECT_NE(refused(with("\"epoch\": 2", "\"epoch\": 9223372036854775807"))
                .find("state.json: epoch 9223372036854775807 after 40 steps"),
            std::string::npos);
  EXPECT_NE(refused(with("\"version\": 2", "\"version\": 1")).find("format version 1"),
            std::string::npos);
  EXPECT_NE(refused(with("\"fc-0-12.pt\"", "\"../fc-0-12.pt\""))
                .find("\"../fc-0-12.pt\" is not a file name beside state.json"),
            std::string::npos);
  EXPECT_NE(refused(with("\"crc32\": 1", "\"crc32\": -1")).find("key \"crc32\" = -1 is out of range"),
            std::string::npos);
  EXPECT_NE(refused("{\"format\": \"facetrain-checkpoint\"").find("not valid JSON"),
            std::string::npos);
}

// Damage is what a checkpoint's own content raises; trouble reading it is never taken for damage
// (a resume would skip a good checkpoint, or start over a run).
TEST(CheckpointStateTest, OnlyContentErrorsAreDamage) {
  EXPECT_TRUE(is_damage(CheckpointError("state.json: not valid JSON")));
  EXPECT_TRUE(is_damage(ConfigError("config.toml:3: invalid TOML")));
  EXPECT_TRUE(is_damage(DataError("a weights tensor")));
  EXPECT_FALSE(is_damage(IoError("backbone.pt: read failed at byte 0: Input/output error")));
  EXPECT_FALSE(is_damage(std::bad_alloc()));
  EXPECT_FALSE(is_damage(std::runtime_error("anything else")));
}

TEST(OptimizerStateTest, SgdAndAdamWRoundTripAndWrongStateIsNamed) {
  at::manual_seed(0);
  const std::vector<at::Tensor> params = {at::randn({3, 2}).requires_grad_(),
                                          at::randn({4}).requires_grad_()};
  const auto step = [&](torch::optim::Optimizer& o) {
    for (const auto& p : params) p.mutable_grad() = at::randn_like(p);
    o.step();
  };
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  step(sgd);
  const models::NamedTensors saved = optimizer_state(sgd);
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved[1].first, "state.1.momentum_buffer");
  torch::optim::SGD fresh(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  std::map<std::string, at::Tensor> tensors(saved.begin(), saved.end());
  load_optimizer_state(fresh, tensors, "optimizer.pt");
  const models::NamedTensors again = optimizer_state(fresh);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_TRUE(at::equal(again[0].second, saved[0].second));

  torch::optim::AdamW adam(params, torch::optim::AdamWOptions(0.01));
  step(adam);
  step(adam);
  const models::NamedTensors moments = optimizer_state(adam);
  std::map<std::string, at::Tensor> adam_tensors(moments.begin(), moments.end());
  EXPECT_EQ(adam_tensors.at("state.0.step").item<std::int64_t>(), 2);
  torch::optim::AdamW adam2(params, torch::optim::AdamWOptions(0.01));
  load_optimizer_state(adam2, adam_tensors, "optimizer.pt");
  std::map<std::string, at::Tensor> adam2_tensors;
  for (auto& [k, v] : optimizer_state(adam2)) adam2_tensors[k] = v;
  for (const auto& [k, v] : adam_tensors) EXPECT_TRUE(at::equal(v, adam2_tensors.at(k))) << k;

  // Another optimizer's state, another shape, an index past the parameters, a foreign name.
  EXPECT_NE(test::thrown_message<CheckpointError>([&] {
              load_optimizer_state(sgd, adam_tensors, "optimizer.pt");
            }).find("is AdamW's state, the run's optimizer is SGD"),
            std::string::npos);
  const auto problem = [&](std::map<std::string, at::Tensor> t) {
    return optimizer_state_problem(t, params, "optimizer.pt");
  };
  EXPECT_NE(problem({{"state.0.momentum_buffer", at::zeros({2, 3})}})
                .find("'state.0.momentum_buffer' has shape [2, 3], the parameter [3, 2]"),
            std::string::npos);
  EXPECT_NE(problem({{"state.7.momentum_buffer", at::zeros({4})}}).find("for parameter 7, the backbone has 2"),
            std::string::npos);
  EXPECT_NE(problem({{"param_groups", at::zeros({1})}}).find("is not an optimizer state"),
            std::string::npos);
  EXPECT_NE(problem({{"state.1.momentum_buffer", at::full({4}, NAN)}}).find("non-finite"),
            std::string::npos);
  EXPECT_NE(problem({{"state.1.step", at::scalar_tensor(-1, at::kLong)}}).find("must be a count"),
            std::string::npos);
}

}  // namespace
}  // namespace facetrain::train
