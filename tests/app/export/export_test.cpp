// `facetrain export` end to end: the written ONNX runs in onnxruntime, the TorchScript in
// torch.jit.load and torch::jit::load, the state dict in insightface's own backbone
// definitions, all giving LibTorch's embeddings (cosine >= 0.99999, max |diff| <= 1e-4), with and
// without BatchNorm folding and in-graph normalisation. Bad weight files fail with exit code 1
// and leave nothing behind.

#include <gtest/gtest.h>
#include <torch/nn.h>
#include <torch/script.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/export/exporter.h"
#include "app/export/graph_builder.h"
#include "app/export/npy.h"
#include "app/export/sha256.h"
#include "app/export/torchscript_writer.h"
#include "data/image/jpeg_codec.h"
#include "data/synth/synthetic_faces.h"
#include "framework/core/error.h"
#include "models/backbone.h"
#include "models/embedding.h"
#include "models/state_dict.h"
#include "tests/support/process.h"

namespace facetrain::exporting {
namespace {

namespace fs = std::filesystem;
using test::env;

// A backbone whose weights behave like trained ones: random BatchNorm scales and shifts and
// PReLU slopes, and running statistics measured on random images (so activations stay in range
// and the embeddings are O(1), as after training).
std::shared_ptr<models::BackboneImpl> calibrated_backbone(const std::string& network,
                                                          std::int64_t embedding_size) {
  torch::manual_seed(3);
  auto net =
      models::make_backbone(network, models::BackboneOptions().embedding_size(embedding_size));
  torch::NoGradGuard no_grad;
  for (auto& m : net->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0.0, 0.1);
      bn->options.momentum(1.0);
    } else if (auto* bn1 = m->as<torch::nn::BatchNorm1d>()) {
      bn1->bias.normal_(0.0, 0.1);
      bn1->options.momentum(1.0);
    } else if (auto* prelu = m->as<torch::nn::PReLU>()) {
      prelu->weight.uniform_(0.1, 0.4);
    } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
      ln->weight.uniform_(0.5, 1.5);
      ln->bias.normal_(0.0, 0.1);
    }
  }
  net->train();
  net->forward(torch::rand({16, 3, 112, 112}) * 2 - 1);
  net->eval();
  return net;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(env("FACETRAIN_BIN").empty()) << "FACETRAIN_BIN is not set";
    ASSERT_FALSE(env("FACETRAIN_PYTHON").empty()) << "FACETRAIN_PYTHON is not set";
    dir_ = fs::temp_directory_path() / ("facetrain_export_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Weights of a calibrated `network` in dir_/NETWORK.pt, and the inputs and LibTorch
  // embeddings of 3 random images and 3 synthetic faces: input.npy ([-1, 1]), raw.npy
  // (0..255) and expected.npy.
  void prepare(const std::string& network, std::int64_t embedding_size) {
    auto net = calibrated_backbone(network, embedding_size);
    weights_ = dir_ / (network + ".pt");
    models::write_state_dict(weights_, models::state_dict(*net));
    data::JpegCodec codec;
    std::vector<at::Tensor> faces;
    for (int i = 0; i < 3; ++i) {
      faces.push_back(codec.decode(data::synthetic_face_jpeg(11, i, 1), "face"));
    }
    const at::Tensor pixels =
        at::cat({(torch::rand({3, 112, 112, 3}) * 255).round().to(at::kByte), at::stack(faces)});
    const at::Tensor input = models::images_to_input(pixels);
    torch::NoGradGuard no_grad;
    write_npy(dir_ / "input.npy", input);
    write_npy(dir_ / "raw.npy", pixels.permute({0, 3, 1, 2}).to(at::kFloat));
    expected_ = net->forward(input);
    write_npy(dir_ / "expected.npy", expected_);
  }

  test::Exec facetrain(const std::string& args) {
    return test::run(env("FACETRAIN_BIN") + " " + args);
  }

  test::Exec export_weights(const std::string& network, const std::string& format,
                            const fs::path& out, const std::string& flags = "") {
    return facetrain("export --weights " + weights_.string() + " --network " + network +
                     " --format " + format + " --out " + out.string() + " " + flags);
  }

  test::Exec check(const std::string& format, const fs::path& model, const std::string& flags) {
    const bool raw = flags.find("--in-graph-normalization") != std::string::npos;
    return test::run_python("app/export/python_check_export.py " + format + " " + model.string() +
                            " " + (dir_ / (raw ? "raw.npy" : "input.npy")).string() + " " +
                            (dir_ / "expected.npy").string() + " --weights " + weights_.string() +
                            " " + flags);
  }

  // The names in dir_ other than the test's own files: what an export left behind.
  std::vector<std::string> leftovers() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.find(".npy") == std::string::npos && e.path() != weights_) names.push_back(name);
    }
    return names;
  }

  using Variants = std::vector<std::pair<std::string, std::string>>;
  // The CNNs' variants: export flags, and what python_check_export.py then checks.
  static Variants cnn_variants() {
    return {{"", ""},
            {"--fold-bn", "--bn-folded"},
            {"--normalize-in-graph", "--in-graph-normalization"},
            {"--fold-bn --normalize-in-graph --verify", "--bn-folded --in-graph-normalization"}};
  }

  // `network` exported to ONNX with each variant's flags and run in onnxruntime against
  // LibTorch's embeddings.
  void onnx_parity(const std::string& network, std::int64_t embedding_size,
                   const Variants& variants = cnn_variants()) {
    prepare(network, embedding_size);
    for (const auto& [flags, check_flags] : variants) {
      SCOPED_TRACE(network + " " + flags);
      const fs::path out = dir_ / (network + ".onnx");
      const auto exported = export_weights(network, "onnx", out, flags);
      ASSERT_EQ(exported.code, 0) << exported.out;
      if (flags.find("--verify") != std::string::npos) {
        EXPECT_NE(exported.out.find("parity: passed"), std::string::npos) << exported.out;
      }
      const auto checked = check("onnx", out, check_flags);
      EXPECT_EQ(checked.code, 0) << checked.out;
      EXPECT_NE(checked.out.find("onnxruntime batch 3"), std::string::npos) << checked.out;
    }
  }

  fs::path dir_;
  fs::path weights_;
  at::Tensor expected_;
};

