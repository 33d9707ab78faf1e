#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include <array>

#include "models/backbone.h"

namespace facetrain::models {
namespace detail {

// One of insightface's mbf building blocks (ConvBlock, LinearBlock, DepthWise, Residual, GDC):
// a module holding one Sequential named "layers", with an optional identity shortcut, so that
// parameter names match theirs ("features.layers.2.weight").
class MbfBlockImpl : public torch::nn::Module, public Lowerable {
 public:
  MbfBlockImpl(torch::nn::Sequential layers, bool residual);
  at::Tensor forward(const at::Tensor& x);
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  // Whether forward adds the input to the layers' output.
  bool residual() const { return residual_; }

 private:
  torch::nn::Sequential layers_{nullptr};
  bool residual_;
};
TORCH_MODULE(MbfBlock);

}  // namespace detail

// MobileFaceNet as in arcface_torch (`mbf`, after cavaface): a stride-2 3×3 stem, a grouped 3×3
// conv, then depthwise-separable bottlenecks (DepthWise: 1×1 expand + PReLU, grouped 3×3 +
// PReLU, 1×1 linear projection; residual inside Residual stages) at 128, 128, 256, 256 channels
// (scale 2) with blocks {1, 4, 6, 2}, a 1×1 conv to 512, and the GDC head: 7×7 depthwise linear
// conv, flatten, linear (no bias) to the embedding, BatchNorm1d.
class MobileFaceNetImpl : public BackboneImpl {
 public:
  MobileFaceNetImpl(const BackboneOptions& options,
                    std::array<std::int64_t, 4> blocks = {1, 4, 6, 2}, std::int64_t scale = 2);
  at::Tensor forward(at::Tensor images) override;
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  std::int64_t embedding_size() const override { return options_.embedding_size(); }
  std::string network() const override { return "mbf"; }

 private:
  BackboneOptions options_;
  torch::nn::ModuleList layers_{nullptr};
  detail::MbfBlock conv_sep_{nullptr}, features_{nullptr};
};
TORCH_MODULE(MobileFaceNet);

}  // namespace facetrain::models
