#include "data/synth/face_renderer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "framework/core/mix.h"

namespace facetrain::data {
namespace {

constexpr int kSize = 112;

// A small deterministic generator (SplitMix64 stream), identical on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(mix64(seed)) {}
  float uniform(float lo, float hi) {
    state_ = mix64(state_);
    return lo + (hi - lo) * static_cast<float>((state_ >> 40) * (1.0 / 16777216.0));
  }
  int integer(int n) {
    return std::min(n - 1, static_cast<int>(uniform(0, static_cast<float>(n))));
  }
  float normal() {
    const float u1 = std::max(uniform(0, 1), 1e-7f);
    const float u2 = uniform(0, 1);
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
  }

 private:
  std::uint64_t state_;
};

// Coverage of a shape with signed distance d (negative inside), anti-aliased over ~1 pixel.
float cover(float d, float pixel) {
  return std::clamp(0.5f - d / pixel, 0.0f, 1.0f);
}

float ellipse(float x, float y, float cx, float cy, float rx, float ry) {
  const float nx = (x - cx) / rx, ny = (y - cy) / ry;
  return (std::sqrt(nx * nx + ny * ny) - 1.0f) * std::min(rx, ry);
}

// Distance to a segment (a capsule of radius r).
float capsule(float x, float y, float ax, float ay, float bx, float by, float r) {
  const float px = x - ax, py = y - ay, dx = bx - ax, dy = by - ay;
  const float t = std::clamp((px * dx + py * dy) / (dx * dx + dy * dy + 1e-12f), 0.0f, 1.0f);
  const float ex = px - t * dx, ey = py - t * dy;
  return std::sqrt(ex * ex + ey * ey) - r;
}

void blend(float* rgb, const float* color, float alpha) {
  for (int c = 0; c < 3; ++c) rgb[c] += (color[c] - rgb[c]) * alpha;
}

}  // namespace

FaceIdentity make_identity(std::uint64_t seed, std::int64_t identity) {
  Rng r(seed * 0x100000001b3ull + static_cast<std::uint64_t>(identity) * 2 + 1);
  FaceIdentity f{};
  const float tone = r.uniform(0.25f, 0.95f);
  f.skin[0] = 0.35f + 0.6f * tone + r.uniform(-0.05f, 0.05f);
  f.skin[1] = 0.22f + 0.5f * tone + r.uniform(-0.05f, 0.05f);
  f.skin[2] = 0.15f + 0.45f * tone + r.uniform(-0.08f, 0.05f);
  const float hair_tone = r.uniform(0.05f, 0.9f);
  f.hair[0] = hair_tone * r.uniform(0.6f, 1.0f);
  f.hair[1] = hair_tone * r.uniform(0.4f, 0.8f);
  f.hair[2] = hair_tone * r.uniform(0.2f, 0.6f);
  for (int c = 0; c < 3; ++c) f.iris[c] = r.uniform(0.05f, 0.6f);
  f.lips[0] = r.uniform(0.5f, 0.85f);
  f.lips[1] = r.uniform(0.15f, 0.4f);
  f.lips[2] = r.uniform(0.2f, 0.4f);
  for (int c = 0; c < 3; ++c) f.glasses_color[c] = r.uniform(0.0f, 0.5f);
  f.face_w = r.uniform(0.30f, 0.40f);
  f.face_h = r.uniform(0.40f, 0.48f);
  f.jaw = r.uniform(0.0f, 0.35f);
  f.eye_y = r.uniform(-0.10f, -0.02f);
  f.eye_dx = r.uniform(0.11f, 0.17f);
  f.eye_rx = r.uniform(0.045f, 0.075f);
  f.eye_ry = r.uniform(0.022f, 0.04f);
  f.brow_dy = r.uniform(0.05f, 0.09f);
  f.brow_thick = r.uniform(0.008f, 0.022f);
  f.brow_tilt = r.uniform(-0.35f, 0.35f);
  f.nose_len = r.uniform(0.10f, 0.18f);
  f.nose_w = r.uniform(0.03f, 0.06f);
  f.mouth_y = r.uniform(0.17f, 0.25f);
  f.mouth_w = r.uniform(0.08f, 0.15f);
  f.lip_thick = r.uniform(0.010f, 0.025f);
  f.hair_style = r.integer(4);
  f.glasses = r.uniform(0, 1) < 0.3f;
  f.beard = r.uniform(0, 1) < 0.2f;
  for (auto& m : f.moles) {
    m[0] = r.uniform(-0.25f, 0.25f);
    m[1] = r.uniform(-0.05f, 0.3f);
  }
  return f;
}