TEST_F(ExportTest, OnnxMatchesLibTorchMbf) {
  onnx_parity("mbf", 128);
}

TEST_F(ExportTest, OnnxMatchesLibTorchIresnet18) {
  onnx_parity("iresnet18", 64);
}

TEST_F(ExportTest, OnnxMatchesLibTorchIresnet50) {
  prepare("iresnet50", 512);
  const fs::path out = dir_ / "r50.onnx";
  const auto exported = export_weights("iresnet50", "onnx", out, "--fold-bn --verify");
  ASSERT_EQ(exported.code, 0) << exported.out;
  const auto checked = check("onnx", out, "--bn-folded");
  EXPECT_EQ(checked.code, 0) << checked.out;
}

// arcface_torch's ViT: attention as MatMul/Softmax, LayerNormalization at opset 17 and its
// decomposition at older opsets, the feature head's BatchNorms folded into its linear layers.
TEST_F(ExportTest, OnnxMatchesLibTorchVitT) {
  onnx_parity(
      "vit_t", 128,
      {{"", "--require-op LayerNormalization --require-op MatMul --require-op Softmax"},
       {"--opset 13", "--forbid-op LayerNormalization --require-op ReduceMean"},
       {"--fold-bn --normalize-in-graph --verify", "--bn-folded --in-graph-normalization"}});
}

