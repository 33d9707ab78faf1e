#include "models/vit.h"

#include <torch/autograd.h>
#include <torch/nn.h>

#include <cmath>

#include "framework/core/autocast.h"
#include "framework/core/error.h"

namespace facetrain::models {
namespace detail {

VitAttentionImpl::VitAttentionImpl(std::int64_t dim, std::int64_t heads, std::int64_t tokens)
    : heads_(heads), tokens_(tokens) {
  qkv_ =
      register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)));
  proj_ = register_module("proj", torch::nn::Linear(dim, dim));
}

at::Tensor VitAttentionImpl::forward(const at::Tensor& x) {
  const std::int64_t b = x.size(0), n = x.size(1), d = x.size(2);
  // [3, b, heads, n, head_dim]
  const at::Tensor qkv = qkv_(x).reshape({b, n, 3, heads_, d / heads_}).permute({2, 0, 3, 1, 4});
  at::Tensor y;
  {
    // The attention itself in float32 under autocast, as arcface_torch computes it.
    AutocastScope fp32(x.device().type(), std::nullopt);
    const at::Tensor q = qkv[0].to(at::kFloat), k = qkv[1].to(at::kFloat),
                     v = qkv[2].to(at::kFloat);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads_));
    const at::Tensor attn = at::softmax(at::matmul(q, k.transpose(-2, -1)) * scale, -1);
    y = at::matmul(attn, v).transpose(1, 2).reshape({b, n, d});
  }
  return proj_(y);
}

std::string VitAttentionImpl::lower(GraphEmitter& g, const std::string& path,
                                    const std::string& x) const {
  const auto named = [&](const char* name) { return child_path(path, name); };
  const std::int64_t d = proj_->options.out_features(), head_dim = d / heads_;
  // [N·T, 3D] rows → [3, N, heads, T, head_dim], as forward's reshape and permute.
  std::string qkv = g.apply(named("qkv"), *qkv_, x);
  qkv = g.reshape(named("qkv_heads"), qkv, {-1, tokens_, 3, heads_, head_dim});
  qkv = g.transpose(named("qkv_split"), qkv, {2, 0, 3, 1, 4});
  const std::string q = g.select(named("q"), qkv, 0, 0);
  const std::string k = g.select(named("k"), qkv, 0, 1);
  const std::string v = g.select(named("v"), qkv, 0, 2);
  std::string scores = g.matmul(named("scores"), q, g.transpose(named("k_t"), k, {0, 1, 3, 2}));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  scores = g.mul(named("scaled_scores"), scores,
                 g.constant(named("scale"), at::scalar_tensor(scale, at::kFloat)));
  std::string y = g.matmul(named("weighted"), g.softmax(named("weights"), scores), v);
  y = g.transpose(named("heads_merged"), y, {0, 2, 1, 3});
  y = g.reshape(named("rows"), y, {-1, d});
  return g.apply(named("proj"), *proj_, y);
}

VitMlpImpl::VitMlpImpl(std::int64_t dim, std::int64_t hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(hidden, dim));
}

at::Tensor VitMlpImpl::forward(const at::Tensor& x) {
  return fc2_(at::hardtanh(fc1_(x), 0.0, 6.0));  // ReLU6
}

std::string VitMlpImpl::lower(GraphEmitter& g, const std::string& path,
                              const std::string& x) const {
  const std::string h = g.apply(child_path(path, "fc1"), *fc1_, x);
  return g.apply(child_path(path, "fc2"), *fc2_, g.clip(child_path(path, "act"), h, 0.0, 6.0));
}

VitBlockImpl::VitBlockImpl(std::int64_t dim, std::int64_t heads, std::int64_t tokens,
                           double drop_path)
    : drop_path_(drop_path) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  attn = register_module("attn", VitAttention(dim, heads, tokens));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  mlp = register_module("mlp", VitMlp(dim, 4 * dim));
}

at::Tensor VitBlockImpl::forward(const at::Tensor& x, const at::Tensor& keep1,
                                 const at::Tensor& keep2) {
  const auto drop = [](const at::Tensor& y, const at::Tensor& keep) {
    return keep.defined() && keep.numel() > 0 ? y * keep : y;
  };
  const at::Tensor h = x + drop(attn(norm1(x)), keep1);
  return h + drop(mlp(norm2(h)), keep2);
}

