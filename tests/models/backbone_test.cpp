// Backbones: output shapes, parameter counts against published figures, insightface's names.

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/nn.h>

#include "framework/core/error.h"
#include "models/backbone.h"
#include "models/vit.h"

namespace facetrain::models {
namespace {

std::int64_t count(const std::string& name) {
  return parameter_count(*make_backbone(name));
}

TEST(BackboneTest, ParameterCountsMatchPublishedFigures) {
  // insightface reports iresnet50 at 43.6M and iresnet100 at 65.2M parameters (512-d).
  EXPECT_NEAR(count("iresnet50") / 1e6, 43.6, 0.1);
  EXPECT_NEAR(count("iresnet100") / 1e6, 65.2, 0.1);
  // Every depth against the closed form of the architecture: a stage of n blocks at c channels
  // holds n·(18c² + 7c) (two 3×3 convs, three BNs, a PReLU), less the first block's
  // 9c² − 9c·c_in and 2c − 2c_in for its wider input, plus its shortcut c·c_in + 2c.
  const auto stage = [](std::int64_t n, std::int64_t c, std::int64_t cin) {
    const std::int64_t block = 9 * c * c * 2 + 2 * c * 2 + c + 2 * c;  // 2 convs, 3 BNs, PReLU
    return n * block - 9 * c * c + 9 * c * cin - 2 * c + 2 * cin + c * cin + 2 * c;
  };
  const auto iresnet = [&](std::array<std::int64_t, 4> l) {
    const std::int64_t stem = 27 * 64 + 2 * 64 + 64;
    const std::int64_t head = 2 * 512 + 512 * 49 * 512 + 512 + 2 * 512;
    return stem + stage(l[0], 64, 64) + stage(l[1], 128, 64) + stage(l[2], 256, 128) +
           stage(l[3], 512, 256) + head;
  };
  EXPECT_EQ(count("iresnet18"), iresnet({2, 2, 2, 2}));
  EXPECT_EQ(count("iresnet34"), iresnet({3, 4, 6, 3}));
  EXPECT_EQ(count("iresnet50"), iresnet({3, 4, 14, 3}));
  EXPECT_EQ(count("iresnet100"), iresnet({3, 13, 30, 3}));
  EXPECT_EQ(count("iresnet200"), iresnet({6, 26, 60, 6}));
}

TEST(BackboneTest, VisionTransformersSizesAndCost) {
  // Parameters against the closed form of the architecture at width d, depth L, 512-d output:
  // patch conv 243d + d, position embedding 144d, per block two LayerNorms (4d), qkv 3d²,
  // projection d² + d, MLP 8d² + 5d; final LayerNorm 2d; head 144d·d + 2d (BN) + 512d + 2·512;
  // the mask token d.
  const auto closed_form = [](std::int64_t d, std::int64_t depth) {
    return 243 * d + d + 144 * d + depth * (12 * d * d + 10 * d) + 2 * d + 144 * d * d + 2 * d +
           512 * d + 2 * 512 + d;
  };
  struct Case {
    const char* name;
    std::int64_t dim, depth;
    double published_gflops;  // arcface_torch's model tables: ViT-T-1.5G, ViT-S-5.7G, …
  };
  for (const Case& c : {Case{"vit_t", 256, 12, 1.5}, Case{"vit_s", 512, 12, 5.7},
                        Case{"vit_b", 512, 24, 11.0}, Case{"vit_l", 768, 24, 25.0}}) {
    auto net = make_backbone(c.name);
    EXPECT_EQ(parameter_count(*net), closed_form(c.dim, c.depth)) << c.name;
    const auto* vit = dynamic_cast<const VisionTransformerImpl*>(net.get());
    ASSERT_NE(vit, nullptr);
    EXPECT_NEAR(static_cast<double>(vit->multiply_adds()) / 1e9, c.published_gflops,
                0.05 * c.published_gflops + 0.05)
        << c.name;
  }
  // The WebFace42M variants differ only in drop path and masking; vit_b checkpoints by default.
  const auto* b = dynamic_cast<const VisionTransformerImpl*>(make_backbone("vit_b").get());
  EXPECT_TRUE(b->config().checkpointing);
  auto wf = make_backbone("vit_t_dp005_mask0");
  const auto& cw = dynamic_cast<const VisionTransformerImpl&>(*wf).config();
  EXPECT_DOUBLE_EQ(cw.drop_path, 0.05);
  EXPECT_DOUBLE_EQ(cw.mask_ratio, 0.0);
  EXPECT_EQ(canonical_backbone_name("vit_l_dp005_mask_005"), "vit_l");
}

TEST(BackboneTest, VisionTransformerTrainsWithMaskingDropPathAndCheckpointing) {
  // Training mode: masking and drop path change the output from call to call; eval is
  // deterministic. Checkpointing gives the same gradients as keeping the activations.
  torch::manual_seed(3);
  auto plain = make_backbone("vit_t", BackboneOptions().embedding_size(32).checkpointing(0));
  auto recomputed = make_backbone("vit_t", BackboneOptions().embedding_size(32).checkpointing(1));
  {
    torch::NoGradGuard no_grad;
    auto dst = recomputed->named_parameters();
    for (const auto& p : plain->named_parameters()) dst[p.key()].copy_(p.value());
  }
  const at::Tensor x = torch::rand({3, 3, 112, 112}) * 2 - 1;
  plain->eval();
  EXPECT_TRUE(plain->forward(x).equal(plain->forward(x)));
  plain->train();
  recomputed->train();
  torch::manual_seed(9);
  const at::Tensor a = plain->forward(x);
  torch::manual_seed(9);
  const at::Tensor b = recomputed->forward(x);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5));
  torch::manual_seed(10);
  EXPECT_FALSE(torch::allclose(plain->forward(x), a, 1e-3, 1e-3));  // another mask
  a.square().sum().backward();
  b.square().sum().backward();
  auto rp = recomputed->named_parameters();
  for (const auto& p : plain->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::allclose(p.value().grad(), rp[p.key()].grad(), 1e-4, 1e-6)) << p.key();
  }
}

