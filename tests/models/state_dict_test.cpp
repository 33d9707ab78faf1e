// Weight files shared with Python torch: facetrain writes, Python reads and writes new weights
// under the same names, facetrain loads them into a fresh backbone and Python checks the round
// trip. Damaged and mismatched files give errors naming the file and the keys.

#include <gtest/gtest.h>
#include <sys/stat.h>
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

  // What model.state_dict() returns, an OrderedDict, is read as the plain dict.
  const auto ordered = read_state_dict(dir_ / "ordered.pt");
  const auto plain = read_state_dict(dir_ / "plain.pt");
  ASSERT_EQ(ordered.size(), plain.size());
  for (const auto& [name, t] : plain) EXPECT_TRUE(ordered.at(name).equal(t)) << name;

  const std::string list = checkpoint_error([&] { read_state_dict(dir_ / "list.pt"); });
  EXPECT_NE(list.find("list.pt: expected a dict of tensors, found a list"), std::string::npos)
      << list;

  std::ifstream in(dir_ / "plain.pt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir_ / "truncated.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const std::string truncated = checkpoint_error([&] { read_state_dict(dir_ / "truncated.pt"); });
  EXPECT_NE(truncated.find("truncated.pt: not a readable torch.save file"), std::string::npos)
      << truncated;
  EXPECT_NE(checkpoint_error([&] {
              read_state_dict(dir_ / "nope.pt");
            }).find("nope.pt: no such file"),
            std::string::npos);
  // A FIFO (no writer: reading it would wait forever) and a folder are named, not read.
  ASSERT_EQ(::mkfifo((dir_ / "fifo.pt").c_str(), 0600), 0);
  EXPECT_NE(checkpoint_error([&] {
              read_state_dict(dir_ / "fifo.pt");
            }).find("fifo.pt: a FIFO (named pipe), expected a regular file"),
            std::string::npos);
  fs::create_directories(dir_ / "folder.pt");
  EXPECT_NE(checkpoint_error([&] {
              read_state_dict(dir_ / "folder.pt");
            }).find("folder.pt: a folder, expected a regular file"),
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

// torch.save files as they come: OrderedDicts, DistributedDataParallel names, parameters, shared
// storages, tensors saved on a GPU, zip64 archives, dtypes from bool to float64 — each read as
// torch.load reads it; damaged, hostile and foreign ones are errors naming the file and the
// problem.
TEST_F(StateDictTest, TorchSaveFilesFromElsewhere) {
  ASSERT_EQ(test::run_python("models/python_torch_save.py write " + dir_.string()).code, 0);
  const auto plain = read_state_dict(dir_ / "plain.pt");
  ASSERT_EQ(plain.size(), 7u);
  EXPECT_EQ(plain.at("bn.running_var").scalar_type(), at::kDouble);
  EXPECT_EQ(plain.at("bn.num_batches_tracked").item<std::int64_t>(), 17);
  EXPECT_EQ(plain.at("half").scalar_type(), at::kHalf);
  EXPECT_EQ(plain.at("bf16").scalar_type(), at::kBFloat16);
  EXPECT_TRUE(plain.at("mask").equal(at::tensor({1, 0, 1}).to(at::kBool)));
  // A transposed view keeps its strides: element (i, j) is 3·j + i.
  EXPECT_TRUE(plain.at("transposed").equal(at::arange(6, at::kInt).reshape({2, 3}).t()));
  for (const char* file : {"ordered.pt", "ddp.pt", "params.pt", "gpu.pt", "zip64.pt"}) {
    SCOPED_TRACE(file);
    const auto other = read_state_dict(dir_ / file);
    ASSERT_EQ(other.size(), plain.size());
    for (const auto& [name, t] : plain) {
      ASSERT_TRUE(other.count(name)) << name;
      EXPECT_EQ(other.at(name).scalar_type(), t.scalar_type()) << name;
      EXPECT_TRUE(other.at(name).equal(t)) << name;
    }
  }
  const auto shared = read_state_dict(dir_ / "shared.pt");
  const at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
  EXPECT_TRUE(shared.at("tied.a").equal(base));
  EXPECT_TRUE(shared.at("tied.b").equal(base));
  EXPECT_TRUE(shared.at("slice").equal(base.slice(0, 1).slice(1, 2)));

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"crc.pt", "CRC-32"},
      {"past.pt",
       "tensor 'w' (offset 0, sizes [1000], strides [1]) does not fit in its storage of "
       "10 elements"},
      {"repeated.pt",
       "tensor 'w' (offset 0, sizes [262144, 262144], strides [0, 0]) does not fit in its "
       "storage of 1 elements"},
      {"evil.pt", "global 'posix system' is not allowed"},
      {"nested.pt", "'state_dict' is a dict, expected a tensor: not a state dict"},
      {"legacy.pt", "the legacy format of PyTorch before 1.6"}};
  for (const auto& [file, message] : refused) {
    SCOPED_TRACE(file);
    const std::string e = checkpoint_error([&] { read_state_dict(dir_ / file); });
    EXPECT_NE(e.find(file), std::string::npos) << e;
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
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
