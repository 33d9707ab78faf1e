// The verification-pack pickle interpreter on arbitrary bytes.
#include "data/verification/pickle_pack.h"
#include "framework/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    facetrain::data::parse_pickle_pack(std::vector<std::uint8_t>(data, data + size), "fuzz.bin");
  } catch (const facetrain::Error&) {
  }
  return 0;
}
