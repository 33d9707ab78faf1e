#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>
#include <string_view>

#include "framework/config/config.h"

// The ranges of the command line's numeric options, in one place. An option that sets what a
// configuration key sets takes the key's range from the schema (its one owner); the others state
// theirs here. A value outside is a usage error naming the option, before any arithmetic or
// allocation uses it.
namespace facetrain::cli {

// The range of configuration key `name` (which has both bounds).
inline CLI::Range key_range(std::string_view name) {
  const ConfigKey& key = *ConfigSchema::instance().find(name);
  return CLI::Range(*key.min, *key.max);
}

// Images per forward pass: eval.batch_size's range.
inline CLI::Range batch_range() { return key_range("eval.batch_size"); }
// Side of an aligned face in pixels: data.image_size's range.
inline CLI::Range image_side_range() { return key_range("data.image_size"); }
// A deadline in seconds: dist.timeout_s's range.
inline CLI::Range seconds_range() { return key_range("dist.timeout_s"); }
// Images per shard: at most, so any count (one shard holds them all when it exceeds the dataset).
inline CLI::Range shard_size_range() {
  return CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max());
}
// Identities, images per identity and pairs of a synthetic set.
inline CLI::Range synth_count_range(std::int64_t lo) {
  return CLI::Range(lo, std::int64_t{100000000});
}
// A message size in MB for the bandwidth test.
inline CLI::Range megabytes_range() { return CLI::Range(1.0, 65536.0); }

}  // namespace facetrain::cli
