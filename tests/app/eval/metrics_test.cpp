// Verification and identification metrics: closed forms, ties, and agreement with an independent
// numpy implementation of insightface's protocol (tests/app/eval/python_verification.py).

#include <gtest/gtest.h>
#include <torch/nn.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "app/eval/identification.h"
#include "app/eval/report.h"
#include "app/eval/verification.h"
#include "framework/core/error.h"
#include "tests/support/process.h"

namespace facetrain::eval {
namespace {

namespace fs = std::filesystem;

// Pairs of 2-D unit vectors at squared distances `d` (cos θ = 1 − d/2), pair i = rows 2i, 2i+1.
at::Tensor pairs_at(const std::vector<double>& d) {
  at::Tensor e = torch::zeros({2 * static_cast<std::int64_t>(d.size()), 2}, torch::kDouble);
  for (std::size_t i = 0; i < d.size(); ++i) {
    const double c = 1 - d[i] / 2;
    e[2 * i][0] = 3.0;  // norm 3: normalisation must not matter
    e[2 * i + 1][0] = c;
    e[2 * i + 1][1] = std::sqrt(std::max(0.0, 1 - c * c));
  }
  return e;
}

TEST(Verification, PerfectSeparation) {
  // Same pairs identical (distance 0), different pairs orthogonal (distance 2).
  std::vector<double> d;
  std::vector<std::int64_t> same;
  for (int i = 0; i < 40; ++i) {
    d.push_back(i % 2 == 0 ? 0.0 : 2.0);
    same.push_back(i % 2 == 0);
  }
  const auto r = verify_pairs(pairs_at(d), torch::tensor(same));
  EXPECT_EQ(r.num_pairs, 40);
  EXPECT_EQ(r.num_same, 20);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
  EXPECT_DOUBLE_EQ(r.auc, 1.0);
  EXPECT_DOUBLE_EQ(r.eer, 0.0);
  EXPECT_DOUBLE_EQ(r.val_at_far_1e3, 1.0);
  EXPECT_DOUBLE_EQ(r.far_at_val, 0.0);
  ASSERT_EQ(r.tar_at_far.size(), 1u);  // 20 negatives support FAR = 1e-1 only
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].second, 1.0);
  // Mean norm of rows of norm 3 and 1.
  EXPECT_NEAR(r.xnorm, 2.0, 1e-12);
  // Threshold 0.01 is the first grid value that accepts distance 0 and rejects 2.
  EXPECT_NEAR(r.best_threshold, 0.01, 1e-12);
}

TEST(Verification, KnownRocByHand) {
  // Sorted distances alternate same / different: s d s d s d s d s d.
  std::vector<double> d;
  std::vector<std::int64_t> same;
  for (int i = 0; i < 10; ++i) {
    d.push_back(0.1 * (i + 1));
    same.push_back(i % 2 == 0);
  }
  const auto r = verify_pairs(pairs_at(d), torch::tensor(same));
  const std::vector<double> fpr{0, 0, .2, .2, .4, .4, .6, .6, .8, .8, 1};
  const std::vector<double> tpr{0, .2, .2, .4, .4, .6, .6, .8, .8, 1, 1};
  ASSERT_EQ(r.roc.fpr.size(), fpr.size());
  for (std::size_t i = 0; i < fpr.size(); ++i) {
    EXPECT_NEAR(r.roc.fpr[i], fpr[i], 1e-12) << i;
    EXPECT_NEAR(r.roc.tpr[i], tpr[i], 1e-12) << i;
  }
  EXPECT_EQ(r.roc.thresholds[0], -1.0);
  EXPECT_NEAR(r.roc.thresholds[3], 0.3, 1e-9);
  EXPECT_NEAR(r.auc, 0.2 * (0.2 + 0.4 + 0.6 + 0.8 + 1.0), 1e-12);
  EXPECT_NEAR(r.eer, 0.4, 1e-12);     // FPR = 1 − TPR = 0.4 at the point (0.4, 0.6)
  EXPECT_TRUE(r.tar_at_far.empty());  // 5 negatives: FAR 1e-1 means half a pair
}

