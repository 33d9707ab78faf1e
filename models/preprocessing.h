#pragma once

#include <cstdint>

namespace facetrain::models {

// How an aligned face becomes a backbone's input, as insightface trains, evaluates and deploys
// it: uint8 pixels in `channels` order, size × size, then (x − mean) / std, channels first
// (float32 [N, 3, size, size] in [−1, 1]). Training, evaluation, embedding and export read it
// here; exported models carry it in their metadata.
struct Preprocessing {
  std::int64_t size = 112;
  double mean = 127.5;
  double std = 127.5;
  const char* channels = "RGB";
};

inline constexpr Preprocessing kPreprocessing{};

}  // namespace facetrain::models
