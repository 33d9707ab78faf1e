#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace facetrain::data {

// A synthetic IJB benchmark in insightface's layout (see ijb_protocol.h): every identity has
// `templates` templates, each of `media` media of `images` images; each image a rendered face
// (face_renderer.h) placed by a random similarity (rotation, scale, offset) into a
// photo_size × photo_size loose crop, whose five landmarks are the ArcFace template carried
// along, with a random detector score in [0.5, 1]. 1:1 pairs: every two templates of an
// identity (genuine) and `impostors` templates of other identities per template. 1:N: each
// identity's first template is its gallery template, in gallery 1 (even identities) or 2 (odd);
// its other templates are probes. Identities are numbered from `first_identity`, far from a
// synthetic training set's; everything is a function of the seed.
struct SynthIjbOptions {
  std::string name = "IJBC";  // IJBB or IJBC: the meta files' prefix and gallery names
  std::int64_t identities = 30;
  std::int64_t templates = 3;
  std::int64_t media = 2;
  std::int64_t images = 2;
  std::int64_t impostors = 6;
  std::int64_t photo_size = 160;
  std::uint64_t seed = 1;
  std::int64_t first_identity = 1000000;
};

struct SynthIjbSummary {
  std::int64_t images = 0, templates = 0, pairs = 0;
};

// Writes the benchmark under `root` (loose_crop/ and meta/, created; files written atomically).
SynthIjbSummary synthesize_ijb(const std::filesystem::path& root, const SynthIjbOptions& options);

}  // namespace facetrain::data
