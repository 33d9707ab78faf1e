// The RecordIO reader on an arbitrary index and record file: the input's first 4 bytes give the
// length of the .idx text, the rest after it is the .rec file. Every indexed record is read.
#include <cstring>

#include "data/recordio/recordio_reader.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t idx_size = 0;
  std::memcpy(&idx_size, data, 4);
  idx_size = static_cast<std::uint32_t>(std::min<std::size_t>(idx_size, size - 4));
  const auto dir = facetrain::fuzz::scratch();
  facetrain::fuzz::write_file(dir / "t.idx", data + 4, idx_size);
  facetrain::fuzz::write_file(dir / "t.rec", data + 4 + idx_size, size - 4 - idx_size);
  try {
    facetrain::data::RecordIOReader reader(dir / "t.rec");
    std::size_t n = 0;
    for (const auto key : reader.keys()) {
      if (++n > 64) break;
      try {
        reader.read_image(key);
      } catch (const facetrain::Error&) {
      }
    }
  } catch (const facetrain::Error&) {
  }
  return 0;
}