TEST_F(ExportTest, TorchScriptRunsInPythonAndCpp) {
  for (const std::string network : {"mbf", "iresnet18", "vit_t"}) {
    prepare(network, 64);
    // The ViT's layers are the same in both variants: the second alone covers it.
    const std::vector<std::string> variants =
        network == "vit_t" ? std::vector<std::string>{"--fold-bn --normalize-in-graph"}
                           : std::vector<std::string>{"", "--fold-bn --normalize-in-graph"};
    for (const std::string& flags : variants) {
      SCOPED_TRACE(network + " " + flags);
      const fs::path out = dir_ / (network + ".torchscript.pt");
      const auto exported = export_weights(network, "torchscript", out, flags + " --verify");
      ASSERT_EQ(exported.code, 0) << exported.out;
      const auto checked =
          check("torchscript", out, flags.empty() ? "" : "--in-graph-normalization");
      EXPECT_EQ(checked.code, 0) << checked.out;

      torch::jit::Module module = torch::jit::load(out.string());
      const at::Tensor input = read_npy(dir_ / (flags.empty() ? "input.npy" : "raw.npy"));
      torch::NoGradGuard no_grad;
      const at::Tensor y = module.forward({input}).toTensor();
      EXPECT_LE((y - expected_).abs().max().item<double>(), kParityMaxAbsDiff);
      EXPECT_GE(at::cosine_similarity(y, expected_, 1).min().item<double>(), kParityMinCosine);
    }
  }
}

TEST_F(ExportTest, StateDictLoadsIntoInsightfaceBackbones) {
  for (const std::string network : {"mbf", "iresnet18", "vit_t"}) {
    SCOPED_TRACE(network);
    prepare(network, 64);
    const fs::path out = dir_ / (network + ".state.pt");
    const auto exported = export_weights(network, "pytorch", out, "--verify");
    ASSERT_EQ(exported.code, 0) << exported.out;
    const auto checked = check("pytorch", out, "--network " + network);
    EXPECT_EQ(checked.code, 0) << checked.out;
  }
}

TEST_F(ExportTest, CheckpointConfigHashInMetadata) {
  prepare("mbf", 64);
  const fs::path checkpoint = dir_ / "run" / "checkpoints" / "step-0000010";
  fs::create_directories(checkpoint);
  fs::copy_file(weights_, checkpoint / "backbone.pt");
  std::ofstream(checkpoint / "config.toml") << "[model]\nnetwork = \"mbf\"\n";
  fs::create_directory_symlink("step-0000010", dir_ / "run" / "checkpoints" / "latest");
  const fs::path out = dir_ / "ckpt.onnx";
  const auto exported = facetrain("export --checkpoint " + (dir_ / "run").string() +
                                  " --format onnx --out " + out.string());
  ASSERT_EQ(exported.code, 0) << exported.out;
  const auto checked = check("onnx", out, "--config " + (checkpoint / "config.toml").string());
  EXPECT_EQ(checked.code, 0) << checked.out;
}

TEST_F(ExportTest, BadWeightsFailWithExitCode1AndLeaveNothing) {
  prepare("mbf", 64);
  std::ifstream in(weights_, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir_ / "truncated.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::string noise(4096, '\0');
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>(i * 7919 % 251);
  std::ofstream(dir_ / "noise.pt", std::ios::binary) << noise;
  ASSERT_EQ(
      test::run(env("FACETRAIN_PYTHON") + " -c \"import torch; torch.save([torch.ones(3)], '" +
                (dir_ / "list.pt").string() + "')\"")
          .code,
      0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated.pt", "truncated.pt: not a readable torch.save file"},
      {"noise.pt", "noise.pt: not a readable torch.save file"},
      {"list.pt", "list.pt: expected a dict of tensors"}};
  for (const std::string format : {"onnx", "torchscript", "pytorch"}) {
    for (const auto& [file, message] : cases) {
      SCOPED_TRACE(format + " " + file);
      const fs::path out = dir_ / ("out." + format);
      const auto r = facetrain("export --weights " + (dir_ / file).string() +
                               " --network mbf --format " + format + " --out " + out.string());
      EXPECT_EQ(r.code, 1) << r.out;
      EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
      EXPECT_FALSE(fs::exists(out));
    }
  }
  // Another network's weights: the mismatch is named, nothing is written.
  const auto wrong = export_weights("iresnet18", "onnx", dir_ / "wrong.onnx");
  EXPECT_EQ(wrong.code, 1) << wrong.out;
  EXPECT_NE(wrong.out.find("not a iresnet18 state dict"), std::string::npos) << wrong.out;

  // An older file at --out survives a failed export untouched.
  std::ofstream(dir_ / "old.onnx") << "previous model";
  EXPECT_EQ(facetrain("export --weights " + (dir_ / "truncated.pt").string() +
                      " --network mbf --format onnx --out " + (dir_ / "old.onnx").string())
                .code,
            1);
  std::ifstream old(dir_ / "old.onnx");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(old)), std::istreambuf_iterator<char>()),
            "previous model");
  std::vector<std::string> left = leftovers();
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"list.pt", "noise.pt", "old.onnx", "truncated.pt"}));
}

