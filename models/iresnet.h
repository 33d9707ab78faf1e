#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <array>

#include "models/backbone.h"

namespace facetrain::models {

// The improved ResNet block of ArcFace (IBasicBlock):
//   out = BN3(conv2(PReLU(BN2(conv1(BN1(x)))))) + shortcut(x),
// conv1 3×3 stride 1, conv2 3×3 with the block's stride, shortcut = x or conv1×1 + BN.
class IBasicBlockImpl : public torch::nn::Module, public Lowerable {
 public:
  IBasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, bool downsample);
  at::Tensor forward(const at::Tensor& x);
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;

 private:
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::PReLU prelu_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(IBasicBlock);

// IResNet (Deng et al., ArcFace): a 3×3 stem (64 channels, stride 1) + PReLU, four stages of
// IBasicBlocks (64, 128, 256, 512 channels, each starting with stride 2: 112 → 7), BN, dropout,
// a linear layer from 512·7·7 to the embedding, and a BatchNorm1d whose scale is fixed at 1.
// `layers` are the blocks per stage: iresnet18 {2,2,2,2}, 34 {3,4,6,3}, 50 {3,4,14,3},
// 100 {3,13,30,3}, 200 {6,26,60,6}.
class IResNetImpl : public BackboneImpl {
 public:
  IResNetImpl(std::string network, std::array<std::int64_t, 4> layers,
              const BackboneOptions& options);
  at::Tensor forward(at::Tensor images) override;
  std::string lower(GraphEmitter& graph, const std::string& path,
                    const std::string& x) const override;
  std::int64_t embedding_size() const override { return options_.embedding_size(); }
  std::string network() const override { return network_; }

 private:
  torch::nn::Sequential make_stage(std::int64_t& inplanes, std::int64_t planes,
                                   std::int64_t blocks);

  std::string network_;
  BackboneOptions options_;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::PReLU prelu_{nullptr};
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr}, layer4_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc_{nullptr};
  torch::nn::BatchNorm1d features_{nullptr};
};
TORCH_MODULE(IResNet);

}  // namespace facetrain::models
