#include "framework/core/error.h"

namespace facetrain {

int exit_code_for(const std::exception& e) noexcept {
  if (dynamic_cast<const UsageError*>(&e) != nullptr) return 2;
  if (dynamic_cast<const ConfigError*>(&e) != nullptr) return 2;
  return 1;
}

}  // namespace facetrain
