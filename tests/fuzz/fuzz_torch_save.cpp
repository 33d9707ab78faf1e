// The torch.save reader (zip archive, pickle, tensor views) on arbitrary bytes: what
// `--weights FILE` and every checkpoint file go through.
#include "framework/core/error.h"
#include "models/torch_save_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto saved = facetrain::models::read_torch_save(data, size, "fuzz.pt");
    // Touch every byte a tensor may read: the reader promised they are inside the input.
    unsigned sum = 0;
    for (const auto& s : saved.storages) {
      for (const char c : s.bytes) sum += static_cast<unsigned char>(c);
    }
    if (sum == 0xffffffffu) return 1;
  } catch (const facetrain::Error&) {
  }
  return 0;
}
