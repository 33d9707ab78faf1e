// The demo in small, end to end through the facetrain binary: synthetic faces, mbf trained with
// ArcFace and Partial FC on 2 MPI ranks, evaluation on held-out identities (pairs, and an
// IJB-style benchmark of unaligned crops) against the untrained model, ONNX and TorchScript export
// with parity checks, and the exported ONNX model's embeddings in onnxruntime against `facetrain
// embed` of the trained checkpoint.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "models/backbone.h"
#include "models/state_dict.h"
#include "tests/support/process.h"

namespace facetrain {
namespace {

namespace fs = std::filesystem;

std::string facetrain(const std::string& args) {
  return test::env("FACETRAIN_BIN") + " " + args;
}

double accuracy_in(const fs::path& report) {
  return nlohmann::json::parse(std::ifstream(report))
      .at("verification")
      .at(0)
      .at("accuracy")
      .get<double>();
}

// An IJB figure of a report: "auc", or "rank1" of the galleries' mean.
double ijb_figure(const fs::path& report, const std::string& name) {
  const auto ijb = nlohmann::json::parse(std::ifstream(report)).at("ijb");
  if (name == "auc") return ijb.at("auc").get<double>();
  return ijb.at("identification").back().at("rank").at(name).get<double>();
}

TEST(EndToEnd, TrainEvaluateExport) {
  const fs::path work = fs::absolute("e2e_work");
  fs::remove_all(work);
  fs::create_directories(work);
  auto r = test::run(facetrain(fmt::format(
      "data synth --identities 32 --per-identity 8 --out {0}/train --pairs 150 --pairs-out "
      "{0}/heldout.h5 --heldout-identities 16 --seed 11",
      work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  // An IJB-C-style benchmark of other unseen identities: unaligned crops, templates of media.
  r = test::run(facetrain(
      fmt::format("data synth-ijb --out {0}/ijb --identities 16 --templates 3 --media 2 --images 2 "
                  "--impostors 10 --seed 11",
                  work.string())));
  ASSERT_EQ(r.code, 0) << r.out;

  // The recipe of the demo, shortened to 64 steps (8 images per rank, 4 epochs of 256 images),
  // with CosFace's additive margin, which leaves the untrained model's neighbourhood sooner than
  // ArcFace's m = 0.5 in so few steps.
  const fs::path recipe =
      fs::path(test::env("FACETRAIN_SOURCE_DIR")) / "experiments" / "synthetic_mbf.toml";
  const std::string sets = fmt::format(
      "--set data.path={0}/train --set train.batch_size=8 --set train.num_epoch=4 "
      "--set loss.margin_list=[1.0,0.0,0.35] --set optim.warmup_epoch=0 --set train.frequent=8",
      work.string());
  r = test::run(test::env("FACETRAIN_MPIRUN") + " -np 2 " +
                facetrain(fmt::format("train --config {} --output {}/run {}", recipe.string(),
                                      work.string(), sets)));
  ASSERT_EQ(r.code, 0) << r.out;

  // The untrained model: the trainer's initialisation (train.seed of the recipe).
  at::manual_seed(2048);
  auto untrained = models::make_backbone("mbf", models::BackboneOptions().embedding_size(128));
  models::write_state_dict(work / "untrained.pt", models::state_dict(*untrained));
  r = test::run(facetrain(fmt::format(
      "eval --weights {0}/untrained.pt --network mbf --bench {0}/heldout.h5 --ijb {0}/ijb --out "
      "{0}/untrained.json",
      work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run(test::env("FACETRAIN_MPIRUN") + " -np 2 " +
                facetrain(fmt::format("eval --checkpoint {0}/run --bench {0}/heldout.h5 --ijb "
                                      "{0}/ijb --out {0}/trained.json",
                                      work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  const double before = accuracy_in(work / "untrained.json");
  const double after = accuracy_in(work / "trained.json");
  std::cout << "held-out accuracy: untrained " << before << ", trained " << after << "\n";
  EXPECT_GT(after, before + 0.03);
  // And on the IJB-style set: the template-level ROC and 1:N identification improve.
  const double auc_before = ijb_figure(work / "untrained.json", "auc");
  const double auc_after = ijb_figure(work / "trained.json", "auc");
  const double rank1_before = ijb_figure(work / "untrained.json", "rank1");
  const double rank1_after = ijb_figure(work / "trained.json", "rank1");
  std::cout << "IJB-style AUC: untrained " << auc_before << ", trained " << auc_after
            << "; 1:N rank-1 (mean of G1, G2): " << rank1_before << " -> " << rank1_after << "\n";
  EXPECT_GT(auc_after, auc_before + 0.02);
  EXPECT_GT(rank1_after, rank1_before);

  // Export with parity checks against the trained LibTorch model (exit 1 when they fail).
  for (const char* format : {"onnx", "torchscript"}) {
    r =
        test::run(facetrain(fmt::format("export --checkpoint {0}/run --format {1} --out "
                                        "{0}/model.{1} --verify",
                                        work.string(), format)));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("min cosine 1.0000"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(work / fmt::format("model.{}", format)));
  }
  // The ONNX model in onnxruntime on the held-out faces against the checkpoint's embeddings.
  r = test::run(facetrain(fmt::format(
      "embed --checkpoint {0}/run --input {0}/heldout.h5 --out {0}/embeddings.h5", work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  r =
      test::run_python(fmt::format("e2e/python_onnx_parity.py {0}/model.onnx {0}/heldout.h5 "
                                   "{0}/embeddings.h5",
                                   work.string()));
  ASSERT_EQ(r.code, 0) << r.out;
  std::cout << r.out;
}

// A Vision Transformer trains on the CPU: experiments/synthetic_vit_t.toml (AdamW, drop path,
// token masking) on 2 ranks, held-out accuracy against the untrained model's.
TEST(EndToEnd, VisionTransformerTrainsOnTheCpu) {
  const fs::path work = fs::absolute("e2e_vit_work");
  fs::remove_all(work);
  fs::create_directories(work);
  auto r = test::run(facetrain(fmt::format(
      "data synth --identities 32 --per-identity 8 --out {0}/train --pairs 150 --pairs-out "
      "{0}/heldout.h5 --heldout-identities 16 --seed 11",
      work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  const fs::path recipe =
      fs::path(test::env("FACETRAIN_SOURCE_DIR")) / "experiments" / "synthetic_vit_t.toml";
  r = test::run(test::env("FACETRAIN_MPIRUN") + " -np 2 " +
                facetrain(fmt::format("train --config {} --output {}/run --set data.path={}/train",
                                      recipe.string(), work.string(), work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  at::manual_seed(2048);  // the recipe's train.seed: the trainer's initialisation
  auto untrained = models::make_backbone("vit_t", models::BackboneOptions().embedding_size(128));
  models::write_state_dict(work / "untrained.pt", models::state_dict(*untrained));
  r =
      test::run(facetrain(fmt::format("eval --weights {0}/untrained.pt --network vit_t --bench "
                                      "{0}/heldout.h5 --out {0}/untrained.json",
                                      work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run(facetrain(fmt::format(
      "eval --checkpoint {0}/run --bench {0}/heldout.h5 --out {0}/trained.json", work.string())));
  ASSERT_EQ(r.code, 0) << r.out;
  const double before = accuracy_in(work / "untrained.json");
  const double after = accuracy_in(work / "trained.json");
  std::cout << "vit_t held-out accuracy: untrained " << before << ", trained " << after << "\n";
  EXPECT_GT(after, before + 0.1);
}

}  // namespace
}  // namespace facetrain