TEST(Verification, TiesEnterTogether) {
  // Every pair at the same distance: the ROC is the diagonal in one step.
  std::vector<double> d(20, 1.0);
  std::vector<std::int64_t> same;
  for (int i = 0; i < 20; ++i) same.push_back(i % 4 == 0);  // 5 same, 15 different
  const auto r = verify_pairs(pairs_at(d), torch::tensor(same));
  ASSERT_EQ(r.roc.fpr.size(), 2u);
  EXPECT_DOUBLE_EQ(r.roc.fpr[1], 1.0);
  EXPECT_DOUBLE_EQ(r.roc.tpr[1], 1.0);
  EXPECT_NEAR(r.auc, 0.5, 1e-12);
  EXPECT_NEAR(r.eer, 0.5, 1e-12);
  // Rejecting everything is right for the 15 different pairs.
  EXPECT_NEAR(r.accuracy, 0.75, 1e-12);

  // roc_curve groups exactly equal scores; a half tie gives one diagonal segment.
  const auto roc = roc_curve(torch::tensor({0.5, 0.5, 0.7, 0.2}, torch::kDouble),
                             torch::tensor({1, 0, 0, 1}, torch::kByte));
  EXPECT_EQ(roc.fpr, (std::vector<double>{0, 0, 0.5, 1}));
  EXPECT_EQ(roc.tpr, (std::vector<double>{0, 0.5, 1, 1}));
  EXPECT_EQ(roc.thresholds, (std::vector<double>{-1, 0.2, 0.5, 0.7}));
}

TEST(Verification, OneClassAndBadShapes) {
  std::vector<double> d(10, 0.5);
  const auto r = verify_pairs(pairs_at(d), torch::ones({10}, torch::kByte));
  EXPECT_TRUE(std::isnan(r.auc));
  EXPECT_TRUE(std::isnan(r.eer));
  EXPECT_TRUE(r.tar_at_far.empty());
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_NE(report_json({"mbf", "w.pt", 2, 8, 1, {{"one", "one.h5", "", r}}, std::nullopt})
                .find("\"auc\": null"),
            std::string::npos);
  EXPECT_THROW(verify_pairs(torch::randn({9, 4}), torch::ones({4})), Error);
  EXPECT_THROW(verify_pairs(torch::randn({8, 4}), torch::ones({3})), Error);
  EXPECT_THROW(verify_pairs(torch::randn({8, 4}), torch::ones({4})), Error);  // 4 < 10 folds
}

TEST(Verification, AgreesWithNumpyInsightfaceProtocol) {
  const fs::path dir =
      fs::temp_directory_path() / ("facetrain_eval_py_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const std::int64_t n : {6000L, 1237L}) {
    torch::manual_seed(n);
    const std::int64_t dim = 16;
    // Same pairs share a direction plus noise; norms vary like real embeddings.
    at::Tensor base = torch::randn({n, dim}, torch::kDouble);
    at::Tensor same = torch::rand({n}, torch::kDouble).lt(0.5).to(torch::kByte);
    at::Tensor other = torch::randn({n, dim}, torch::kDouble);
    at::Tensor second = torch::where(same.unsqueeze(1).to(torch::kBool),
                                     base + 0.9 * torch::randn({n, dim}, torch::kDouble), other);
    at::Tensor emb = torch::stack({base, second}, 1).reshape({2 * n, dim}) *
                     (1 + torch::rand({2 * n, 1}, torch::kDouble) * 20);
    emb = emb.contiguous();
    std::ofstream(dir / "emb.f64", std::ios::binary)
        .write(static_cast<const char*>(emb.data_ptr()), emb.numel() * 8);
    std::ofstream(dir / "same.u8", std::ios::binary)
        .write(static_cast<const char*>(same.data_ptr()), n);
    const auto py = test::run_python("app/eval/python_verification.py protocol " +
                                     (dir / "emb.f64").string() + " " + (dir / "same.u8").string() +
                                     " " + std::to_string(n) + " " + std::to_string(dim));
    ASSERT_EQ(py.code, 0) << py.out;
    std::map<std::string, double> want;
    std::istringstream lines(py.out);
    std::string key;
    double value;
    while (lines >> key >> value) want[key] = value;
    ASSERT_EQ(want.count("auc"), 1u) << py.out;

    const auto r = verify_pairs(emb, same);
    EXPECT_NEAR(r.accuracy, want["accuracy"], 1e-9);
    EXPECT_NEAR(r.accuracy_std, want["accuracy_std"], 1e-9);
    EXPECT_NEAR(r.best_threshold, want["best_threshold"], 1e-9);
    EXPECT_NEAR(r.val_at_far_1e3, want["val"], 1e-9);
    EXPECT_NEAR(r.val_std, want["val_std"], 1e-9);
    EXPECT_NEAR(r.far_at_val, want["far"], 1e-9);
    EXPECT_NEAR(r.auc, want["auc"], 1e-9);
    EXPECT_NEAR(r.eer, want["eer"], 1e-9);
    EXPECT_NEAR(r.xnorm, want["xnorm"], 1e-9);
    EXPECT_EQ(static_cast<double>(r.roc.fpr.size()), want["roc_points"]);
    std::size_t decades = 0;
    for (const auto& [far, tar] : r.tar_at_far) {
      ++decades;
      EXPECT_NEAR(tar, want["tar_" + std::to_string(decades)], 1e-12) << far;
    }
    EXPECT_EQ(want.count("tar_" + std::to_string(decades)), 1u);
    EXPECT_EQ(want.count("tar_" + std::to_string(decades + 1)), 0u);
    // An informative score: well above chance, and VAL found a threshold.
    EXPECT_GT(r.accuracy, 0.8);
    EXPECT_GT(r.val_at_far_1e3, 0.0);
  }
  fs::remove_all(dir);
}

