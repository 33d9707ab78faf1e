#include "models/mobilefacenet.h"

#include <torch/nn.h>

#include "framework/core/autocast.h"

namespace facetrain::models {
namespace {

using torch::nn::Conv2dOptions;

using Block = detail::MbfBlock;

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                       std::int64_t pad, std::int64_t groups) {
  return torch::nn::Conv2d(
      Conv2dOptions(in, out, k).stride(stride).padding(pad).groups(groups).bias(false));
}

// Conv → BN → PReLU.
Block conv_block(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                 std::int64_t pad, std::int64_t groups = 1) {
  return Block(
      torch::nn::Sequential(conv(in, out, k, stride, pad, groups), torch::nn::BatchNorm2d(out),
                            torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(out))),
      false);
}

// Conv → BN.
Block linear_block(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                   std::int64_t pad, std::int64_t groups = 1) {
  return Block(
      torch::nn::Sequential(conv(in, out, k, stride, pad, groups), torch::nn::BatchNorm2d(out)),
      false);
}

Block depth_wise(std::int64_t in, std::int64_t out, bool residual, std::int64_t stride,
                 std::int64_t groups) {
  return Block(torch::nn::Sequential(conv_block(in, groups, 1, 1, 0),
                                     conv_block(groups, groups, 3, stride, 1, groups),
                                     linear_block(groups, out, 1, 1, 0)),
               residual);
}

Block residual_stage(std::int64_t c, std::int64_t blocks, std::int64_t groups) {
  torch::nn::Sequential seq;
  for (std::int64_t i = 0; i < blocks; ++i) seq->push_back(depth_wise(c, c, true, 1, groups));
  return Block(seq, false);
}

}  // namespace

namespace detail {

MbfBlockImpl::MbfBlockImpl(torch::nn::Sequential layers, bool residual) : residual_(residual) {
  layers_ = register_module("layers", std::move(layers));
}

at::Tensor MbfBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = layers_->forward(x);
  return residual_ ? x + y : y;
}

std::string MbfBlockImpl::lower(GraphEmitter& g, const std::string& path,
                                const std::string& x) const {
  const std::string y = g.apply(child_path(path, "layers"), *layers_, x);
  return residual_ ? g.add(child_path(path, "add"), x, y) : y;
}

}  // namespace detail

MobileFaceNetImpl::MobileFaceNetImpl(const BackboneOptions& options,
                                     std::array<std::int64_t, 4> blocks, std::int64_t scale)
    : options_(options) {
  const std::int64_t c64 = 64 * scale;
  const std::int64_t c128 = 128 * scale;
  layers_ = register_module("layers", torch::nn::ModuleList());
  layers_->push_back(conv_block(3, c64, 3, 2, 1));
  if (blocks[0] == 1) {
    layers_->push_back(conv_block(c64, c64, 3, 1, 1, 64));
  } else {
    layers_->push_back(residual_stage(c64, blocks[0], 128));
  }
  layers_->push_back(depth_wise(c64, c64, false, 2, 128));
  layers_->push_back(residual_stage(c64, blocks[1], 128));
  layers_->push_back(depth_wise(c64, c128, false, 2, 256));
  layers_->push_back(residual_stage(c128, blocks[2], 256));
  layers_->push_back(depth_wise(c128, c128, false, 2, 512));
  layers_->push_back(residual_stage(c128, blocks[3], 256));
  conv_sep_ = register_module("conv_sep", conv_block(c128, 512, 1, 1, 0));
  features_ = register_module(
      "features",
      Block(torch::nn::Sequential(
                linear_block(512, 512, 7, 1, 0, 512), torch::nn::Flatten(),
                torch::nn::Linear(
                    torch::nn::LinearOptions(512, options.embedding_size()).bias(false)),
                torch::nn::BatchNorm1d(options.embedding_size())),
            false));

  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    } else if (auto* fc = m->as<torch::nn::Linear>()) {
      torch::nn::init::kaiming_normal_(fc->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

at::Tensor MobileFaceNetImpl::forward(at::Tensor x) {
  for (const auto& layer : *layers_) x = layer->as<detail::MbfBlockImpl>()->forward(x);
  // The embedding head stays in float32 inside an autocast region.
  AutocastScope fp32(x.device().type(), std::nullopt);
  return features_->forward(conv_sep_->forward(detail::to_float32_if_reduced(x)));
}

std::string MobileFaceNetImpl::lower(GraphEmitter& g, const std::string& path,
                                     const std::string& x) const {
  std::string y = g.apply(child_path(path, "layers"), *layers_, x);
  y = g.apply(child_path(path, "conv_sep"), *conv_sep_, y);
  return g.apply(child_path(path, "features"), *features_, y);
}

}  // namespace facetrain::models
