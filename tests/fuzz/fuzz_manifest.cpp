// A dataset folder's manifest.json from arbitrary bytes.
#include "data/shards/manifest.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = facetrain::fuzz::scratch();
  facetrain::fuzz::write_file(dir / "manifest.json", data, size);
  try {
    facetrain::data::Manifest::read(dir);
  } catch (const facetrain::Error&) {
  }
  return 0;
}
