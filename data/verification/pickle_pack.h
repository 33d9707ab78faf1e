#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace facetrain::data {

// The contents of an insightface verification pack's pickle, as stored: the 2N images' bytes
// and the N issame flags.
struct PickledPack {
  std::vector<std::vector<std::uint8_t>> images;
  std::vector<std::uint8_t> issame;
};

// Interprets a verification pack's pickle (see bin_pack.h for what is accepted) without running
// any pickle code. Malformed or hostile input — an unknown opcode or global, a truncated file,
// another structure, images referenced many times, nesting a million deep — is a DataError
// naming `source` and what was found.
PickledPack parse_pickle_pack(const std::vector<std::uint8_t>& bytes, const std::string& source);

}  // namespace facetrain::data
