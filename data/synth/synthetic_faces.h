#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

#include "data/shards/manifest.h"

namespace facetrain::data {

// The most images a synthetic set renders (training images, pair images, benchmark images): far
// beyond any test, and bounded so that no option can size an allocation past memory.
inline constexpr std::int64_t kMaxSyntheticImages = 10'000'000;

struct SynthOptions {
  std::int64_t identities = 200;   // training identities (labels 0 … identities − 1)
  std::int64_t per_identity = 20;  // training images per identity
  std::uint64_t seed = 1;
  std::int64_t shard_size = 100000;
  std::int64_t pairs = 0;               // verification pairs over held-out identities (0: none)
  std::int64_t heldout_identities = 0;  // 0: max(10, identities / 5)
};

// Renders a synthetic face dataset (see face_renderer.h) into `out` (a dataset folder), and
// with options.pairs > 0 a verification set at `pairs_path` over identities that are not in the
// training set: half same-identity pairs (two different images of one identity), half
// different-identity pairs. Everything is a function of the seed. `progress(done, total)`.
Manifest synthesize_faces(
    const std::filesystem::path& out, const std::filesystem::path& pairs_path,
    const SynthOptions& options,
    const std::function<void(std::int64_t, std::int64_t)>& progress = nullptr);

// Renders `count` images on every core, `job(i)` giving image i; returns them in order. Each
// image depends only on its index, so the result does not depend on the thread count.
std::vector<std::vector<std::uint8_t>> render_in_parallel(
    std::int64_t count, const std::function<std::vector<std::uint8_t>(std::int64_t)>& job);

// One rendered, JPEG-encoded sample (deterministic for its arguments).
std::vector<std::uint8_t> synthetic_face_jpeg(std::uint64_t seed, std::int64_t identity,
                                              std::int64_t sample);

}  // namespace facetrain::data
