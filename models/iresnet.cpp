#include "models/iresnet.h"

#include <torch/nn.h>

#include "framework/core/autocast.h"

namespace facetrain::models {
namespace {

torch::nn::Conv2d conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

torch::nn::BatchNorm2d bn2d(std::int64_t c) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-5));
}

}  // namespace

IBasicBlockImpl::IBasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride,
                                 bool downsample) {
  // Registration order follows insightface's, so state-dict key order matches too.
  bn1_ = register_module("bn1", bn2d(inplanes));
  conv1_ = register_module("conv1", conv3x3(inplanes, planes, 1));
  bn2_ = register_module("bn2", bn2d(planes));
  prelu_ =
      register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(planes)));
  conv2_ = register_module("conv2", conv3x3(planes, planes, stride));
  bn3_ = register_module("bn3", bn2d(planes));
  if (downsample) {
    downsample_ = register_module(
        "downsample",
        torch::nn::Sequential(
            torch::nn::Conv2d(
                torch::nn::Conv2dOptions(inplanes, planes, 1).stride(stride).bias(false)),
            bn2d(planes)));
  }
}

at::Tensor IBasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = bn3_(conv2_(prelu_(bn2_(conv1_(bn1_(x))))));
  return out + (downsample_ ? downsample_->forward(x) : x);
}

std::string IBasicBlockImpl::lower(GraphEmitter& g, const std::string& path,
                                   const std::string& x) const {
  std::string out = x;
  for (const auto* name : {"bn1", "conv1", "bn2", "prelu", "conv2", "bn3"}) {
    out = g.apply(child_path(path, name), *named_children()[name], out);
  }
  const std::string shortcut =
      downsample_ ? g.apply(child_path(path, "downsample"), *downsample_, x) : x;
  return g.add(child_path(path, "add"), out, shortcut);
}

IResNetImpl::IResNetImpl(std::string network, std::array<std::int64_t, 4> layers,
                         const BackboneOptions& options)
    : network_(std::move(network)), options_(options) {
  conv1_ = register_module(
      "conv1",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 3).stride(1).padding(1).bias(false)));
  bn1_ = register_module("bn1", bn2d(64));
  prelu_ = register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(64)));
  std::int64_t inplanes = 64;
  layer1_ = register_module("layer1", make_stage(inplanes, 64, layers[0]));
  layer2_ = register_module("layer2", make_stage(inplanes, 128, layers[1]));
  layer3_ = register_module("layer3", make_stage(inplanes, 256, layers[2]));
  layer4_ = register_module("layer4", make_stage(inplanes, 512, layers[3]));
  bn2_ = register_module("bn2", bn2d(512));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout()));
  fc_ = register_module("fc", torch::nn::Linear(512 * 7 * 7, options.embedding_size()));
  features_ = register_module(
      "features",
      torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(options.embedding_size()).eps(1e-5)));

  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::normal_(conv->weight, 0.0, 0.1);
    } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
  features_->weight.fill_(1.0);
  features_->weight.set_requires_grad(false);
}

torch::nn::Sequential IResNetImpl::make_stage(std::int64_t& inplanes, std::int64_t planes,
                                              std::int64_t blocks) {
  torch::nn::Sequential stage;
  stage->push_back(IBasicBlock(inplanes, planes, 2, /*downsample=*/true));
  inplanes = planes;
  for (std::int64_t i = 1; i < blocks; ++i) stage->push_back(IBasicBlock(planes, planes, 1, false));
  return stage;
}

at::Tensor IResNetImpl::forward(at::Tensor x) {
  x = prelu_(bn1_(conv1_(x)));
  x = layer4_->forward(layer3_->forward(layer2_->forward(layer1_->forward(x))));
  x = dropout_(torch::flatten(bn2_(x), 1));
  // The embedding head stays in float32 inside an autocast region.
  AutocastScope fp32(x.device().type(), std::nullopt);
  return features_(fc_(detail::to_float32_if_reduced(x)));
}

std::string IResNetImpl::lower(GraphEmitter& g, const std::string& path,
                               const std::string& x) const {
  std::string y = x;
  for (const auto* name :
       {"conv1", "bn1", "prelu", "layer1", "layer2", "layer3", "layer4", "bn2"}) {
    y = g.apply(child_path(path, name), *named_children()[name], y);
  }
  y = g.flatten(child_path(path, "flatten"), y);
  for (const auto* name : {"dropout", "fc", "features"}) {
    y = g.apply(child_path(path, name), *named_children()[name], y);
  }
  return y;
}

}  // namespace facetrain::models