std::string VitBlockImpl::lower(GraphEmitter& g, const std::string& path,
                                const std::string& x) const {
  const auto named = [&](const char* name) { return child_path(path, name); };
  const std::string h = g.add(named("residual1"), x,
                              g.apply(named("attn"), *attn, g.apply(named("norm1"), *norm1, x)));
  return g.add(named("residual2"), h,
               g.apply(named("mlp"), *mlp, g.apply(named("norm2"), *norm2, h)));
}

std::pair<at::Tensor, at::Tensor> VitBlockImpl::drop_path_masks(std::int64_t batch,
                                                                const at::TensorOptions& o) const {
  if (!is_training() || drop_path_ <= 0) return {};
  // Stochastic depth per sample (timm's DropPath): keep with 1 − p, scaled by 1 / (1 − p).
  const double keep = 1.0 - drop_path_;
  const auto mask = [&] { return at::bernoulli(at::full({batch, 1, 1}, keep, o)) / keep; };
  at::Tensor first = mask();
  return {first, mask()};
}

VitPatchEmbedImpl::VitPatchEmbedImpl(std::int64_t dim, std::int64_t patch, std::int64_t image_size)
    : tokens_((image_size / patch) * (image_size / patch)) {
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(3, dim, patch).stride(patch)));
}

at::Tensor VitPatchEmbedImpl::forward(const at::Tensor& x) {
  return proj(x).flatten(2).transpose(1, 2);
}

std::string VitPatchEmbedImpl::lower(GraphEmitter& g, const std::string& path,
                                     const std::string& x) const {
  const std::string y = g.apply(child_path(path, "proj"), *proj, x);
  return g.transpose(
      child_path(path, "tokens"),
      g.reshape(child_path(path, "grid"), y, {-1, proj->options.out_channels(), tokens_}),
      {0, 2, 1});
}

namespace {

// A block whose activations are recomputed in the backward pass (activation checkpointing):
// the forward keeps only the block's input; the backward runs the block again, with the same
// drop-path masks (inputs, not drawn again) and the same autocast state, and back-propagates
// through it.
class CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x, at::Tensor keep1,
                            at::Tensor keep2, std::int64_t block) {
    ctx->saved_data["block"] = block;
    const auto amp = current_autocast(x.device().type());
    ctx->saved_data["amp"] = amp ? static_cast<std::int64_t>(*amp) : std::int64_t{-1};
    ctx->save_for_backward({x, keep1, keep2});
    at::NoGradGuard no_grad;
    return reinterpret_cast<VitBlockImpl*>(block)->forward(x, keep1, keep2);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<VitBlockImpl*>(ctx->saved_data["block"].toInt());
    const std::int64_t amp = ctx->saved_data["amp"].toInt();
    const at::Tensor x = saved[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode grad_on(true);
      AutocastScope autocast(x.device().type(), amp < 0 ? std::nullopt
                                                        : std::optional<c10::ScalarType>(
                                                              static_cast<c10::ScalarType>(amp)));
      y = block->forward(x, saved[1], saved[2]);
    }
    torch::autograd::backward({y}, {grad[0]});
    return {x.grad(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace
}  // namespace detail

VisionTransformerImpl::VisionTransformerImpl(std::string name, const VitConfig& config,
                                             const BackboneOptions& options)
    : name_(std::move(name)), config_(config), options_(options) {
  const std::int64_t d = config.embed_dim, e = options.embedding_size();
  if (d < 1 || config.depth < 1 || config.num_heads < 1 || d % config.num_heads != 0 || e < 1 ||
      config.mask_ratio < 0 || config.mask_ratio >= 1 || config.drop_path < 0 ||
      config.drop_path >= 1) {
    throw ConfigError(fmt::format(
        "{}: embed_dim {} must be a positive multiple of num_heads {}, depth {} >= 1, "
        "embedding_size {} >= 1, mask_ratio {} and drop_path {} in [0, 1)",
        name_, d, config.num_heads, config.depth, e, config.mask_ratio, config.drop_path));
  }
  patch_embed_ = register_module("patch_embed", detail::VitPatchEmbed(d, kPatch, kImageSize));
  pos_embed_ = register_parameter("pos_embed", at::zeros({1, kTokens, d}));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.depth; ++i) {
    // Stochastic depth rising linearly from 0 at the first block to drop_path at the last.
    const double rate =
        config.depth == 1 ? 0.0 : config.drop_path * static_cast<double>(i) / (config.depth - 1);
    block_list_.push_back(detail::VitBlock(d, config.num_heads, kTokens, rate));
    blocks_->push_back(block_list_.back());
  }
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  feature_ = register_module(
      "feature",
      torch::nn::Sequential(torch::nn::Linear(torch::nn::LinearOptions(d * kTokens, d).bias(false)),
                            torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(d).eps(2e-5)),
                            torch::nn::Linear(torch::nn::LinearOptions(d, e).bias(false)),
                            torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(e).eps(2e-5))));
  mask_token_ = register_parameter("mask_token", at::zeros({1, 1, d}));
  // arcface_torch's initialisation: truncated normal (std 0.02) for the linear weights and the
  // position embedding, normal (std 0.02) for the mask token, zero biases, unit LayerNorms.
  at::NoGradGuard no_grad;
  const auto trunc_normal = [](at::Tensor& t) {
    t.normal_(0, 0.02).clamp_(-2.0, 2.0);  // timm truncates at ±2 (absolute), i.e. ±100 std
  };
  trunc_normal(pos_embed_);
  mask_token_.normal_(0, 0.02);
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* linear = m->as<torch::nn::Linear>()) {
      trunc_normal(linear->weight);
      if (linear->bias.defined()) linear->bias.zero_();
    }
  }
}

