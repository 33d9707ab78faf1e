#include "data/synth/synthetic_ijb.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "data/image/alignment.h"
#include "data/image/jpeg_codec.h"
#include "data/synth/face_renderer.h"
#include "data/synth/synthetic_faces.h"
#include "framework/core/atomic_file.h"
#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/mix.h"

namespace facetrain::data {
namespace fs = std::filesystem;
namespace {

// A uniform number in [lo, hi) from a hash of (seed, image, k).
double uniform(std::uint64_t seed, std::int64_t image, int k, double lo, double hi) {
  const std::uint64_t h = mix64(mix64(seed ^ 0x19b) ^ (static_cast<std::uint64_t>(image) * 8 + k));
  return lo + (hi - lo) * static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}

// Where image `image`'s aligned face lands in its loose crop.
Similarity photo_placement(std::uint64_t seed, std::int64_t image, std::int64_t photo_size) {
  const double angle = uniform(seed, image, 0, -0.35, 0.35);
  const double scale = uniform(seed, image, 1, 0.9, 1.25);
  Similarity s;
  s.a = scale * std::cos(angle);
  s.b = scale * std::sin(angle);
  const double centre = static_cast<double>(photo_size) / 2;
  const Point face_centre = s.apply({56, 56});
  s.tx = centre + uniform(seed, image, 2, -8, 8) - face_centre.x;
  s.ty = centre + uniform(seed, image, 3, -8, 8) - face_centre.y;
  return s;
}

struct Image {
  std::int64_t identity, template_id, media_id, sample;
};

// The layout: identity → templates → media → images, ids counted from 1 as IJB's.
std::vector<Image> plan_images(const SynthIjbOptions& o) {
  std::vector<Image> images;
  std::int64_t template_id = 0, media_id = 0;
  for (std::int64_t i = 0; i < o.identities; ++i) {
    for (std::int64_t t = 0; t < o.templates; ++t) {
      ++template_id;
      for (std::int64_t m = 0; m < o.media; ++m) {
        ++media_id;
        for (std::int64_t k = 0; k < o.images; ++k) {
          images.push_back({i, template_id, media_id, (t * o.media + m) * o.images + k});
        }
      }
    }
  }
  return images;
}

std::string pair_lines(const SynthIjbOptions& o, std::int64_t& pairs) {
  std::string out;
  const auto template_of = [&](std::int64_t identity, std::int64_t t) {
    return identity * o.templates + t + 1;
  };
  for (std::int64_t i = 0; i < o.identities; ++i) {
    for (std::int64_t t = 0; t < o.templates; ++t) {
      for (std::int64_t u = t + 1; u < o.templates; ++u, ++pairs) {
        out += fmt::format("{} {} 1\n", template_of(i, t), template_of(i, u));
      }
      for (std::int64_t r = 0; r < o.impostors; ++r, ++pairs) {
        const std::int64_t other = (i + 1 + (r * 7 + t) % (o.identities - 1)) % o.identities;
        out +=
            fmt::format("{} {} 0\n", template_of(i, t), template_of(other, (r + t) % o.templates));
      }
    }
  }
  return out;
}

}  // namespace

SynthIjbSummary synthesize_ijb(const fs::path& root, const SynthIjbOptions& o) {
  if (o.name != "IJBB" && o.name != "IJBC") {
    throw ConfigError(fmt::format("synth-ijb: name '{}': expected IJBB or IJBC", o.name));
  }
  if (o.identities < 2 || o.templates < 2 || o.media < 1 || o.images < 1 || o.impostors < 0 ||
      o.photo_size < 112) {
    throw ConfigError(
        "synth-ijb: needs >= 2 identities, >= 2 templates per identity, >= 1 media per template "
        "and image per media, >= 0 impostors and a photo size >= 112");
  }
  // The images it would render, counted without overflow and bounded before any plan is made.
  const auto product = [](std::int64_t a, std::int64_t b) {
    return checked::mul<ConfigError>(
        a, b, "synth-ijb: --identities x --templates x --media x --images");
  };
  const std::int64_t images = product(product(product(o.identities, o.templates), o.media), o.images);
  if (images > kMaxSyntheticImages) {
    throw ConfigError(fmt::format("synth-ijb: --identities x --templates x --media x --images = "
                                  "{} images, more than the {} a synthetic benchmark may have",
                                  images, kMaxSyntheticImages));
  }
  const std::vector<Image> plan = plan_images(o);
  const auto count = static_cast<std::int64_t>(plan.size());
  fs::create_directories(root / "loose_crop");
  fs::create_directories(root / "meta");
  const auto photos = render_in_parallel(count, [&](std::int64_t i) {
    thread_local JpegCodec codec;
    const Image& im = plan[static_cast<std::size_t>(i)];
    const std::int64_t identity = o.first_identity + im.identity;
    const at::Tensor face =
        render_face(make_identity(o.seed, identity), make_variation(o.seed, identity, im.sample),
                    mix64(o.seed + static_cast<std::uint64_t>(i)))
            .contiguous();
    auto photo = warp_similarity(face.data_ptr<std::uint8_t>(), 112, 112,
                                 photo_placement(o.seed, i, o.photo_size), o.photo_size);
    return codec.encode(at::from_blob(photo.data(), {o.photo_size, o.photo_size, 3}, at::kByte),
                        92);
  });
  std::string landmarks, tid_mid;
  for (std::int64_t i = 0; i < count; ++i) {
    const auto& bytes = photos[static_cast<std::size_t>(i)];
    const std::string name = fmt::format("{}.jpg", i + 1);
    write_file_atomic(root / "loose_crop" / name,
                      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    const Similarity place = photo_placement(o.seed, i, o.photo_size);
    landmarks += name;
    for (const Point& p : kArcFaceTemplate) {
      const Point q = place.apply(p);
      landmarks += fmt::format(" {:.3f} {:.3f}", q.x, q.y);
    }
    landmarks += fmt::format(" {:.6f}\n", uniform(o.seed, i, 4, 0.5, 1.0));
    const Image& im = plan[static_cast<std::size_t>(i)];
    tid_mid += fmt::format("{} {} {}\n", name, im.template_id, im.media_id);
  }
  const std::string prefix = o.name == "IJBC" ? "ijbc" : "ijbb";
  const auto meta = [&](const std::string& suffix) { return root / "meta" / (prefix + suffix); };
  write_file_atomic(meta("_name_5pts_score.txt"), landmarks);
  write_file_atomic(meta("_face_tid_mid.txt"), tid_mid);
  SynthIjbSummary summary;
  summary.images = count;
  summary.templates = o.identities * o.templates;
  write_file_atomic(meta("_template_pair_label.txt"), pair_lines(o, summary.pairs));

  // 1:N lists, one row per image as IJB's CSVs.
  std::string gallery[2], probe;
  for (auto& g : gallery) g = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n";
  probe = gallery[0];
  for (std::int64_t i = 0; i < count; ++i) {
    const Image& im = plan[static_cast<std::size_t>(i)];
    const bool first_template = (im.template_id - 1) % o.templates == 0;
    std::string& list = first_template ? gallery[im.identity % 2] : probe;
    list += fmt::format("{},{},{}.jpg\n", im.template_id, im.identity + 1, i + 1);
  }
  const std::string g1 = o.name == "IJBC" ? "G1" : "S1", g2 = o.name == "IJBC" ? "G2" : "S2";
  write_file_atomic(meta("_1N_gallery_" + g1 + ".csv"), gallery[0]);
  write_file_atomic(meta("_1N_gallery_" + g2 + ".csv"), gallery[1]);
  write_file_atomic(meta("_1N_probe_mixed.csv"), probe);
  return summary;
}

}  // namespace facetrain::data
