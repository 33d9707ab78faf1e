#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>

#include "framework/core/checked.h"

// The ranges of the command line's numeric options, in one place: a count from 1 to what a run
// can use, an image side the decoders accept, a duration the clock holds. A value outside is a
// usage error naming the option, before any arithmetic or allocation uses it.
namespace facetrain::cli {

// Images per forward pass (eval.batch_size's range).
inline CLI::Range batch_range() { return CLI::Range(std::int64_t{1}, std::int64_t{65536}); }
// Side of an aligned face in pixels.
inline CLI::Range image_side_range() { return CLI::Range(std::int64_t{8}, std::int64_t{4096}); }
// Images per shard: at most, so any count (one shard holds them all when it exceeds the dataset).
inline CLI::Range shard_size_range() {
  return CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max());
}
// Identities, images per identity and pairs of a synthetic set.
inline CLI::Range synth_count_range(std::int64_t lo) {
  return CLI::Range(lo, std::int64_t{100000000});
}
// A deadline in seconds.
inline CLI::Range seconds_range() { return CLI::Range(0.001, checked::kMaxSeconds); }
// A message size in MB for the bandwidth test.
inline CLI::Range megabytes_range() { return CLI::Range(1.0, 65536.0); }

}  // namespace facetrain::cli
