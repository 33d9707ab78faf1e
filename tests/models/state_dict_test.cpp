// Weight files shared with Python torch: facetrain writes, Python reads and writes new weights
// under the same names, facetrain loads them into a fresh backbone and Python checks the round
// trip. Damaged and mismatched files give errors naming the file and the keys.

#include <gtest/gtest.h>
#include <torch/nn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "framework/core/error.h"
#include "models/backbone.h"
#include "models/state_dict.h"
#include "tests/support/process.h"
#include "tests/support/thrown_message.h"

namespace facetrain::models {
namespace {

namespace fs = std::filesystem;
using test::env;

int python(const std::string& args) {
  return test::run_python("models/python_state_dict.py " + args).code;
}

template <typename F>
std::string checkpoint_error(F&& f) {
  return test::thrown_message<CheckpointError>(std::forward<F>(f));
}

class StateDictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(env("FACETRAIN_PYTHON").empty()) << "FACETRAIN_PYTHON is not set";
    dir_ = fs::temp_directory_path() / ("facetrain_state_dict_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    torch::manual_seed(1);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(StateDictTest, PythonWrittenWeightsLoadAndRoundTrip) {
  for (const std::string name : {"mbf", "iresnet18"}) {
    SCOPED_TRACE(name);
    auto ours = make_backbone(name, BackboneOptions().embedding_size(64));
    write_state_dict(dir_ / "ours.pt", state_dict(*ours));
    ASSERT_EQ(python("write " + (dir_ / "ours.pt").string() + " " + dir_.string()), 0);

    auto loaded = make_backbone(name, BackboneOptions().embedding_size(64));
    load_state_dict(*loaded, read_state_dict(dir_ / "plain.pt"), "plain.pt");
    // Every tensor arrived under its name: its sum matches the one Python computed.
    std::ifstream sums(dir_ / "sums.txt");
    std::map<std::string, at::Tensor> by_name;
    for (const auto& [key, t] : state_dict(*loaded)) by_name[key] = t;
    std::string key;
    double sum = 0;
    int lines = 0;
    while (sums >> key >> sum) {
      ASSERT_TRUE(by_name.count(key)) << key;
      EXPECT_NEAR(by_name[key].to(torch::kDouble).sum().item<double>(), sum,
                  1e-9 * std::max(1.0, std::abs(sum)))
          << key;
      ++lines;
    }
    EXPECT_EQ(lines, static_cast<int>(by_name.size()));
    EXPECT_GT(lines, 50);

    // Our file of the loaded weights equals Python's, tensor by tensor.
    write_state_dict(dir_ / "again.pt", state_dict(*loaded));
    EXPECT_EQ(python("check " + (dir_ / "again.pt").string() + " " + (dir_ / "plain.pt").string()),
              0);

    // And reloading it reproduces the embeddings exactly.
    auto reloaded = make_backbone(name, BackboneOptions().embedding_size(64));
    load_state_dict(*reloaded, read_state_dict(dir_ / "again.pt"), "again.pt");
    loaded->eval();
    reloaded->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor images = torch::rand({2, 3, 112, 112}) * 2 - 1;
    const at::Tensor a = loaded->forward(images);
    const at::Tensor b = reloaded->forward(images);
    EXPECT_TRUE(a.equal(b));
    // The Python weights changed the model: it no longer computes what the original did.
    ours->eval();
    EXPECT_FALSE(ours->forward(images).allclose(a));
  }
}

TEST_F(StateDictTest, DamagedAndForeignFilesAreClearErrors) {
  auto mbf = make_backbone("mbf", BackboneOptions().embedding_size(64));
  write_state_dict(dir_ / "ours.pt", state_dict(*mbf));
  ASSERT_EQ(python("write " + (dir_ / "ours.pt").string() + " " + dir_.string()), 0);

  const std::string ordered = checkpoint_error([&] { read_state_dict(dir_ / "ordered.pt"); });
  EXPECT_NE(ordered.find("OrderedDict"), std::string::npos) << ordered;
  EXPECT_NE(ordered.find("torch.save(dict(model.state_dict()), path)"), std::string::npos);

  const std::string list = checkpoint_error([&] { read_state_dict(dir_ / "list.pt"); });
  EXPECT_NE(list.find("list.pt: expected a dict of tensors, found GenericList"), std::string::npos)
      << list;

  std::ifstream in(dir_ / "plain.pt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir_ / "truncated.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const std::string truncated = checkpoint_error([&] { read_state_dict(dir_ / "truncated.pt"); });
  EXPECT_NE(truncated.find("truncated.pt: not a readable torch.save file"), std::string::npos)
      << truncated;
  EXPECT_NE(checkpoint_error([&] {
              read_state_dict(dir_ / "nope.pt");
            }).find("nope.pt: cannot open the weights file"),
            std::string::npos);

  // Another network's weights: the keys are listed.
  auto r18 = make_backbone("iresnet18", BackboneOptions().embedding_size(64));
  const std::string foreign = checkpoint_error(
      [&] { load_state_dict(*r18, read_state_dict(dir_ / "plain.pt"), "plain.pt"); });
  EXPECT_NE(foreign.find("plain.pt: the weights do not fit the model"), std::string::npos);
  EXPECT_NE(foreign.find("missing: conv1.weight"), std::string::npos) << foreign;
  EXPECT_NE(foreign.find("unexpected: "), std::string::npos) << foreign;

  // Another embedding size: the mis-shaped keys with both shapes; the model is left unchanged.
  auto wide = make_backbone("mbf", BackboneOptions().embedding_size(128));
  const at::Tensor before = wide->named_parameters()["features.layers.2.weight"].clone();
  const std::string shapes = checkpoint_error(
      [&] { load_state_dict(*wide, read_state_dict(dir_ / "plain.pt"), "plain.pt"); });
  EXPECT_NE(shapes.find("mis-shaped: features.layers.2.weight (file [64, 512], model [128, 512])"),
            std::string::npos)
      << shapes;
  EXPECT_TRUE(wide->named_parameters()["features.layers.2.weight"].equal(before));
}

TEST_F(StateDictTest, VisionTransformerLoadsAPythonDefinitionsWeightsAndAgrees) {
  // A ViT written in Python for the test from arcface_torch's description (test's own
  // definition): its state dict loads strictly (every name and shape) and the embeddings of the
  // same images agree.
  for (const auto& [name, dim, depth] :
       {std::tuple<const char*, int, int>{"vit_t", 256, 12}, {"vit_s", 512, 12}}) {
    SCOPED_TRACE(name);
    ASSERT_EQ(test::run_python(
                  fmt::format("models/python_vit.py write {} {} {} 512", dir_.string(), dim, depth))
                  .code,
              0);
    auto ours = make_backbone(name);
    load_state_dict(*ours, read_state_dict(dir_ / "vit.pt"), "vit.pt");
    ours->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor x = read_state_dict(dir_ / "input.pt").at("x");
    const at::Tensor want = read_state_dict(dir_ / "expected.pt").at("y");
    const at::Tensor got = ours->forward(x);
    const double cosine = torch::nn::functional::cosine_similarity(got, want).min().item<double>();
    EXPECT_GE(cosine, 0.99999);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * want.abs().max().item<double>());
    std::cout << name << ": min cosine " << cosine << ", max |diff| "
              << (got - want).abs().max().item<double>() << "\n";
  }
}

}  // namespace
}  // namespace facetrain::models