TEST_F(ExportTest, UsageErrorsExitWith2) {
  prepare("mbf", 64);
  EXPECT_EQ(export_weights("mbf", "pytorch", dir_ / "a.pt", "--fold-bn").code, 2);
  EXPECT_EQ(export_weights("mbf", "onnx", dir_ / "a.onnx", "--opset 9").code, 2);
  EXPECT_EQ(export_weights("mbf", "tflite", dir_ / "a.onnx").code, 2);
  EXPECT_EQ(facetrain("export --format onnx --out " + (dir_ / "a.onnx").string()).code, 2);
  EXPECT_TRUE(leftovers().empty());
}

TEST(ExportGraph, FoldingRemovesTheFoldableBatchNorms) {
  const auto count_bn = [](const Graph& g) {
    return std::count_if(g.nodes.begin(), g.nodes.end(),
                         [](const Node& n) { return n.op == Op::kBatchNorm; });
  };
  auto mbf = calibrated_backbone("mbf", 64);
  EXPECT_GT(count_bn(build_graph(*mbf)), 40);
  EXPECT_EQ(count_bn(build_graph(*mbf, {false, true})), 0);
  // iresnet: each block's first BatchNorm precedes a padded convolution and stays.
  auto r18 = calibrated_backbone("iresnet18", 64);
  const Graph folded = build_graph(*r18, {true, true});
  EXPECT_EQ(count_bn(folded), 8);
  EXPECT_EQ(folded.nodes[0].op, Op::kSub);
  EXPECT_EQ(folded.nodes[1].op, Op::kMul);
  EXPECT_EQ(folded.nodes.back().output, "embedding");
}

// Below opset 17 each LayerNormalization becomes the ops of its definition; the rewritten graph,
// run as TorchScript, still computes the backbone's embeddings.
TEST(ExportGraph, LayerNormDecompositionComputesTheSameFunction) {
  auto vit = calibrated_backbone("vit_t", 32);
  Graph graph = build_graph(*vit);
  const auto count = [&](Op op) {
    return std::count_if(graph.nodes.begin(), graph.nodes.end(),
                         [&](const Node& n) { return n.op == op; });
  };
  EXPECT_EQ(count(Op::kLayerNorm), 2 * 12 + 1);
  EXPECT_EQ(count(Op::kSoftmax), 12);
  EXPECT_EQ(adapt_to_opset(graph, 17), 0);
  EXPECT_EQ(adapt_to_opset(graph, 13), 2 * 12 + 1);
  EXPECT_EQ(count(Op::kLayerNorm), 0);
  EXPECT_EQ(count(Op::kReduceMean), 2 * (2 * 12 + 1));
  validate(graph);
  torch::jit::Module module = torchscript_module(graph);
  torch::manual_seed(4);
  const at::Tensor x = torch::rand({3, 3, 112, 112}) * 2 - 1;
  torch::NoGradGuard no_grad;
  const at::Tensor want = vit->forward(x);
  const at::Tensor got = module.forward({x}).toTensor();
  EXPECT_LE((got - want).abs().max().item<double>(), kParityMaxAbsDiff);
  EXPECT_GE(at::cosine_similarity(got, want, 1).min().item<double>(), kParityMinCosine);
  // The opset is checked against every node: a LayerNormalization cannot go out at opset 13.
  Graph native = build_graph(*vit);
  try {
    onnx_model_bytes(native, 13, "test");
    ADD_FAILURE() << "a LayerNormalization was written at opset 13";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs opset 17"), std::string::npos) << e.what();
  }
}

