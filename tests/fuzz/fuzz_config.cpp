// A TOML recipe from arbitrary text: parsed, checked against the schema, every key read.
#include <string_view>

#include "framework/config/config.h"
#include "framework/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto config = facetrain::Config::from_string(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    (void)config.to_toml();
  } catch (const facetrain::Error&) {
  }
  return 0;
}
