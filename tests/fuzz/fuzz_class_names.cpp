// classes.tsv: any bytes parsed (refused only with facetrain::Error), and names of any bytes
// written and read back exactly. The input's first byte separates the names of the second half.
#include <string>
#include <string_view>
#include <vector>

#include "data/shards/class_names.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    facetrain::data::parse_class_names(bytes, "classes.tsv");
  } catch (const facetrain::Error&) {
  }
  if (bytes.empty()) return 0;
  std::vector<std::string> names(1);
  for (const char c : bytes.substr(1)) {
    if (c == bytes[0]) {
      names.emplace_back();
    } else {
      names.back() += c;
    }
  }
  const auto back = facetrain::data::parse_class_names(facetrain::data::class_names_tsv(names), "w");
  if (back != names) __builtin_trap();
  return 0;
}