TEST(ExportGraph, MalformedAttributesAreRefusedByName) {
  const auto graph_with = [](Node node) {
    Graph g;
    node.name = "Bad_0";
    node.inputs = {g.input};
    node.output = g.output;
    g.nodes.push_back(node);
    return g;
  };
  const auto message = [](const Graph& g) {
    try {
      validate(g);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  Node reshape;
  reshape.op = Op::kReshape;
  reshape.shape = {-1, 0, 4};
  EXPECT_NE(message(graph_with(reshape)).find("Bad_0: reshape dims"), std::string::npos);
  reshape.shape = {-1, -1};
  EXPECT_NE(message(graph_with(reshape)).find("at most one -1"), std::string::npos);
  reshape.shape = {-1, 4};
  EXPECT_EQ(message(graph_with(reshape)), "accepted");
  Node transpose;
  transpose.op = Op::kTranspose;
  transpose.perm = {0, 2, 2};
  EXPECT_NE(message(graph_with(transpose)).find("not a permutation"), std::string::npos);
  Node clip;
  clip.op = Op::kClip;
  clip.clip_min = 6;
  clip.clip_max = 0;
  EXPECT_NE(message(graph_with(clip)).find("clip range is empty"), std::string::npos);
  Node matmul;
  matmul.op = Op::kMatMul;
  EXPECT_NE(message(graph_with(matmul)).find("has 1 inputs, MatMul takes 2"), std::string::npos);
}

// A backbone defined here, with its lowering beside its forward: the exporter needs nothing else.
class PooledLinearImpl : public models::BackboneImpl {
 public:
  explicit PooledLinearImpl(bool with_lowered_block)
      : conv_(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)))),
        fc_(register_module("fc", torch::nn::Linear(4 * 110 * 110, 8))) {
    if (!with_lowered_block) tanh_ = register_module("tanh", torch::nn::Tanh());
  }
  at::Tensor forward(at::Tensor x) override {
    x = conv_(x);
    if (tanh_) x = tanh_(x);
    return fc_(x.flatten(1)) + fc_(x.flatten(1));
  }
  std::string lower(models::GraphEmitter& g, const std::string& path,
                    const std::string& x) const override {
    std::string y = g.apply(child_path(path, "conv"), *conv_, x);
    if (tanh_) y = g.apply(child_path(path, "tanh"), *tanh_, y);  // no lowering for Tanh
    y = g.apply(child_path(path, "fc"), *fc_, g.flatten(child_path(path, "flatten"), y));
    return g.add(child_path(path, "twice"), y, y);
  }
  std::int64_t embedding_size() const override { return 8; }
  std::string network() const override { return "pooled-linear"; }

 private:
  torch::nn::Conv2d conv_;
  torch::nn::Linear fc_;
  torch::nn::Tanh tanh_{nullptr};
};

TEST(ExportGraph, ABackboneLowersItselfBesideItsForward) {
  PooledLinearImpl net(true);
  const Graph graph = build_graph(net);
  std::vector<Op> ops;
  for (const auto& n : graph.nodes) ops.push_back(n.op);
  EXPECT_EQ(ops, (std::vector<Op>{Op::kConv, Op::kFlatten, Op::kGemm, Op::kAdd}));
  EXPECT_EQ(graph.nodes.back().output, "embedding");
  EXPECT_NE(graph.find_initializer("fc.weight"), nullptr);
  // A layer nobody lowers is refused by name.
  PooledLinearImpl unsupported(false);
  try {
    build_graph(unsupported);
    ADD_FAILURE() << "a Tanh was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("module 'tanh'"), std::string::npos) << e.what();
  }
}

TEST(ExportGraph, Sha256MatchesKnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

}  // namespace
}  // namespace facetrain::exporting