FaceVariation make_variation(std::uint64_t seed, std::int64_t identity, std::int64_t sample) {
  Rng r(mix64(seed ^ 0x5eed) ^ mix64(static_cast<std::uint64_t>(identity) * 0x9e3779b1ull) ^
        static_cast<std::uint64_t>(sample) * 0x85ebca77ull);
  FaceVariation v{};
  v.roll = r.uniform(-0.15f, 0.15f);
  v.yaw = r.uniform(-0.06f, 0.06f);
  v.scale = r.uniform(0.92f, 1.08f);
  v.dx = r.uniform(-0.03f, 0.03f);
  v.dy = r.uniform(-0.03f, 0.03f);
  v.light_dir = r.uniform(0.0f, 6.2831853f);
  v.light_gain = r.uniform(0.0f, 0.35f);
  v.ambient = r.uniform(0.75f, 1.15f);
  v.smile = r.uniform(-0.4f, 1.0f);
  v.mouth_open = r.uniform(0, 1) < 0.3f ? r.uniform(0.2f, 1.0f) : 0.0f;
  v.brow_raise = r.uniform(-0.3f, 1.0f);
  v.eye_open = r.uniform(0, 1) < 0.1f ? r.uniform(0.15f, 0.4f) : r.uniform(0.8f, 1.1f);
  v.blur = r.uniform(0, 1) < 0.5f ? r.uniform(0.0f, 1.5f) : 0.0f;
  v.noise = r.uniform(0.0f, 8.0f);
  v.jpeg_quality = 60 + r.integer(36);
  return v;
}