at::Tensor VisionTransformerImpl::forward(at::Tensor images) {
  const std::int64_t b = images.size(0), d = config_.embed_dim;
  at::Tensor x = patch_embed_(images) + pos_embed_;
  const bool mask = is_training() && config_.mask_ratio > 0;
  at::Tensor restore;
  if (mask) {
    // Per-sample random masking: keep the tokens of the lowest noise, remember the order.
    const auto keep =
        static_cast<std::int64_t>(static_cast<double>(kTokens) * (1 - config_.mask_ratio));
    const at::Tensor shuffle = at::argsort(at::rand({b, kTokens}, x.options().dtype(at::kFloat)),
                                           /*dim=*/int64_t{1}, /*descending=*/false);
    restore = at::argsort(shuffle, /*dim=*/int64_t{1}, /*descending=*/false);
    x = at::gather(x, 1, shuffle.slice(1, 0, keep).unsqueeze(-1).expand({b, keep, d}));
  }
  for (std::size_t i = 0; i < block_list_.size(); ++i) {
    auto& block = block_list_[i];
    const auto [keep1, keep2] = block->drop_path_masks(b, x.options().dtype(at::kFloat));
    if (config_.checkpointing && is_training() && at::GradMode::is_enabled()) {
      // Autograd functions take defined tensors: an empty one stands for "no mask".
      const auto defined = [&](const at::Tensor& t) { return t.defined() ? t : x.new_empty({0}); };
      x = detail::CheckpointedBlock::apply(x, defined(keep1), defined(keep2),
                                           reinterpret_cast<std::int64_t>(block.get()));
    } else {
      x = block->forward(x, keep1, keep2);
    }
  }
  x = norm_(x.to(at::kFloat));
  if (mask) {
    // The masked positions get the mask token, in the original order.
    const at::Tensor tokens = mask_token_.to(x.scalar_type()).expand({b, kTokens - x.size(1), d});
    x = at::gather(at::cat({x, tokens}, 1), 1, restore.unsqueeze(-1).expand({b, kTokens, d}));
  }
  return feature_->forward(x.reshape({b, kTokens * d}));
}

std::int64_t VisionTransformerImpl::multiply_adds() const {
  const std::int64_t t = kTokens, d = config_.embed_dim, e = options_.embedding_size();
  const std::int64_t patch = t * d * 3 * kPatch * kPatch;
  const std::int64_t block = t * (3 * d * d + d * d + 8 * d * d) + 2 * t * t * d;
  return patch + config_.depth * block + t * d * d + d * e;
}

std::string VisionTransformerImpl::lower(GraphEmitter& g, const std::string& path,
                                         const std::string& x) const {
  // Inference: no token masking, no drop path. The blocks work on [N·144, D] rows, where the
  // linear layers and norms act per token; attention reshapes to the sequence itself.
  const auto named = [&](const char* name) { return child_path(path, name); };
  const std::int64_t d = config_.embed_dim;
  std::string y = g.apply(named("patch_embed"), *patch_embed_, x);
  y = g.add(named("positioned"), y, g.constant(named("pos_embed"), pos_embed_));
  y = g.reshape(named("rows"), y, {-1, d});
  for (std::size_t i = 0; i < block_list_.size(); ++i) {
    y = g.apply(child_path(named("blocks"), std::to_string(i)), *block_list_[i], y);
  }
  y = g.apply(named("norm"), *norm_, y);
  y = g.reshape(named("features"), y, {-1, kTokens * d});
  return g.apply(named("feature"), *feature_, y);
}

}  // namespace facetrain::models
