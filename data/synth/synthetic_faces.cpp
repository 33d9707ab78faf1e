#include "data/synth/synthetic_faces.h"

#include <fmt/format.h>

#include <atomic>
#include <exception>
#include <thread>

#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "data/synth/face_renderer.h"
#include "data/verification/verification_set.h"
#include "framework/core/compute_threads.h"
#include "framework/core/checked.h"
#include "framework/core/error.h"

namespace facetrain::data {

std::vector<std::vector<std::uint8_t>> render_in_parallel(
    std::int64_t count, const std::function<std::vector<std::uint8_t>(std::int64_t)>& job) {
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(count));
  const auto threads = static_cast<std::int64_t>(available_cores());
  std::atomic<std::int64_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (std::int64_t t = 0; t < threads; ++t) {
    pool.push_back(helper_thread([&, t] {
      try {
        for (std::int64_t i = next++; i < count; i = next++)
          out[static_cast<std::size_t>(i)] = job(i);
      } catch (...) {
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    }));
  }
  for (auto& th : pool) th.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

std::vector<std::uint8_t> synthetic_face_jpeg(std::uint64_t seed, std::int64_t identity,
                                              std::int64_t sample) {
  thread_local JpegCodec codec;
  const FaceIdentity id = make_identity(seed, identity);
  const FaceVariation v = make_variation(seed, identity, sample);
  const std::uint64_t noise_seed = seed * 31 + static_cast<std::uint64_t>(identity) * 1000003 +
                                   static_cast<std::uint64_t>(sample);
  return codec.encode(render_face(id, v, noise_seed), v.jpeg_quality);
}

Manifest synthesize_faces(const std::filesystem::path& out, const std::filesystem::path& pairs_path,
                          const SynthOptions& o,
                          const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (o.identities < 1 || o.per_identity < 1 || o.pairs < 0) {
    throw ConfigError(
        fmt::format("synth: identities {} and per-identity {} must be >= 1, pairs {} "
                    ">= 0",
                    o.identities, o.per_identity, o.pairs));
  }
  const std::int64_t heldout = o.heldout_identities > 0
                                   ? o.heldout_identities
                                   : std::max<std::int64_t>(10, o.identities / 5);
  if (o.pairs > 0 && heldout < 2)
    throw ConfigError("synth: pairs need at least 2 held-out identities");
  const std::int64_t total = checked::add<ConfigError>(
      checked::mul<ConfigError>(o.identities, o.per_identity, "synth: --identities x --per-identity"),
      checked::mul<ConfigError>(o.pairs, std::int64_t{2}, "synth: 2 x --pairs"), "synth: images");
  if (total > kMaxSyntheticImages || heldout > kMaxSyntheticImages) {
    throw ConfigError(fmt::format("synth: --identities x --per-identity + 2 x --pairs = {} images "
                                  "({} held-out identities), more than the {} a synthetic set may "
                                  "have",
                                  total, heldout, kMaxSyntheticImages));
  }
  std::int64_t done = 0;

  ShardedDatasetWriter writer(out, 112, 112, o.shard_size);
  // Render an identity block at a time, so memory stays small and progress moves.
  const std::int64_t block = std::max<std::int64_t>(1, 512 / o.per_identity);
  for (std::int64_t first = 0; first < o.identities; first += block) {
    const std::int64_t last = std::min(o.identities, first + block);
    const auto images = render_in_parallel((last - first) * o.per_identity, [&](std::int64_t i) {
      return synthetic_face_jpeg(o.seed, first + i / o.per_identity, i % o.per_identity);
    });
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(images.size()); ++i) {
      writer.add(checked::narrow<std::int32_t, ConfigError>(first + i / o.per_identity, "synth: a label"),
                 images[static_cast<std::size_t>(i)]);
    }
    done += static_cast<std::int64_t>(images.size());
    if (progress) progress(done, total);
  }
  const Manifest manifest = writer.finish(o.identities);

  if (o.pairs > 0) {
    // Held-out identities are numbered after the training ones, so they are other faces; their
    // samples are numbered far from the training samples' range.
    VerificationPairs pairs;
    pairs.issame.resize(static_cast<std::size_t>(o.pairs));
    pairs.images = render_in_parallel(2 * o.pairs, [&](std::int64_t i) {
      const std::int64_t p = i / 2;
      const std::int64_t a = (p * 7919) % heldout;
      // Even pairs: two images of identity a. Odd pairs: a and another held-out identity.
      const std::int64_t b = p % 2 == 0 ? a : (a + 1 + (p / 2) % (heldout - 1)) % heldout;
      return synthetic_face_jpeg(o.seed, o.identities + (i % 2 == 0 ? a : b),
                                 100000 + 2 * p + i % 2);
    });
    for (std::int64_t p = 0; p < o.pairs; ++p)
      pairs.issame[static_cast<std::size_t>(p)] = p % 2 == 0;
    write_verification_set(pairs_path, pairs);
    if (progress) progress(total, total);
  }
  return manifest;
}

}  // namespace facetrain::data
