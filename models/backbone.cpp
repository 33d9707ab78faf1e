#include "models/backbone.h"

#include <fmt/format.h>
#include <torch/nn.h>

#include <cmath>

#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "models/iresnet.h"
#include "models/mobilefacenet.h"
#include "models/vit.h"

namespace facetrain::models {

namespace {

using Factory = std::shared_ptr<BackboneImpl> (*)(const std::string& name,
                                                  const BackboneOptions& options);

struct Entry {
  std::string name;                  // facetrain's name (what network() returns)
  std::vector<std::string> aliases;  // arcface_torch's names for it
  Factory make;
  std::string embedding_weight;  // the weight whose rows are the embedding's length
};

// IResNet with blocks (A, B, C, D) in its four stages.
template <std::int64_t A, std::int64_t B, std::int64_t C, std::int64_t D>
std::shared_ptr<BackboneImpl> iresnet(const std::string& name, const BackboneOptions& options) {
  return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{A, B, C, D}, options);
}

std::shared_ptr<BackboneImpl> mobilefacenet(const std::string&, const BackboneOptions& options) {
  return std::make_shared<MobileFaceNetImpl>(options);
}

// arcface_torch's Vision Transformers (backbones/__init__.py): width, depth, heads, drop-path
// rate, mask ratio and activation checkpointing by name.
template <std::int64_t Dim, std::int64_t Depth, int DropPathPct, int MaskPct, bool Checkpointing>
std::shared_ptr<BackboneImpl> vit(const std::string& name, const BackboneOptions& options) {
  VitConfig c;
  c.embed_dim = Dim;
  c.depth = Depth;
  c.num_heads = 8;
  c.drop_path = DropPathPct / 100.0;
  c.mask_ratio = MaskPct / 100.0;
  c.checkpointing = options.checkpointing() < 0 ? Checkpointing : options.checkpointing() > 0;
  return std::make_shared<VisionTransformerImpl>(name, c, options);
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {"iresnet18", {"r18"}, &iresnet<2, 2, 2, 2>, "fc.weight"},
      {"iresnet34", {"r34"}, &iresnet<3, 4, 6, 3>, "fc.weight"},
      {"iresnet50", {"r50"}, &iresnet<3, 4, 14, 3>, "fc.weight"},
      {"iresnet100", {"r100"}, &iresnet<3, 13, 30, 3>, "fc.weight"},
      {"iresnet200", {"r200"}, &iresnet<6, 26, 60, 6>, "fc.weight"},
      {"mbf", {}, &mobilefacenet, "features.layers.2.weight"},
      {"vit_t", {}, &vit<256, 12, 10, 10, false>, "feature.2.weight"},
      {"vit_t_dp005_mask0", {}, &vit<256, 12, 5, 0, false>, "feature.2.weight"},
      {"vit_s", {}, &vit<512, 12, 10, 10, false>, "feature.2.weight"},
      {"vit_s_dp005_mask_0", {}, &vit<512, 12, 5, 0, false>, "feature.2.weight"},
      {"vit_b", {}, &vit<512, 24, 10, 10, true>, "feature.2.weight"},
      {"vit_b_dp005_mask_005", {}, &vit<512, 24, 5, 5, true>, "feature.2.weight"},
      {"vit_l", {"vit_l_dp005_mask_005"}, &vit<768, 24, 5, 5, true>, "feature.2.weight"},
      {"vit_h", {}, &vit<1024, 48, 10, 0, true>, "feature.2.weight"},
  };
  return table;
}

const Entry& find_entry(const std::string& name) {
  for (const auto& e : entries()) {
    if (e.name == name) return e;
    for (const auto& alias : e.aliases) {
      if (alias == name) return e;
    }
  }
  std::vector<std::string> all;
  for (const auto& e : entries()) {
    all.push_back(e.name);
    all.insert(all.end(), e.aliases.begin(), e.aliases.end());
  }
  throw ConfigError(fmt::format("unknown network '{}': known networks are {} (did you mean '{}'?)",
                                name, join(backbone_names(), ", "), nearest_word(name, all)));
}

}  // namespace

std::string embedding_weight_name(const std::string& network) {
  return find_entry(network).embedding_weight;
}

std::vector<std::string> backbone_names() {
  std::vector<std::string> out;
  for (const auto& e : entries()) out.push_back(e.name);
  return out;
}

std::string backbone_names_help() {
  std::vector<std::string> names, aliases;
  for (const auto& e : entries()) {
    names.push_back(e.name);
    aliases.insert(aliases.end(), e.aliases.begin(), e.aliases.end());
  }
  return fmt::format("{} (or arcface_torch's {})", join(names, ", "), join(aliases, ", "));
}

std::string canonical_backbone_name(const std::string& name) {
  return find_entry(name).name;
}

std::shared_ptr<BackboneImpl> make_backbone(const std::string& name,
                                            const BackboneOptions& options) {
  const Entry& entry = find_entry(name);
  if (options.embedding_size() < 1) {
    throw ConfigError(fmt::format("backbone {}: embedding_size = {}: must be >= 1", name,
                                  options.embedding_size()));
  }
  if (!(options.dropout() >= 0 && options.dropout() < 1)) {
    throw ConfigError(
        fmt::format("backbone {}: dropout = {}: must be in [0, 1)", name, options.dropout()));
  }
  return entry.make(entry.name, options);
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

namespace detail {

at::Tensor to_float32_if_reduced(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return (t == at::kHalf || t == at::kBFloat16) ? x.to(at::kFloat) : x;
}

}  // namespace detail
}  // namespace facetrain::models
