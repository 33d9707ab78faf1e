// Partial FC and the gradient reducer across real processes (mpirun -np 1, 2, 4), in float64:
// the distributed loss and gradients against a single-process full softmax on the same global
// batch, the sparse update of sampled rows, and the errors.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include "framework/core/error.h"
#include "framework/distributed/gradient_reducer.h"
#include "losses/ada_face_head.h"
#include "losses/combined_margin_head.h"
#include "losses/curricular_face_head.h"
#include "losses/mag_face_head.h"
#include "losses/partial_fc.h"
#include "losses/sub_center_head.h"
#include "tests/support/thrown_message.h"
#include "tests/support/world.h"

namespace facetrain {
namespace {

constexpr std::int64_t kInput = 20;
constexpr std::int64_t kDim = 16;

double max_rel_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

// Rows [lo, hi) of a global batch of `total` split over the world as the loader does it.
losses::ClassRange my_rows(std::int64_t total, const dist::Communicator& comm) {
  return losses::class_shard(total, comm.rank(), comm.size());
}

// A tiny "backbone", identical on every rank after the reducer's broadcast.
torch::nn::Linear make_backbone(std::uint64_t seed) {
  at::manual_seed(seed + static_cast<std::uint64_t>(test::world()->rank()));  // differ on purpose
  torch::nn::Linear net(torch::nn::LinearOptions(kInput, kDim));
  net->to(at::kDouble);
  return net;
}

struct Reference {
  double loss;
  at::Tensor backbone_grad_w, backbone_grad_b, centres_grad;
};

// Single process, full softmax over all C classes with plain ATen calls.
Reference full_softmax(torch::nn::Linear net, const at::Tensor& centres, const at::Tensor& x,
                       const at::Tensor& labels, losses::MarginHeadImpl& head) {
  for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
  at::Tensor w = centres.detach().clone().requires_grad_(true);
  const at::Tensor e = net->forward(x);
  const at::Tensor cosine = at::linear(e / e.norm(2, {1}, true), w / w.norm(2, {1}, true));
  const losses::HeadInput input{cosine.clamp(-1.0, 1.0), labels, e.norm(2, {1})};
  const at::Tensor loss =
      at::cross_entropy_loss(head.forward(input), labels) + head.regularizer(input);
  loss.backward();
  Reference ref{loss.item<double>(), net->weight.grad().clone(), net->bias.grad().clone(),
                w.grad().clone()};
  for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
  return ref;
}

struct ParityCase {
  const char* name;
  std::function<std::shared_ptr<losses::MarginHeadImpl>()> head;
  std::int64_t batch;
};

class PartialFcParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(PartialFcParity, MatchesSingleProcessFullSoftmax) {
  const auto& param = GetParam();
  auto comm = test::world();
  constexpr std::int64_t kClasses = 37;  // not divisible by 2 or 4
  at::manual_seed(7);
  const at::Tensor x = at::randn({param.batch, kInput}, at::kDouble);
  const at::Tensor labels = at::randint(kClasses, {param.batch}, at::kLong);

  auto net = make_backbone(11);
  dist::GradientReducer reducer(net->parameters(), net->buffers(), comm,
                                dist::GradientReducerOptions().bucket_mb(0.0005));
  reducer.broadcast_from_root();
  ASSERT_GE(reducer.num_buckets(), 1);

  const auto options = losses::PartialFCOptions()
                           .num_classes(kClasses)
                           .embedding_size(kDim)
                           .sample_rate(1.0)
                           .seed(3)
                           .dtype(at::kDouble)
                           .optimizer(OptimizerOptions().momentum(0.9).weight_decay(0));
  // The single-process centres: the same initialisation at world 1.
  auto local = std::make_shared<dist::LocalCommunicator>();
  losses::PartialFC whole(options, param.head(), local);
  const at::Tensor centres = whole.weight().clone();
  const auto reference_head = param.head();
  const Reference ref = full_softmax(net, centres, x, labels, *reference_head);

  auto head = param.head();
  losses::PartialFC fc(options, head, comm);
  const auto range = fc.range();
  const std::int64_t k = fc.centres_per_class();
  EXPECT_TRUE(fc.weight().equal(centres.narrow(0, range.lo * k, range.size() * k)))
      << "a class's centre must not depend on the world size";

