#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <utility>
#include <vector>

#include "models/backbone.h"
#include "models/lowering.h"
#include "models/preprocessing.h"

namespace facetrain::models {

// The Vision Transformer of arcface_torch (backbones/vit.py): 112×112 faces cut into 9×9 patches
// (12×12 = 144 tokens, the last 4 pixel rows and columns unused, as there), a learned position
// embedding, pre-norm blocks (LayerNorm, multi-head self-attention without qkv bias, LayerNorm,
// an MLP with ReLU6), stochastic depth rising linearly to `drop_path` over the blocks, random
// masking of `mask_ratio` of the tokens in training (the masked ones replaced by a learned token
// after the final norm), and the feature head: all 144 × D token features → Linear → BN →
// Linear → BN to the embedding. Parameter names and shapes are insightface's.
struct VitConfig {
  std::int64_t embed_dim = 256;
  std::int64_t depth = 12;
  std::int64_t num_heads = 8;
  double drop_path = 0.1;
  double mask_ratio = 0.1;
  // Recompute each block's activations in the backward pass instead of keeping them (training
  // only): arcface_torch's using_checkpoint, on for vit_b and vit_l.
  bool checkpointing = false;
};

namespace detail {

// Multi-head self-attention over `tokens` tokens: softmax(q·kᵀ/√head_dim)·v per head, then a
// projection. Lowered over [N·tokens, dim] rows (models/lowering.h).
class VitAttentionImpl : public torch::nn::Module, public Lowerable {
 public:
  VitAttentionImpl(std::int64_t dim, std::int64_t heads, std::int64_t tokens);
  at::Tensor forward(const at::Tensor& x);
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  std::int64_t heads() const { return heads_; }
  const torch::nn::Linear& qkv() const { return qkv_; }
  const torch::nn::Linear& proj() const { return proj_; }

 private:
  std::int64_t heads_, tokens_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(VitAttention);

class VitMlpImpl : public torch::nn::Module, public Lowerable {
 public:
  VitMlpImpl(std::int64_t dim, std::int64_t hidden);
  // fc2(ReLU6(fc1(x))).
  at::Tensor forward(const at::Tensor& x);
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  const torch::nn::Linear& fc1() const { return fc1_; }
  const torch::nn::Linear& fc2() const { return fc2_; }

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(VitMlp);

// x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))).
class VitBlockImpl : public torch::nn::Module, public Lowerable {
 public:
  VitBlockImpl(std::int64_t dim, std::int64_t heads, std::int64_t tokens, double drop_path);
  // `keep1`, `keep2`: the drop-path masks of the two residual branches ([N, 1, 1], already
  // scaled by 1 / keep probability), or undefined or empty for none.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& keep1, const at::Tensor& keep2);
  // This block's two drop-path masks for a batch (undefined outside training or at rate 0).
  std::pair<at::Tensor, at::Tensor> drop_path_masks(std::int64_t batch,
                                                    const at::TensorOptions& options) const;
  // Inference: drop path is the identity.
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  VitAttention attn{nullptr};
  VitMlp mlp{nullptr};

 private:
  double drop_path_;
};
TORCH_MODULE(VitBlock);

class VitPatchEmbedImpl : public torch::nn::Module, public Lowerable {
 public:
  // Non-overlapping `patch`×`patch` patches of an image_size×image_size image (the remainder
  // rows and columns unused).
  VitPatchEmbedImpl(std::int64_t dim, std::int64_t patch, std::int64_t image_size);
  // [N, 3, 112, 112] → [N, 144, dim].
  at::Tensor forward(const at::Tensor& x);
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  torch::nn::Conv2d proj{nullptr};

 private:
  std::int64_t tokens_;
};
TORCH_MODULE(VitPatchEmbed);

}  // namespace detail

class VisionTransformerImpl : public BackboneImpl {
 public:
  static constexpr std::int64_t kImageSize = kPreprocessing.size;
  static constexpr std::int64_t kPatch = 9;
  static constexpr std::int64_t kTokens = (kImageSize / kPatch) * (kImageSize / kPatch);

  VisionTransformerImpl(std::string name, const VitConfig& config, const BackboneOptions& options);
  at::Tensor forward(at::Tensor images) override;
  std::int64_t embedding_size() const override { return options_.embedding_size(); }
  std::string network() const override { return name_; }
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  const VitConfig& config() const { return config_; }
  // Multiply-adds of one image's forward pass (what arcface_torch's tables call FLOPs: ViT-T
  // 1.5G, ViT-S 5.7G, ViT-B 11G, ViT-L 25G): the patch convolution, per block the qkv,
  // attention (q·kᵀ and weights·v), projection and MLP products, and the feature head.
  std::int64_t multiply_adds() const;

 private:
  at::Tensor run_block(std::size_t i, const at::Tensor& x);

  std::string name_;
  VitConfig config_;
  BackboneOptions options_;
  detail::VitPatchEmbed patch_embed_{nullptr};
  at::Tensor pos_embed_, mask_token_;
  torch::nn::ModuleList blocks_{nullptr};
  std::vector<detail::VitBlock> block_list_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Sequential feature_{nullptr};
};

}  // namespace facetrain::models
