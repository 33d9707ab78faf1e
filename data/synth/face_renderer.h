#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace facetrain::data {

// What stays the same across one identity's images: face outline, skin tone, eyes, brows,
// nose, mouth, hair and accessories, plus a few marks (moles) on the skin.
struct FaceIdentity {
  float skin[3], hair[3], iris[3], lips[3], glasses_color[3];
  float face_w, face_h, jaw;             // outline half-width/height (of the canvas), chin taper
  float eye_y, eye_dx, eye_rx, eye_ry;   // eye height, half spacing, radii
  float brow_dy, brow_thick, brow_tilt;  // brow gap above the eye, thickness, tilt
  float nose_len, nose_w, mouth_y, mouth_w, lip_thick;
  int hair_style;  // 0 bald, 1 short cap, 2 long sides, 3 fringe
  bool glasses, beard;
  float moles[3][2];  // mole positions in face coordinates
};

// What changes from image to image: pose, scale, lighting, expression, blur, noise, quality.
struct FaceVariation {
  float roll, yaw, scale, dx, dy;        // in-plane rotation (rad), yaw shift, zoom, offset
  float light_dir, light_gain, ambient;  // directional light angle, its strength, brightness
  float smile, mouth_open, brow_raise, eye_open;
  float blur;   // box-blur radius in pixels (0 … 1.5)
  float noise;  // Gaussian noise sigma in grey levels
  int jpeg_quality;
};

// The identity drawn from (seed, identity); the same arguments always give the same face.
FaceIdentity make_identity(std::uint64_t seed, std::int64_t identity);
// The variation of sample `sample` of `identity`.
FaceVariation make_variation(std::uint64_t seed, std::int64_t identity, std::int64_t sample);
// Renders an aligned 112×112 face (uint8 [112, 112, 3] RGB), before JPEG encoding.
at::Tensor render_face(const FaceIdentity& id, const FaceVariation& v, std::uint64_t noise_seed);

}  // namespace facetrain::data
