#include "models/backbone.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/nn.h>

#include <cmath>

#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "models/iresnet.h"
#include "models/mobilefacenet.h"

namespace facetrain::models {

std::vector<std::string> backbone_names() {
  return {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200", "mbf"};
}

std::shared_ptr<BackboneImpl> make_backbone(const std::string& name,
                                            const BackboneOptions& options) {
  if (options.embedding_size() < 1) {
    throw ConfigError(fmt::format("backbone {}: embedding_size = {}: must be >= 1", name,
                                  options.embedding_size()));
  }
  if (!(options.dropout() >= 0 && options.dropout() < 1)) {
    throw ConfigError(
        fmt::format("backbone {}: dropout = {}: must be in [0, 1)", name, options.dropout()));
  }
  if (name == "iresnet18")
    return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{2, 2, 2, 2}, options);
  if (name == "iresnet34")
    return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{3, 4, 6, 3}, options);
  if (name == "iresnet50")
    return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{3, 4, 14, 3}, options);
  if (name == "iresnet100")
    return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{3, 13, 30, 3}, options);
  if (name == "iresnet200")
    return std::make_shared<IResNetImpl>(name, std::array<std::int64_t, 4>{6, 26, 60, 6}, options);
  if (name == "mbf") return std::make_shared<MobileFaceNetImpl>(options);
  throw ConfigError(fmt::format("unknown network '{}': known networks are {} (did you mean '{}'?)",
                                name, join(backbone_names(), ", "),
                                nearest_word(name, backbone_names())));
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

namespace detail {

AutocastOff::AutocastOff(c10::DeviceType device_type)
    : device_type_(device_type), was_enabled_(at::autocast::is_autocast_enabled(device_type)) {
  if (was_enabled_) at::autocast::set_autocast_enabled(device_type_, false);
}

AutocastOff::~AutocastOff() {
  if (was_enabled_) at::autocast::set_autocast_enabled(device_type_, true);
}

at::Tensor to_float32_if_reduced(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return (t == at::kHalf || t == at::kBFloat16) ? x.to(at::kFloat) : x;
}

}  // namespace detail
}  // namespace facetrain::models