  const auto rows = my_rows(param.batch, *comm);
  reducer.prepare();
  const at::Tensor loss = fc.forward(net->forward(x.narrow(0, rows.lo, rows.size())),
                                     labels.narrow(0, rows.lo, rows.size()), 0);
  loss.backward();
  reducer.finish();
  EXPECT_LE(std::abs(loss.item<double>() - ref.loss) / std::abs(ref.loss), 1e-10)
      << loss.item<double>() << " vs " << ref.loss;
  EXPECT_LE(max_rel_error(net->weight.grad(), ref.backbone_grad_w), 1e-10);
  EXPECT_LE(max_rel_error(net->bias.grad(), ref.backbone_grad_b), 1e-10);
  // Running statistics (AdaFace's norm mean and deviation, CurricularFace's t) are the global
  // batch's: the single process's, on every rank.
  const auto buffers = head->buffers();
  const auto expected_buffers = reference_head->buffers();
  ASSERT_EQ(buffers.size(), expected_buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_LE(max_rel_error(buffers[i].to(at::kDouble), expected_buffers[i].to(at::kDouble)), 1e-6)
        << "buffer " << i << ": " << buffers[i] << " vs " << expected_buffers[i];
  }

  // One SGD step of the classifier: momentum starts at 0, so w − lr·grad.
  const double lr = 0.5;
  fc.step(lr);
  const at::Tensor expected = centres.narrow(0, range.lo * k, range.size() * k) -
                              lr * ref.centres_grad.narrow(0, range.lo * k, range.size() * k);
  EXPECT_LE(max_rel_error(fc.weight(), expected), 1e-10);

  // After the backbone's step every rank holds bitwise the same weights.
  {
    at::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.sub_(p.grad(), lr);
  }
  const at::Tensor gathered = comm->all_gather(net->weight.detach().unsqueeze(0));
  for (int r = 1; r < comm->size(); ++r) EXPECT_TRUE(gathered[r].equal(gathered[0])) << r;
}

INSTANTIATE_TEST_SUITE_P(
    Heads, PartialFcParity,
    ::testing::Values(
        ParityCase{"arcface",
                   [] { return std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0); },
                   24},
        ParityCase{"cosface_uneven_batch",
                   [] { return std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0, 0.4); },
                   23},
        ParityCase{"magface",
                   [] {
                     return std::make_shared<losses::MagFaceHeadImpl>(
                         losses::MagFaceOptions().l_a(0.1).u_a(10.0));
                   },
                   24},
        ParityCase{"subcenter_k3",
                   [] { return std::make_shared<losses::SubCenterArcFaceHeadImpl>(32, 0.5, 3); },
                   24},
        // alpha 1: the running statistics are this batch's, so they weigh fully in the loss.
        ParityCase{"curricularface",
                   [] { return std::make_shared<losses::CurricularFaceHeadImpl>(64, 0.5, 1.0); },
                   24},
        ParityCase{"adaface",
                   [] { return std::make_shared<losses::AdaFaceHeadImpl>(64, 0.4, 0.333, 1.0); },
                   24}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PartialFcSampling, PositivesSampledCountRightUnsampledRowsUnchanged) {
  auto comm = test::world();
  constexpr std::int64_t kClasses = 403;
  constexpr std::int64_t kBatch = 32;
  const auto options = losses::PartialFCOptions()
                           .num_classes(kClasses)
                           .embedding_size(kDim)
                           .sample_rate(0.1)
                           .seed(5)
                           .dtype(at::kDouble);
  losses::PartialFC fc(options, std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0),
                       comm);
  const auto range = fc.range();
  EXPECT_EQ(fc.num_sample(), static_cast<std::int64_t>(0.1 * static_cast<double>(range.size())));
  at::manual_seed(9);
  const at::Tensor x = at::randn({kBatch, kDim}, at::kDouble);
  const at::Tensor labels = at::randint(kClasses, {kBatch}, at::kLong);
  const auto rows = my_rows(kBatch, *comm);

  // Two steps: the second has momentum from the first on some rows.
  for (std::int64_t step = 0; step < 2; ++step) {
    const at::Tensor before = fc.weight().clone();
    const at::Tensor momentum_before = fc.state().at("momentum").clone();
    at::Tensor e = x.narrow(0, rows.lo, rows.size()).clone().requires_grad_(true);
    fc.forward(e, labels.narrow(0, rows.lo, rows.size()), step).backward();
    const at::Tensor sampled = fc.last_sampled();
    // Every positive of the global batch on this shard is sampled.
    const at::Tensor mine = labels.ge(range.lo) & labels.lt(range.hi);
    const at::Tensor positives =
        std::get<0>(at::_unique(labels.masked_select(mine) - range.lo, true));
    EXPECT_TRUE(at::isin(positives, sampled).all().item<bool>());
    EXPECT_EQ(sampled.numel(), std::max(fc.num_sample(), positives.numel()));
    EXPECT_TRUE(std::get<0>(sampled.sort()).equal(sampled));
    EXPECT_EQ(std::get<0>(at::_unique(sampled)).numel(), sampled.numel());

    fc.step(0.1);
    at::Tensor untouched = at::ones({range.size()}, at::kBool);
    untouched.index_fill_(0, sampled, false);
    const at::Tensor idx = untouched.nonzero().squeeze(1);
    EXPECT_TRUE(fc.weight().index_select(0, idx).equal(before.index_select(0, idx)));
    EXPECT_TRUE(
        fc.state().at("momentum").index_select(0, idx).equal(momentum_before.index_select(0, idx)));
    // Sampled rows moved (weight decay alone changes every one of them).
    EXPECT_FALSE(fc.weight().index_select(0, sampled).equal(before.index_select(0, sampled)));
  }
  // Two steps draw different negatives (same seed, different step).
  EXPECT_EQ(fc.last_sampled().numel() > 0, true);
}

