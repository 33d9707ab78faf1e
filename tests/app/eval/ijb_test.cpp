// IJB arithmetic against hand-computed values: template aggregation, pair scores,
// scikit-learn's ROC (with drop_intermediate), eval_ijbc.py's TAR@FAR and open-set 1:N.
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
  const RocCurve roc = sklearn_roc({0.4, 0.8, 0.9, 0.3, 0.7, 0.8}, {0, 0, 1, 0, 1, 1});
  EXPECT_EQ(roc.fpr, (std::vector<double>{0, 0, 1.0 / 3, 1.0 / 3, 1}));
  EXPECT_EQ(roc.tpr, (std::vector<double>{0, 1.0 / 3, 2.0 / 3, 1, 1}));
  EXPECT_TRUE(std::isinf(roc.thresholds[0]));
  EXPECT_EQ(std::vector<double>(roc.thresholds.begin() + 1, roc.thresholds.end()),
            (std::vector<double>{0.9, 0.8, 0.7, 0.3}));
  // FAR 0.3: the closest points are at FPR 1/3, TPR 2/3 and 1; eval_ijbc.py takes the last
  // (highest TPR). The conservative TAR takes only points at FPR <= 0.3, i.e. 1/3 at FPR 0.
  const auto tar = tar_at_far(roc, {0.3, 1e-4, 1.0});
  EXPECT_DOUBLE_EQ(tar[0].tar_closest, 1.0);
  EXPECT_DOUBLE_EQ(tar[0].tar_at_most, 1.0 / 3);
  EXPECT_DOUBLE_EQ(tar[1].tar_closest, 1.0 / 3);  // of (0, 0) and (0, 1/3), the later
  EXPECT_DOUBLE_EQ(tar[1].tar_at_most, 1.0 / 3);
  EXPECT_DOUBLE_EQ(tar[2].tar_closest, 1.0);
  EXPECT_THROW(sklearn_roc({0.1, 0.2}, {1, 1}), DataError);
  // A NaN score (a broken model) is an error naming the pair, not an undefined sort.
  try {
    sklearn_roc({0.1, std::nan(""), 0.3}, {1, 0, 0});
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("pair 1"), std::string::npos) << e.what();
  }
  // Trapezoids: FPR 0 → 1/3 at mean TPR (1/3 + 2/3)/2, then 1/3 → 1 at TPR 1.
  EXPECT_NEAR(roc_auc(roc), 1.0 / 3 * 0.5 + 2.0 / 3 * 1.0, 1e-12);
}

TEST(IjbTest, OpenSetIdentificationByHand) {
  // Gallery: subjects 10, 20, 30 on the unit axes of 3-D. Probes (unit rows):
  //   p0 subject 10, nearest e0 (mate at rank 1, score 0.8);
  //   p1 subject 20, nearest e2 (mate at rank 2, score 0.6);
  //   p2 subject 30, nearest e1 (mate at rank 2, score 0.6);
  //   p3, p4 subjects 40, 50 (non-mated), top scores 0.9 and √0.75 ≈ 0.87.
  const at::Tensor gallery = at::eye(3, at::kDouble);
  const at::Tensor probes = at::tensor({0.8, 0.6, 0.0,              //
                                        0.0, 0.6, 0.8,              //
                                        0.0, 0.8, 0.6,              //
                                        0.9, 0.0, std::sqrt(0.19),  //
                                        0.5, 0.0, std::sqrt(0.75)},
                                       at::kDouble)
                                .reshape({5, 3});
  const OpenSetResult r = open_set_identification(gallery, {10, 20, 30}, probes,
                                                  {10, 20, 30, 40, 50}, {1, 2}, {0.0, 0.5, 1.0});
  EXPECT_EQ(r.mated_probes, 3);
  EXPECT_EQ(r.nonmated_probes, 2);
  // Rank-1: p0 alone; rank-2: all three.
  EXPECT_DOUBLE_EQ(r.rank[0].second, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.rank[1].second, 1.0);
  // FPIR 0: threshold = the best non-mated top score 0.9; no mate scores above it.
  EXPECT_DOUBLE_EQ(r.tpir[0].threshold, 0.9);
  EXPECT_DOUBLE_EQ(r.tpir[0].tpir, 0.0);
  // FPIR 0.5: one of two non-mated may pass: the threshold is the second best, √0.75, which
  // p0's 0.8 does not exceed.
  EXPECT_DOUBLE_EQ(r.tpir[1].threshold, std::sqrt(0.75));
  EXPECT_DOUBLE_EQ(r.tpir[1].tpir, 0.0);
  // FPIR 1: no threshold; every rank-1 mate counts.
  EXPECT_TRUE(std::isinf(r.tpir[2].threshold));
  EXPECT_DOUBLE_EQ(r.tpir[2].tpir, 1.0 / 3);
  EXPECT_THROW(
      open_set_identification(gallery, {10, 10, 30}, probes, {10, 20, 30, 40, 50}, {1}, {0.1}),
      DataError);
}

}  // namespace
}  // namespace facetrain::eval
