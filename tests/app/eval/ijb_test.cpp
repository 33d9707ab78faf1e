// IJB 1:1 arithmetic against hand-computed values: template aggregation, pair scores,
// scikit-learn's ROC (with drop_intermediate) and eval_ijbc.py's TAR@FAR.
#include "app/eval/ijb.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "framework/core/error.h"

namespace facetrain::eval {
namespace {

TEST(IjbTest, TemplatesAverageEachMediaThenSumAndNormalise) {
  // Template 7: media 10 holds images a and b, media 11 image c; template 3: image d alone.
  const at::Tensor f =
      at::tensor({1.0, 0.0, 3.0, 2.0, 0.0, 1.0, 5.0, 5.0}, at::kDouble).reshape({4, 2});
  const TemplateFeatures t = template_features(f, {7, 7, 7, 3}, {10, 10, 11, 20});
  ASSERT_EQ(t.ids, (std::vector<std::int64_t>{3, 7}));
  // (a + b)/2 + c = (2, 1) + (0, 1) = (2, 2) → (1, 1)/√2; d = (5, 5) → (1, 1)/√2.
  const double r = 1 / std::sqrt(2.0);
  EXPECT_TRUE(at::allclose(t.features, at::tensor({r, r, r, r}, at::kDouble).reshape({2, 2})));
  // Without the media average it would be (4, 3)/5: the averaging is what is tested.
  const at::Tensor scores = pair_scores(t, {7, 7}, {3, 7});
  EXPECT_NEAR(scores[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(scores[1].item<double>(), 1.0, 1e-12);
  EXPECT_THROW(pair_scores(t, {7}, {4}), DataError);
}

TEST(IjbTest, RocIsScikitLearnsWithIntermediatePointsDropped) {
  // Descending: 0.9(+) 0.8(+) 0.8(−) 0.7(+) 0.4(−) 0.3(−). Per distinct score tps 1 2 3 3 3,
  // fps 0 1 1 2 3; the point at 0.4 lies on the line from 0.7 to 0.3 and is dropped.
  const Roc roc = sklearn_roc({0.4, 0.8, 0.9, 0.3, 0.7, 0.8}, {0, 0, 1, 0, 1, 1});
  EXPECT_EQ(roc.fpr, (std::vector<double>{0, 0, 1.0 / 3, 1.0 / 3, 1}));
  EXPECT_EQ(roc.tpr, (std::vector<double>{0, 1.0 / 3, 2.0 / 3, 1, 1}));
  EXPECT_TRUE(std::isinf(roc.thresholds[0]));
  EXPECT_EQ(std::vector<double>(roc.thresholds.begin() + 1, roc.thresholds.end()),
            (std::vector<double>{0.9, 0.8, 0.7, 0.3}));
  // FAR 0.3: the closest points are at 1/3 (the first of them has TPR 2/3); the conservative
  // TAR takes only points at FPR <= 0.3, i.e. 1/3 at FPR 0.
  const auto tar = tar_at_far(roc, {0.3, 1e-4, 1.0});
  EXPECT_DOUBLE_EQ(tar[0].tar_closest, 2.0 / 3);
  EXPECT_DOUBLE_EQ(tar[0].tar_at_most, 1.0 / 3);
  EXPECT_DOUBLE_EQ(tar[1].tar_closest, 0.0);  // the first point at FPR 0 is (0, 0)
  EXPECT_DOUBLE_EQ(tar[1].tar_at_most, 1.0 / 3);
  EXPECT_DOUBLE_EQ(tar[2].tar_closest, 1.0);
  EXPECT_THROW(sklearn_roc({0.1, 0.2}, {1, 1}), DataError);
}

}  // namespace
}  // namespace facetrain::eval
