// A checkpoint's state.json (its metadata: position, world, files with sizes and checksums) as
// `--resume` reads it from a folder that may hold anything: parsed, and when accepted, written
// back and parsed again to the same values.
#include <string_view>

#include "app/train/checkpoint_state.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using facetrain::train::StateFile;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  StateFile first;
  try {
    first = facetrain::train::parse_state(text, "state.json");
  } catch (const facetrain::Error&) {
    return 0;
  }
  const StateFile again =
      facetrain::train::parse_state(facetrain::train::state_json(first), "written");
  if (again.state.step != first.state.step || again.state.consumed != first.state.consumed ||
      again.state.world_size != first.state.world_size || again.files.size() != first.files.size()) {
    __builtin_trap();
  }
  return 0;
}
