// `facetrain data pack --from bin` against Python's pickle.load, malformed packs, and
// `facetrain eval` end to end: alone, against the library, and at 2 MPI ranks.

#include <gtest/gtest.h>
#include <torch/nn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "app/eval/evaluate.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/verification/bin_pack.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"
#include "models/embedding.h"
#include "models/state_dict.h"
#include "tests/support/process.h"

namespace facetrain::eval {
namespace {

namespace fs = std::filesystem;
using test::env;
using test::Exec;
using test::run;
using test::run_python;

class EvalCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("facetrain_eval_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    bin_ = fs::path(env("FACETRAIN_SOURCE_DIR")) / ".." / "shared" / "data" / "small_lfw.bin";
    torch::manual_seed(11);
    net_ = models::make_backbone("mbf", models::BackboneOptions().embedding_size(32));
    models::write_state_dict(dir_ / "mbf.pt", models::state_dict(*net_));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string facetrain(const std::string& args) {
    return env("FACETRAIN_BIN") + " " + args;
  }
  static std::string eval_args() {
    return "eval --weights " + (dir_ / "mbf.pt").string() + " --network mbf --batch-size 6 ";
  }
  static fs::path dir_, bin_;
  static std::shared_ptr<models::BackboneImpl> net_;
};
fs::path EvalCommand::dir_, EvalCommand::bin_;
std::shared_ptr<models::BackboneImpl> EvalCommand::net_;

// The value of "key": number in a JSON report (first occurrence after `after`).
double json_number(const std::string& json, const std::string& key, std::size_t after = 0) {
  const std::regex re("\"" + key + "\": (-?[0-9.eE+-]+)");
  std::smatch m;
  const std::string tail = json.substr(after);
  if (!std::regex_search(tail, m, re)) ADD_FAILURE() << "no " << key << " in\n" << json;
  return m.empty() ? -1 : std::stod(m[1]);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_F(EvalCommand, SmallLfwConvertsByteForByte) {
  const fs::path out = dir_ / "small_lfw.h5";
  const Exec r =
      run(facetrain("data pack --from bin --input " + bin_.string() + " --out " + out.string()));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("packed 10 pairs"), std::string::npos) << r.out;
  const Exec py =
      run_python("app/eval/python_verification.py compare " + bin_.string() + " " + out.string());
  EXPECT_EQ(py.code, 0) << py.out;
  EXPECT_NE(py.out.find("pairs 10 images 20 identical"), std::string::npos) << py.out;
  const data::VerificationSet set(out);
  EXPECT_EQ(set.num_pairs(), 10);
  EXPECT_TRUE(data::is_jpeg(set.image(19)));
}

TEST_F(EvalCommand, OtherPickleFormsAndMalformedPacks) {
  const Exec made =
      run_python("app/eval/python_verification.py packs " + dir_.string() + " " + bin_.string());
  ASSERT_EQ(made.code, 0) << made.out;
  // Python 3 protocol 2 (bytes through _codecs.encode) and protocol 5 with a numpy bool array.
  const auto want = data::read_bin_pack(bin_);
  for (const char* name : {"plain_p2.bin", "plain_p5.bin"}) {
    const auto got = data::read_bin_pack(dir_ / name);
    EXPECT_EQ(got.images, want.images) << name;
    EXPECT_EQ(got.issame, (std::vector<std::uint8_t>{1, 0, 1, 0, 1, 0, 1, 0, 1, 0})) << name;
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"evil.bin", "global 'posix system' is not allowed"},
      {"truncated.bin", "(truncated)"},
      {"wrong_count.bin", "3 images for 2 issame flags, expected 4"},
      {"not_a_pair.bin", "the pickle holds a dict of 2 items, expected a pair"},
      {"memo_bomb.bin", "images are repeated by reference"},
      {"deep.bin", "a pickle bomb"},
  };
  for (const auto& [name, message] : bad) {
    const fs::path out = dir_ / (name + ".h5");
    const Exec r = run(facetrain("data pack --from bin --input " + (dir_ / name).string() +
                                 " --out " + out.string()));
    EXPECT_EQ(r.code, 1) << name << ": " << r.out;
    EXPECT_NE(r.out.find((dir_ / name).string() + ": "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out)) << name;
  }
  EXPECT_EQ(run(facetrain("data pack --from pickle --input x --out y")).code, 2);
}

TEST_F(EvalCommand, EvaluatesWhatTheLibraryComputes) {
  const fs::path set = dir_ / "lfw.h5";
  ASSERT_EQ(
      run(facetrain("data pack --from bin --input " + bin_.string() + " --out " + set.string()))
          .code,
      0);
  const fs::path report = dir_ / "report.json";
  const Exec r = run(facetrain(eval_args() + "--bench " + set.string() + " --out " +
                               report.string() + " --roc-dir " + (dir_ / "roc").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lfw ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("XNorm"), std::string::npos) << r.out;

  // The library: flip-summed embeddings of the decoded images, then verify_pairs.
  const data::VerificationSet pairs(set);
  data::JpegCodec codec;
  std::vector<at::Tensor> images;
  for (int i = 0; i < 20; ++i) images.push_back(codec.decode(pairs.image(i), "img"));
  const at::Tensor want = models::embed_images(*net_, torch::stack(images), true, false);
  const at::Tensor got = embed_verification_set(*net_, pairs, 6, nullptr);
  EXPECT_TRUE(got.allclose(want, 1e-4, 1e-5));
  const auto lib = evaluate_verification_set(*net_, set, 6, nullptr);

  const std::string json = read_text(report);
  EXPECT_NE(json.find("\"format\": \"facetrain-eval-report\""), std::string::npos);
  EXPECT_EQ(json_number(json, "num_pairs"), 10);
  EXPECT_NEAR(json_number(json, "accuracy"), lib.accuracy, 1e-12);
  EXPECT_NEAR(json_number(json, "xnorm"), lib.xnorm, 1e-5 * lib.xnorm);
  EXPECT_NE(json.find("\"auc\": null"), std::string::npos);  // small_lfw holds only same pairs
  const std::string csv = read_text(dir_ / "roc" / "lfw.roc.csv");
  EXPECT_EQ(csv.rfind("threshold,fpr,tpr\n-1,0,0\n", 0), 0u) << csv;

  // The ROC plot script draws the CSV.
  const Exec plot =
      run(env("FACETRAIN_PYTHON") + " " + env("FACETRAIN_SOURCE_DIR") + "/scripts/plot_roc.py " +
          (dir_ / "roc" / "lfw.roc.csv").string() + " --out " + (dir_ / "roc.png").string());
  EXPECT_EQ(plot.code, 0) << plot.out;
  EXPECT_GT(fs::file_size(dir_ / "roc.png"), 1000u);
}

TEST_F(EvalCommand, TwoRanksReportTheSameNumbers) {
  // A set with both kinds of pairs (synthetic faces), and identification on the dataset itself.
  const Exec synth = run(facetrain("data synth --identities 4 --per-identity 3 --out " +
                                   (dir_ / "synth").string() + " --pairs 30 --pairs-out " +
                                   (dir_ / "synth_pairs.h5").string() + " --seed 5"));
  ASSERT_EQ(synth.code, 0) << synth.out;
  const std::string args = eval_args() + "--bench " + (dir_ / "synth_pairs.h5").string() +
                           " --gallery " + (dir_ / "synth").string() + " --probe " +
                           (dir_ / "synth").string() + " --out ";
  const Exec one = run(facetrain(args + (dir_ / "np1.json").string()));
  ASSERT_EQ(one.code, 0) << one.out;
  const Exec two =
      run(env("FACETRAIN_MPIRUN") + " -np 2 " + facetrain(args + (dir_ / "np2.json").string()));
  ASSERT_EQ(two.code, 0) << two.out;
  const std::string a = read_text(dir_ / "np1.json");
  const std::string b = read_text(dir_ / "np2.json");
  EXPECT_EQ(json_number(a, "world_size"), 1);
  EXPECT_EQ(json_number(b, "world_size"), 2);
  for (const char* key :
       {"num_pairs", "num_same", "accuracy", "accuracy_std", "best_threshold", "val_at_far_1e3",
        "far_at_val", "auc", "eer", "roc_points", "rank1", "rank5", "map"}) {
    EXPECT_NEAR(json_number(a, key), json_number(b, key), 1e-9) << key;
  }
  EXPECT_NEAR(json_number(a, "xnorm"), json_number(b, "xnorm"), 1e-5 * json_number(a, "xnorm"));
  // Each image is its own best gallery match.
  EXPECT_DOUBLE_EQ(json_number(a, "rank1"), 1.0);
}

TEST_F(EvalCommand, IjbAgreesWithTheTestsOwnNumpyProtocolAtOneAndTwoRanks) {
  // A synthetic IJB-C: unaligned crops with landmarks, media within templates, 1:1 and 1:N.
  const fs::path ijb = dir_ / "ijb";
  const Exec synth = run(facetrain("data synth-ijb --out " + ijb.string() +
                                   " --identities 10 --templates 3 --media 2 --images 2 "
                                   "--photo-size 128 --seed 3"));
  ASSERT_EQ(synth.code, 0) << synth.out;
  const std::string args = eval_args() + "--ijb " + ijb.string() + " --out ";
  const Exec one = run(facetrain(args + (dir_ / "ijb1.json").string() + " --ijb-features " +
                                 (dir_ / "ijb_features.h5").string() + " --roc-dir " +
                                 (dir_ / "ijb_roc").string()));
  ASSERT_EQ(one.code, 0) << one.out;
  EXPECT_NE(one.out.find("TAR@FAR=1e-04"), std::string::npos) << one.out;
  EXPECT_TRUE(fs::exists(dir_ / "ijb_roc" / "IJBC.roc.csv"));
  // The test's own numpy implementation of the protocol, from the same features.
  const Exec numpy =
      run_python("app/eval/python_ijb.py " + ijb.string() + " IJBC " +
                 (dir_ / "ijb_features.h5").string() + " " + (dir_ / "ijb1.json").string());
  EXPECT_EQ(numpy.code, 0) << numpy.out;
  std::cout << numpy.out;
  // Two ranks split the images and report the same figures.
  const Exec two =
      run(env("FACETRAIN_MPIRUN") + " -np 2 " + facetrain(args + (dir_ / "ijb2.json").string()));
  ASSERT_EQ(two.code, 0) << two.out;
  const std::string a = read_text(dir_ / "ijb1.json"), b = read_text(dir_ / "ijb2.json");
  const std::size_t ia = a.find("\"ijb\""), ib = b.find("\"ijb\"");
  for (const char* key : {"images", "templates", "pairs", "genuine_pairs", "tar", "tar_at_most_far",
                          "auc", "roc_points", "rank1", "rank5", "tpir"}) {
    EXPECT_NEAR(json_number(a, key, ia), json_number(b, key, ib), 1e-9) << key;
  }
  // A bad meta file fails the command with its file and line.
  std::ofstream(ijb / "meta" / "ijbc_template_pair_label.txt", std::ios::app) << "1 2\n";
  const Exec bad = run(facetrain(args + (dir_ / "ijb3.json").string()));
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("ijbc_template_pair_label.txt:"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find(": 2 fields, expected template-id template-id label"), std::string::npos)
      << bad.out;
  EXPECT_FALSE(fs::exists(dir_ / "ijb3.json"));
}

TEST_F(EvalCommand, UsageErrors) {
  EXPECT_EQ(run(facetrain(eval_args())).code, 2);  // nothing to evaluate
  EXPECT_EQ(run(facetrain(eval_args() + "--gallery " + dir_.string())).code, 2);
  const Exec missing = run(facetrain("eval --network mbf --bench " + bin_.string()));
  EXPECT_EQ(missing.code, 2) << missing.out;
  // A .bin is not a verification set: the error names the file.
  const Exec raw = run(facetrain(eval_args() + "--bench " + bin_.string()));
  EXPECT_EQ(raw.code, 1) << raw.out;
  EXPECT_NE(raw.out.find("small_lfw.bin"), std::string::npos) << raw.out;
}

}  // namespace
}  // namespace facetrain::eval