TEST(BackboneTest, OutputShapesAndEmbeddingSize) {
  torch::manual_seed(0);
  const at::Tensor images = torch::rand({2, 3, 112, 112}) * 2 - 1;
  for (const std::string name : {"iresnet18", "mbf"}) {
    auto net = make_backbone(name, BackboneOptions().embedding_size(128));
    net->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor out = net->forward(images);
    EXPECT_EQ(out.sizes(), at::IntArrayRef({2, 128})) << name;
    EXPECT_TRUE(out.isfinite().all().item<bool>()) << name;
    EXPECT_EQ(net->network(), name);
    EXPECT_EQ(net->embedding_size(), 128);
  }
}

TEST(BackboneTest, MobileFaceNetSizeAndNames) {
  auto mbf = make_backbone("mbf");
  const auto params = mbf->named_parameters();
  for (const char* key : {"layers.0.layers.0.weight", "layers.1.layers.2.weight",
                          "layers.3.layers.3.layers.2.layers.1.bias", "conv_sep.layers.0.weight",
                          "features.layers.0.layers.0.weight", "features.layers.2.weight",
                          "features.layers.3.weight"}) {
    EXPECT_NE(params.find(key), nullptr) << key;
  }
  EXPECT_EQ(params["layers.1.layers.0.weight"].sizes(), at::IntArrayRef({128, 2, 3, 3}));
  EXPECT_EQ(params["features.layers.2.weight"].sizes(), at::IntArrayRef({512, 512}));
  EXPECT_NE(mbf->named_buffers().find("features.layers.3.running_var"), nullptr);
}

TEST(BackboneTest, IResNetNamesFollowInsightface) {
  auto net = make_backbone("iresnet50");
  const auto params = net->named_parameters();
  const auto buffers = net->named_buffers();
  for (const char* key :
       {"conv1.weight", "bn1.weight", "prelu.weight", "layer1.0.bn1.weight",
        "layer1.0.conv1.weight", "layer1.0.prelu.weight", "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias", "layer3.13.conv2.weight", "bn2.weight", "fc.weight",
        "fc.bias", "features.weight", "features.bias"}) {
    EXPECT_NE(params.find(key), nullptr) << key;
  }
  EXPECT_EQ(params.find("layer3.14.conv1.weight"), nullptr);
  EXPECT_NE(buffers.find("layer2.0.downsample.1.num_batches_tracked"), nullptr);
  EXPECT_NE(buffers.find("features.running_mean"), nullptr);
  EXPECT_EQ(params["fc.weight"].sizes(), at::IntArrayRef({512, 25088}));
  EXPECT_EQ(params["layer2.0.conv2.weight"].sizes(), at::IntArrayRef({128, 128, 3, 3}));
  EXPECT_EQ(params["layer2.0.downsample.0.weight"].sizes(), at::IntArrayRef({128, 64, 1, 1}));
  // The embedding BatchNorm's scale is fixed at 1, as in insightface.
  EXPECT_FALSE(params["features.weight"].requires_grad());
  EXPECT_TRUE(params["features.weight"].eq(1).all().item<bool>());
}

TEST(BackboneTest, RegistryErrors) {
  try {
    make_backbone("iresnet51");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown network 'iresnet51'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("iresnet18, iresnet34, iresnet50, iresnet100, iresnet200, mbf"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("did you mean 'iresnet50'"), std::string::npos) << msg;
  }
  EXPECT_THROW(make_backbone("mbf", BackboneOptions().embedding_size(0)), ConfigError);
  EXPECT_THROW(make_backbone("iresnet18", BackboneOptions().dropout(1.0)), ConfigError);
}

TEST(BackboneTest, EmbeddingHeadStaysFloat32UnderAutocast) {
  auto net = make_backbone("iresnet18", BackboneOptions().embedding_size(64));
  net->eval();
  torch::NoGradGuard no_grad;
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::increment_nesting();
  const at::Tensor out = net->forward(torch::rand({1, 3, 112, 112}));
  at::autocast::decrement_nesting();
  at::autocast::clear_cache();
  const bool still_on = at::autocast::is_autocast_enabled(at::kCPU);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_TRUE(still_on) << "the backbone must restore autocast after its fp32 head";
}

}  // namespace
}  // namespace facetrain::models