TEST(PartialFcSampling, SparseAdamWLeavesOtherRowsAlone) {
  auto comm = test::world();
  const auto options =
      losses::PartialFCOptions().num_classes(200).embedding_size(kDim).sample_rate(0.2).optimizer(
          OptimizerOptions().kind(OptimizerKind::kAdamW).weight_decay(0.05));
  losses::PartialFC fc(options, std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0),
                       comm);
  const at::Tensor before = fc.weight().clone();
  at::manual_seed(4);
  at::Tensor e = at::randn({8, kDim}).requires_grad_(true);
  fc.forward(e, at::randint(200, {8}, at::kLong), 0).backward();
  fc.step(1e-3);
  const at::Tensor steps = fc.state().at("steps");
  EXPECT_EQ(steps.sum().item<std::int64_t>(), fc.last_sampled().numel());
  const at::Tensor unchanged = fc.weight().eq(before).all(1);
  EXPECT_EQ(unchanged.logical_not().sum().item<std::int64_t>(), fc.last_sampled().numel());
}

TEST(PartialFcErrors, FewerClassesThanRanks) {
  auto comm = test::world();
  if (comm->size() == 1) {
    EXPECT_NE(test::thrown_message<ConfigError>([] { losses::class_shard(0, 0, 1); }), "");
    return;
  }
  const auto options = losses::PartialFCOptions().num_classes(comm->size() - 1).embedding_size(4);
  const std::string message = test::thrown_message<ConfigError>([&] {
    losses::PartialFC(options, std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0),
                      comm);
  });
  EXPECT_NE(message.find(fmt::format("data.num_classes = {}", comm->size() - 1)), std::string::npos)
      << message;
  EXPECT_NE(message.find(fmt::format("world has {}", comm->size())), std::string::npos) << message;
}

TEST(PartialFcErrors, LabelOutOfRangeNamesRankAndValue) {
  auto comm = test::world();
  const auto options = losses::PartialFCOptions().num_classes(10).embedding_size(4);
  losses::PartialFC fc(options, std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0),
                       comm);
  const int culprit = comm->size() - 1;
  at::Tensor labels = at::zeros({3}, at::kLong);
  if (comm->rank() == culprit) labels[2] = 12;
  const std::string message = test::thrown_message<DataError>([&] {
    fc.forward(at::randn({3, 4}).requires_grad_(true), labels, 0);
  });
  EXPECT_NE(message.find(
                fmt::format("rank {}: label 12 at batch position 2 out of range [0, 10)", culprit)),
            std::string::npos)
      << message;
}

TEST(PartialFcState, ReslicesAcrossWorldSizes) {
  auto comm = test::world();
  // The whole classifier's state at world 1, then each rank loads its slice of it.
  const auto options = losses::PartialFCOptions().num_classes(29).embedding_size(4).seed(8);
  auto head = std::make_shared<losses::CombinedMarginHeadImpl>(64, 1, 0.5, 0);
  losses::PartialFC whole(options, head, std::make_shared<dist::LocalCommunicator>());
  auto state = whole.state();
  state["weight"] = at::randn_like(state["weight"]);
  state["momentum"] = at::randn_like(state["momentum"]);
  losses::PartialFC part(options, head, comm);
  part.load_state(state, {0, 29}, "whole.pt");
  const auto r = part.range();
  EXPECT_TRUE(part.weight().equal(state["weight"].narrow(0, r.lo, r.size())));
  EXPECT_TRUE(part.state().at("momentum").equal(state["momentum"].narrow(0, r.lo, r.size())));
  state.erase("momentum");
  EXPECT_NE(test::thrown_message<CheckpointError>([&] {
              part.load_state(state, {0, 29}, "whole.pt");
            }).find("whole.pt: no 'momentum'"),
            std::string::npos);
}

}  // namespace
}  // namespace facetrain