TEST(Identification, ClosedForms) {
  // Gallery: the four basis directions of R^4, labels 10..13.
  const at::Tensor gallery = torch::eye(4, torch::kDouble) * 2;
  const at::Tensor glabels = torch::tensor({10L, 11L, 12L, 13L});
  // Probe 0 is e0 (label 10): right at rank 1. Probe 1 is closest to e0 then e1 but has label 11:
  // rank 2, AP 1/2. Probe 2 has label 99, absent from the gallery: left out.
  const at::Tensor probe = torch::tensor(
      {{1.0, 0.0, 0.0, 0.0}, {0.9, 0.5, 0.1, 0.0}, {0.0, 0.0, 1.0, 0.0}}, torch::kDouble);
  const at::Tensor plabels = torch::tensor({10L, 11L, 99L});
  for (const std::int64_t chunk : {1L, 2L, 1024L}) {
    const auto r = identify(gallery, glabels, probe, plabels, chunk);
    EXPECT_EQ(r.num_gallery, 4);
    EXPECT_EQ(r.num_probes, 2);
    EXPECT_EQ(r.num_probes_without_match, 1);
    EXPECT_DOUBLE_EQ(r.rank1, 0.5);
    EXPECT_DOUBLE_EQ(r.rank5, 1.0);
    EXPECT_DOUBLE_EQ(r.mean_average_precision, (1.0 + 0.5) / 2);
  }
  // Two gallery items per identity ranked 1st and 3rd: AP = (1/1 + 2/3) / 2.
  const at::Tensor g2 =
      torch::tensor({{1.0, 0.0}, {0.8, 0.6}, {0.6, 0.8}, {0.0, 1.0}}, torch::kDouble);
  const auto r2 = identify(g2, torch::tensor({5L, 6L, 5L, 6L}), torch::tensor({{1.0, 0.0}}),
                           torch::tensor({5L}));
  EXPECT_NEAR(r2.mean_average_precision, (1.0 + 2.0 / 3) / 2, 1e-12);
  EXPECT_THROW(identify(g2, torch::tensor({5L}), g2, torch::tensor({5L, 6L, 5L, 6L})), Error);
}

TEST(Report, JsonAndRocCsv) {
  RocCurve roc{{0, 0.5, 1}, {0, 1, 1}, {-1, 0.25, 0.5}};
  EXPECT_EQ(roc_csv(roc), "threshold,fpr,tpr\n-1,0,0\n0.25,0.5,1\n0.5,1,1\n");
  EvalReport report;
  report.network = "mbf";
  VerificationResult v;
  v.accuracy = 0.75;
  v.tar_at_far = {{0.1, 0.5}};
  report.verification.push_back({"lfw", "lfw.h5", "roc/lfw.roc.csv", v});
  report.identification = IdentificationEntry{"g", "p", {}};
  const std::string json = report_json(report);
  for (const char* key :
       {"\"format\": \"facetrain-eval-report\"", "\"accuracy\": 0.75",
        "\"roc_csv\": \"roc/lfw.roc.csv\"", "\"far\": 0.1", "\"rank1\": 0.0", "\"map\": 0.0"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << "\n" << json;
  }
}

}  // namespace
}  // namespace facetrain::eval
