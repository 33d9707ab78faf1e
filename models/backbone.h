#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "models/lowering.h"

namespace facetrain::models {

// Options every backbone takes.
struct BackboneOptions {
  // Length of the embedding (> 0).
  TORCH_ARG(std::int64_t, embedding_size) = 512;
  // Dropout before the embedding FC, in [0, 1) (iresnet only, as in insightface).
  TORCH_ARG(double, dropout) = 0.0;
  // Activation checkpointing (Vision Transformers only): −1 the network's default (on for vit_b,
  // vit_l, vit_h), 0 off, 1 on.
  TORCH_ARG(int, checkpointing) = -1;
};

// A face-embedding network: float images [N, 3, 112, 112] (RGB, normalised to [-1, 1]) to
// embeddings [N, embedding_size]. Parameter and buffer names and shapes match insightface's
// arcface_torch definitions, so state dicts map one-to-one. Under autocast the embedding head
// (iresnet: the fc and features layers; mbf: conv_sep and features) runs in float32, as there.
// Every backbone lowers itself for export (models/lowering.h).
class BackboneImpl : public torch::nn::Module, public Lowerable {
 public:
  virtual at::Tensor forward(at::Tensor images) = 0;
  virtual std::int64_t embedding_size() const = 0;
  virtual std::string network() const = 0;
};

// The backbone registry (models/backbone.cpp): every network facetrain trains, evaluates and
// exports, by its name and arcface_torch's (get_model's) aliases. The configuration
// (model.network), the CLI's --network and the checkpoint and weight loaders all resolve names
// through the functions below.

// The registered names: iresnet18 … iresnet200, mbf, and the Vision Transformers vit_t, vit_s,
// vit_b, vit_l, vit_h with arcface_torch's WebFace42M variants (vit_t_dp005_mask0, …).
std::vector<std::string> backbone_names();
// The names and aliases in one line, for help texts.
std::string backbone_names_help();

// The registered name of `name` (itself or an alias: r50 → iresnet50). An unknown name throws
// ConfigError listing the known ones and the nearest.
std::string canonical_backbone_name(const std::string& name);

// The weight of `network` whose rows are the embedding's length (iresnet: fc.weight; mbf:
// features.layers.2.weight; ViT: feature.2.weight).
std::string embedding_weight_name(const std::string& network);

// A new backbone with insightface's initialisation; `name` may be an alias. An unknown name
// throws ConfigError listing the known ones; invalid options throw ConfigError naming the option.
std::shared_ptr<BackboneImpl> make_backbone(const std::string& name,
                                            const BackboneOptions& options = {});

// Number of elements of all parameters (trainable or not).
std::int64_t parameter_count(const torch::nn::Module& module);

namespace detail {

// `x` in float32 when it is float16 or bfloat16 (autocast output); unchanged otherwise.
at::Tensor to_float32_if_reduced(const at::Tensor& x);

}  // namespace detail
}  // namespace facetrain::models
