// Margin heads: closed-form losses, finite-difference gradients in double precision, the
// beyond-π continuation, filtering, running statistics and parameter validation.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn.h>

#include <cmath>
#include <functional>

#include "framework/core/error.h"
#include "losses/ada_face_head.h"
#include "losses/combined_margin_head.h"
#include "losses/curricular_face_head.h"
#include "losses/mag_face_head.h"
#include "losses/margin_head_factory.h"
#include "losses/sub_center_head.h"

namespace facetrain::losses {
namespace {

constexpr double kDeg = M_PI / 180.0;
const auto kF64 = at::TensorOptions().dtype(at::kDouble);

// The example: the embedding at 0°, class centres at 60° (its own class), 30°, 90°, 180°.
HeadInput four_centres() {
  const at::Tensor cosine = torch::tensor({std::cos(60 * kDeg), std::cos(30 * kDeg),
                                           std::cos(90 * kDeg), std::cos(180 * kDeg)},
                                          kF64)
                                .unsqueeze(0);
  return {cosine, torch::tensor({0L}, at::kLong), at::Tensor()};
}

// log Σ_j exp(z_j) − z_0 for logits z, computed directly in double.
double softmax_ce(const std::vector<double>& z) {
  double mx = z[0];
  for (double v : z) mx = std::max(mx, v);
  double sum = 0;
  for (double v : z) sum += std::exp(v - mx);
  return mx + std::log(sum) - z[0];
}

double head_loss(MarginHeadImpl& head, const HeadInput& in) {
  return margin_softmax_loss(head, in).item<double>();
}

TEST(MarginHeadTest, ClosedFormArcCosAndSoftmax) {
  const double s = 64;
  const double c30 = std::cos(30 * kDeg);
  CombinedMarginHeadImpl arc(s, 1.0, 0.5, 0.0);
  CombinedMarginHeadImpl cos(s, 1.0, 0.0, 0.4);
  CombinedMarginHeadImpl soft(s, 1.0, 0.0, 0.0);
  const double arc_expected = softmax_ce({s * std::cos(60 * kDeg + 0.5), s * c30, 0.0, -s});
  const double cos_expected = softmax_ce({s * (0.5 - 0.4), s * c30, 0.0, -s});
  const double soft_expected = softmax_ce({s * 0.5, s * c30, 0.0, -s});
  EXPECT_NEAR(head_loss(arc, four_centres()), arc_expected, 1e-9);
  EXPECT_NEAR(head_loss(cos, four_centres()), cos_expected, 1e-9);
  EXPECT_NEAR(head_loss(soft, four_centres()), soft_expected, 1e-9);
  // The published figures for this configuration.
  EXPECT_NEAR(arc_expected, 53.915444, 1e-5);
  EXPECT_NEAR(cos_expected, 49.025626, 1e-5);
  EXPECT_NEAR(soft_expected, 23.425626, 1e-5);
}

TEST(MarginHeadTest, ClosedFormSphereFaceAndMixedMargins) {
  const double s = 64;
  const double c30 = std::cos(30 * kDeg);
  // SphereFace m1 = 2: cos(120°) = −0.5 for the target.
  CombinedMarginHeadImpl sphere(s, 2.0, 0.0, 0.0);
  EXPECT_NEAR(head_loss(sphere, four_centres()), softmax_ce({-0.5 * s, s * c30, 0.0, -s}), 1e-9);
  // A mix: (1, 0.3, 0.2).
  CombinedMarginHeadImpl mix(s, 1.0, 0.3, 0.2);
  EXPECT_NEAR(head_loss(mix, four_centres()),
              softmax_ce({s * (std::cos(60 * kDeg + 0.3) - 0.2), s * c30, 0.0, -s}), 1e-9);
}

TEST(MarginHeadTest, BeyondPiIsContinuousAndDecreasing) {
  // ArcFace m = 0.5: θ* = π − 0.5. Evaluate on a fine grid of θ across [0, π].
  const at::Tensor theta = at::linspace(0.0, M_PI - 1e-6, 20001, kF64);
  const at::Tensor m2 = at::full({}, 0.5, kF64);
  const at::Tensor v = angular_margin_cos(at::cos(theta), 1.0, m2);
  const at::Tensor steps = v.slice(0, 1) - v.slice(0, 0, -1);
  EXPECT_LE(steps.max().item<double>(), 1e-12) << "not decreasing";
  EXPECT_LE(steps.abs().max().item<double>(), 1e-3) << "a jump";
  // Exactly cos(θ + m) before θ*, −1 at θ*.
  EXPECT_NEAR(angular_margin_cos(at::full({1}, std::cos(1.0), kF64), 1.0, m2).item<double>(),
              std::cos(1.5), 1e-12);
  EXPECT_NEAR(angular_margin_cos(at::full({1}, std::cos(M_PI - 0.5), kF64), 1.0, m2).item<double>(),
              -1.0, 1e-9);
  // SphereFace m1 = 3: θ* = π/3.
  const at::Tensor sphere = angular_margin_cos(at::cos(theta), 3.0, at::zeros({}, kF64));
  const at::Tensor sphere_steps = sphere.slice(0, 1) - sphere.slice(0, 0, -1);
  EXPECT_LE(sphere_steps.max().item<double>(), 1e-12);
  EXPECT_LE(sphere_steps.abs().max().item<double>(), 1e-3);
}

// Largest |autograd − central difference| / max(1, |central difference|) over every element of x.
double gradient_error(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x0) {
  at::Tensor x = x0.clone().set_requires_grad(true);
  const at::Tensor y = f(x);
  const at::Tensor analytic = torch::autograd::grad({y}, {x})[0];
  const double eps = 1e-6;
  double worst = 0;
  at::Tensor flat = x0.clone();
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    at::Tensor plus = x0.clone();
    at::Tensor minus = x0.clone();
    plus.view(-1)[i] += eps;
    minus.view(-1)[i] -= eps;
    const double numeric = (f(plus).item<double>() - f(minus).item<double>()) / (2 * eps);
    const double a = analytic.view(-1)[i].item<double>();
    worst = std::max(worst, std::abs(a - numeric) / std::max(1.0, std::abs(numeric)));
  }
  return worst;
}

struct Batch {
  at::Tensor cosine, labels, norms;
};

Batch random_batch(std::int64_t b, std::int64_t n, std::int64_t classes, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Batch out;
  out.cosine = at::rand({b, n}, gen, kF64) * 1.8 - 0.9;
  out.labels = at::randint(0, classes, {b}, gen, at::TensorOptions().dtype(at::kLong));
  out.norms = at::rand({b}, gen, kF64) * 60 + 5;
  return out;
}

void expect_gradients(MarginHeadImpl& head, const Batch& batch, bool check_norms) {
  head.eval();
  auto loss_of_cos = [&](const at::Tensor& c) {
    return margin_softmax_loss(head, {c, batch.labels, batch.norms});
  };
  EXPECT_LT(gradient_error(loss_of_cos, batch.cosine), 1e-7);
  if (check_norms) {
    auto loss_of_norms = [&](const at::Tensor& norms) {
      return margin_softmax_loss(head, {batch.cosine, batch.labels, norms});
    };
    EXPECT_LT(gradient_error(loss_of_norms, batch.norms), 1e-7);
  }
}

TEST(MarginHeadGradientTest, CombinedFamily) {
  Batch batch = random_batch(5, 7, 7, 1);
  batch.labels[4] = -1;  // a row whose class lives elsewhere (Partial FC)
  for (auto m : std::vector<std::array<double, 3>>{
           {1, 0.5, 0}, {1, 0, 0.4}, {1, 0, 0}, {2, 0, 0}, {1.2, 0.3, 0.1}}) {
    CombinedMarginHeadImpl head(64, m[0], m[1], m[2]);
    SCOPED_TRACE(::testing::Message() << m[0] << "," << m[1] << "," << m[2]);
    expect_gradients(head, batch, false);
  }
  CombinedMarginHeadImpl filtered(32, 1, 0.5, 0, 0.6);
  expect_gradients(filtered, batch, false);
}

TEST(MarginHeadGradientTest, CurricularFace) {
  CurricularFaceHeadImpl head(64, 0.5);
  head.t().fill_(0.3);
  expect_gradients(head, random_batch(5, 6, 6, 2), false);
}

TEST(MarginHeadGradientTest, AdaFace) {
  AdaFaceHeadImpl head(64, 0.4, 0.333);
  expect_gradients(head, random_batch(5, 6, 6, 3), false);
}

TEST(MarginHeadGradientTest, MagFaceThroughCosinesAndNorms) {
  MagFaceHeadImpl head(MagFaceOptions{});
  expect_gradients(head, random_batch(5, 6, 6, 4), true);
}

TEST(MarginHeadGradientTest, SubCenterArcFace) {
  SubCenterArcFaceHeadImpl head(64, 0.5, 3);
  expect_gradients(head, random_batch(4, 5 * 3, 5, 5), false);
}

TEST(MarginHeadTest, InterclassFilteringZeroesConfidentNegativesOnly) {
  CombinedMarginHeadImpl head(1.0, 1, 0, 0, 0.4);
  const at::Tensor cosine = torch::tensor({{0.9, 0.5, 0.1}, {0.45, -0.2, 0.8}}, kF64);
  const at::Tensor labels = torch::tensor({0L, 2L}, at::kLong);
  const at::Tensor logits = head.forward({cosine, labels, {}});
  const at::Tensor expected = torch::tensor({{0.9, 0.0, 0.1}, {0.0, -0.2, 0.8}}, kF64);
  EXPECT_TRUE(logits.allclose(expected)) << logits;
}

TEST(MarginHeadTest, SubCenterTakesTheBestCentreThenArcFace) {
  const at::Tensor cosine = torch::tensor({{0.1, 0.7, 0.2, -0.3, 0.4, 0.0}}, kF64);  // C = 2, K = 3
  SubCenterArcFaceHeadImpl sub(64, 0.5, 3);
  CombinedMarginHeadImpl arc(64, 1, 0.5, 0);
  const at::Tensor labels = torch::tensor({1L}, at::kLong);
  const at::Tensor got = sub.forward({cosine, labels, {}});
  const at::Tensor want = arc.forward({torch::tensor({{0.7, 0.4}}, kF64), labels, {}});
  EXPECT_TRUE(got.allclose(want)) << got << want;
  EXPECT_EQ(sub.centres_per_class(), 3);
  EXPECT_THROW(sub.forward({at::zeros({1, 4}, kF64), labels, {}}), ConfigError);
}

TEST(MarginHeadTest, CurricularFaceRunningMeanAndHardNegatives) {
  CurricularFaceHeadImpl head(1.0, 0.5, 0.1);
  const at::Tensor cosine = torch::tensor({{0.8, 0.75, 0.1}, {0.2, 0.6, 0.3}}, kF64);
  const at::Tensor labels = torch::tensor({0L, 2L}, at::kLong);
  head.train();
  const at::Tensor logits = head.forward({cosine, labels, {}});
  const double t = 0.1 * (0.8 + 0.3) / 2;  // α · mean target cosine, from 0
  EXPECT_NEAR(head.t().item<double>(), t, 1e-7);
  const double m0 = std::cos(std::acos(0.8) + 0.5);
  const double m1 = std::cos(std::acos(0.3) + 0.5);
  // Row 0: 0.75 > cos(θ+m) is hard, 0.1 is not. Row 1: 0.2 and 0.6 are both hard.
  const at::Tensor expected =
      torch::tensor({{m0, 0.75 * (t + 0.75), 0.1}, {0.2 * (t + 0.2), 0.6 * (t + 0.6), m1}}, kF64);
  EXPECT_TRUE(logits.allclose(expected, 1e-6, 1e-6)) << logits << expected;
}

TEST(MarginHeadTest, AdaFaceAtAverageNormIsCosFace) {
  AdaFaceHeadImpl head(64, 0.4, 0.333);
  head.eval();
  const HeadInput in = four_centres();
  // Norm equal to the running mean (20): ẑ = 0, so g_angle = 0 and g_add = m.
  const double loss = head_loss(head, {in.cosine, in.labels, at::full({1}, 20.0, kF64)});
  EXPECT_NEAR(loss, softmax_ce({64 * (0.5 - 0.4), 64 * std::cos(30 * kDeg), 0.0, -64}), 1e-6);
  // A very high-quality sample (ẑ = 1): angular margin −m, additive 2m... clipped as specified.
  head.batch_std().fill_(1.0);
  const double z1 = head_loss(head, {in.cosine, in.labels, at::full({1}, 30.0, kF64)});
  const double target = std::cos(60 * kDeg - 0.4) - 0.8;
  EXPECT_NEAR(z1, softmax_ce({64 * target, 64 * std::cos(30 * kDeg), 0.0, -64}), 1e-6);
  EXPECT_THROW(head.forward({in.cosine, in.labels, at::Tensor()}), ConfigError);
}

TEST(MarginHeadTest, MagFaceMarginAndRegulariserClosedForms) {
  MagFaceHeadImpl head(MagFaceOptions{});
  const at::Tensor norms = torch::tensor({5.0, 10.0, 60.0, 110.0, 200.0}, kF64);
  const at::Tensor m = head.margin(norms);
  const at::Tensor expected = torch::tensor({0.45, 0.45, 0.625, 0.8, 0.8}, kF64);
  EXPECT_TRUE(m.allclose(expected)) << m;
  const HeadInput in{at::zeros({2, 3}, kF64), torch::tensor({0L, 1L}, at::kLong),
                     torch::tensor({10.0, 110.0}, kF64)};
  const double g = (1.0 / 10 + 10.0 / 12100 + 1.0 / 110 + 110.0 / 12100) / 2;
  EXPECT_NEAR(head.regularizer(in).item<double>(), 35 * g, 1e-12);
}

TEST(MarginHeadTest, InvalidParametersAreConfigErrors) {
  EXPECT_THROW(CombinedMarginHeadImpl(0.0, 1, 0.5, 0), ConfigError);
  EXPECT_THROW(CombinedMarginHeadImpl(-64, 1, 0.5, 0), ConfigError);
  EXPECT_THROW(CombinedMarginHeadImpl(64, 0.5, 0.5, 0), ConfigError);
  EXPECT_THROW(CombinedMarginHeadImpl(64, 1, 4.0, 0), ConfigError);
  EXPECT_THROW(CombinedMarginHeadImpl(64, 1, 0.5, 1.0), ConfigError);
  EXPECT_THROW(CombinedMarginHeadImpl(64, 1, 0.5, 0, 1.0), ConfigError);
  EXPECT_THROW(SubCenterArcFaceHeadImpl(64, 0.5, 0), ConfigError);
  EXPECT_THROW(CurricularFaceHeadImpl(64, 0.5, 0.0), ConfigError);
  EXPECT_THROW(AdaFaceHeadImpl(64, 0.4, -1.0), ConfigError);
  EXPECT_THROW(MagFaceHeadImpl(MagFaceOptions().l_a(120)), ConfigError);
  try {
    SubCenterArcFaceHeadImpl(64, 0.5, 0);
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "sub-center ArcFace: K = 0: must be >= 1");
  }
}

TEST(MarginHeadTest, FactoryBuildsTheSpecifiedHead) {
  auto cosface = make_margin_head(MarginHeadSpec().margins({1.0, 0.0, 0.4}));
  EXPECT_NE(dynamic_cast<CombinedMarginHeadImpl*>(cosface.get()), nullptr);
  EXPECT_NEAR(head_loss(*cosface, four_centres()), 49.025626, 1e-5);
  for (const char* name : {"softmax", "curricular", "subcenter", "adaface", "magface"}) {
    EXPECT_NE(make_margin_head(MarginHeadSpec().kind(name)), nullptr) << name;
  }
  EXPECT_EQ(
      make_margin_head(MarginHeadSpec().kind("subcenter").subcenter_k(4))->centres_per_class(), 4);
  EXPECT_THROW(make_margin_head(MarginHeadSpec().margins({0.5, 0.5, 0.0})), ConfigError);
  EXPECT_THROW(make_margin_head(MarginHeadSpec().kind("arcface2")), ConfigError);
}

}  // namespace
}  // namespace facetrain::losses
