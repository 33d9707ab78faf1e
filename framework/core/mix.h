#pragma once

#include <cstdint>

namespace facetrain {

// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`, the same on every platform. Used to
// derive independent, reproducible random streams from (seed, epoch, index, ...).
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace facetrain
