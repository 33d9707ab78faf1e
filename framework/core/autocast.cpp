#include "framework/core/autocast.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include "framework/core/error.h"

namespace facetrain {

AutocastScope::AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype)
    : device_(device),
      was_enabled_(at::autocast::is_autocast_enabled(device)),
      was_dtype_(at::autocast::get_autocast_dtype(device)),
      turned_on_(dtype.has_value()) {
  if (dtype) at::autocast::set_autocast_dtype(device_, *dtype);
  at::autocast::set_autocast_enabled(device_, turned_on_);
}

AutocastScope::~AutocastScope() {
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
  // Leaving the outermost region: drop the casts autocast cached for it.
  if (turned_on_ && !was_enabled_) at::autocast::clear_cache();
}

std::optional<c10::ScalarType> current_autocast(c10::DeviceType device) {
  if (!at::autocast::is_autocast_enabled(device)) return std::nullopt;
  return at::autocast::get_autocast_dtype(device);
}

std::optional<c10::ScalarType> autocast_dtype(const std::string& amp) {
  if (amp == "bf16") return at::kBFloat16;
  if (amp == "fp16") return at::kHalf;
  if (amp == "none") return std::nullopt;
  throw ConfigError(fmt::format("train.amp = \"{}\": expected none, bf16 or fp16", amp));
}

}  // namespace facetrain