at::Tensor render_face(const FaceIdentity& f, const FaceVariation& v, std::uint64_t noise_seed) {
  std::vector<float> canvas(kSize * kSize * 3);
  const float c = std::cos(v.roll), s = std::sin(v.roll);
  const float pixel = 1.0f / (kSize * v.scale);  // one pixel in face coordinates
  const float lx = std::cos(v.light_dir), ly = std::sin(v.light_dir);
  const float background[3] = {0.55f + 0.2f * f.hair[2], 0.58f, 0.6f - 0.1f * f.hair[0]};
  const float white[3] = {0.95f, 0.95f, 0.93f};
  const float dark[3] = {0.05f, 0.04f, 0.04f};
  const float mouth_dark[3] = {0.25f, 0.05f, 0.06f};
  for (int py = 0; py < kSize; ++py) {
    for (int px = 0; px < kSize; ++px) {
      // Canvas pixel → face coordinates (origin at the face centre, unit = canvas size).
      const float u = (px + 0.5f) / kSize - 0.5f - v.dx;
      const float w = (py + 0.5f) / kSize - 0.5f - v.dy;
      float x = (c * u + s * w) / v.scale;
      const float y = (-s * u + c * w) / v.scale;
      float* rgb = &canvas[(py * kSize + px) * 3];
      std::copy(background, background + 3, rgb);
      // Yaw: features shift sideways, more near the centre line than at the outline.
      const float xf = x - v.yaw * (1.0f - std::min(1.0f, std::abs(x) / f.face_w));
      if (f.hair_style == 2) {
        blend(rgb, f.hair,
              cover(ellipse(x, y + 0.02f, 0, 0, f.face_w + 0.07f, f.face_h + 0.06f), pixel));
      }
      // Face outline: an ellipse narrowing towards the chin.
      const float taper = y > 0 ? 1.0f - f.jaw * (y / f.face_h) * (y / f.face_h) : 1.0f;
      blend(rgb, f.skin,
            cover(ellipse(x, y, 0, 0, f.face_w * std::max(0.3f, taper), f.face_h), pixel));
      if (f.beard) {
        const float beard[3] = {f.hair[0] * 0.8f, f.hair[1] * 0.8f, f.hair[2] * 0.8f};
        const float d = std::max(ellipse(x, y, 0, 0, f.face_w * std::max(0.3f, taper), f.face_h),
                                 f.mouth_y - 0.02f - y);
        blend(rgb, beard, 0.8f * cover(d, pixel));
      }
      if (f.hair_style == 1 || f.hair_style == 3) {
        const float top = ellipse(x, y, 0, -0.02f, f.face_w + 0.02f, f.face_h + 0.03f);
        const float line = f.hair_style == 3 ? (-0.13f + 0.05f * std::cos(x * 40.0f)) : -0.22f;
        blend(rgb, f.hair, cover(std::max(top, y - line), pixel));
      }
      for (const auto& m : f.moles) {
        blend(rgb, dark, 0.6f * cover(ellipse(xf, y, m[0], m[1], 0.008f, 0.008f), pixel));
      }
      // Nose: a shaded ridge and nostrils.
      const float nose_shadow[3] = {f.skin[0] * 0.7f, f.skin[1] * 0.65f, f.skin[2] * 0.65f};
      blend(
          rgb, nose_shadow,
          0.7f * cover(capsule(xf, y, 0.01f, f.eye_y + 0.03f, 0.015f, f.eye_y + f.nose_len, 0.006f),
                       pixel));
      for (float side : {-1.0f, 1.0f}) {
        blend(rgb, nose_shadow,
              cover(ellipse(xf, y, side * f.nose_w, f.eye_y + f.nose_len + 0.01f, 0.014f, 0.008f),
                    pixel));
        // Eyes: white, iris, pupil, lids closing with eye_open.
        const float ex = side * f.eye_dx;
        const float ry = f.eye_ry * v.eye_open;
        blend(rgb, white,
              cover(ellipse(xf, y, ex, f.eye_y, f.eye_rx, std::max(ry, 0.004f)), pixel));
        const float iris_mask =
            cover(ellipse(xf, y, ex, f.eye_y, f.eye_rx, std::max(ry, 0.004f)), pixel);
        blend(rgb, f.iris,
              iris_mask *
                  cover(ellipse(xf, y, ex, f.eye_y, f.eye_ry * 0.9f, f.eye_ry * 0.9f), pixel));
        blend(rgb, dark,
              iris_mask *
                  cover(ellipse(xf, y, ex, f.eye_y, f.eye_ry * 0.4f, f.eye_ry * 0.4f), pixel));
        // Brows.
        const float by = f.eye_y - f.brow_dy - 0.02f * v.brow_raise;
        const float tilt = side * f.brow_tilt * 0.05f;
        blend(rgb, f.hair,
              cover(capsule(xf, y, ex - side * f.eye_rx, by + tilt, ex + side * f.eye_rx, by - tilt,
                            f.brow_thick),
                    pixel));
        if (f.glasses) {
          const float ring =
              std::abs(ellipse(xf, y, ex, f.eye_y, f.eye_rx + 0.03f, f.eye_ry + 0.035f)) - 0.004f;
          blend(rgb, f.glasses_color, cover(ring, pixel));
        }
      }
      if (f.glasses) {
        blend(rgb, f.glasses_color,
              cover(capsule(xf, y, -f.eye_dx + f.eye_rx + 0.03f, f.eye_y,
                            f.eye_dx - f.eye_rx - 0.03f, f.eye_y, 0.004f),
                    pixel));
      }
      // Mouth: lips along a parabola bent by the smile, opening with mouth_open.
      const float t = xf / f.mouth_w;
      if (std::abs(t) < 1.0f) {
        const float centre = f.mouth_y - 0.02f * v.smile * (1.0f - t * t);
        const float open = 0.02f * v.mouth_open * (1.0f - t * t);
        const float d = std::abs(y - centre) - (f.lip_thick + open) * std::sqrt(1.0f - t * t);
        blend(rgb, f.lips, cover(d, pixel));
        if (open > 0) blend(rgb, mouth_dark, cover(std::abs(y - centre) - open * 0.7f, pixel));
      }
      // Lighting: ambient times a directional gradient across the face.
      const float light = v.ambient * (1.0f + v.light_gain * (lx * x + ly * y) * 2.0f);
      for (int k = 0; k < 3; ++k) rgb[k] *= light;
    }
  }
  // Blur (a box filter of the variation's radius), then sensor noise.
  if (v.blur > 0.25f) {
    const int radius = std::max(1, static_cast<int>(std::lround(v.blur)));
    std::vector<float> tmp(canvas.size());
    for (int pass = 0; pass < 2; ++pass) {
      const bool horizontal = pass == 0;
      const std::vector<float>& src = pass == 0 ? canvas : tmp;
      std::vector<float>& dst = pass == 0 ? tmp : canvas;
      for (int py = 0; py < kSize; ++py) {
        for (int px = 0; px < kSize; ++px) {
          float acc[3] = {0, 0, 0};
          int n = 0;
          for (int k = -radius; k <= radius; ++k) {
            const int qx = horizontal ? std::clamp(px + k, 0, kSize - 1) : px;
            const int qy = horizontal ? py : std::clamp(py + k, 0, kSize - 1);
            for (int ch = 0; ch < 3; ++ch) acc[ch] += src[(qy * kSize + qx) * 3 + ch];
            ++n;
          }
          for (int ch = 0; ch < 3; ++ch) dst[(py * kSize + px) * 3 + ch] = acc[ch] / n;
        }
      }
    }
  }
  Rng noise(noise_seed);
  at::Tensor out = at::empty({kSize, kSize, 3}, at::kByte);
  auto* o = out.data_ptr<std::uint8_t>();
  for (std::size_t i = 0; i < canvas.size(); ++i) {
    const float value = canvas[i] * 255.0f + (v.noise > 0 ? v.noise * noise.normal() : 0.0f);
    o[i] = static_cast<std::uint8_t>(std::lround(std::clamp(value, 0.0f, 255.0f)));
  }
  return out;
}

}  // namespace facetrain::data
