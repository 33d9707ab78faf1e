#include "data/image/alignment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "framework/core/error.h"
#include "framework/core/text_table.h"

namespace facetrain::data {

Similarity Similarity::inverse() const {
  // [a −b; b a]⁻¹ = [a b; −b a] / (a² + b²).
  const double d = a * a + b * b;
  Similarity inv;
  inv.a = a / d;
  inv.b = -b / d;
  inv.tx = -(inv.a * tx - inv.b * ty);
  inv.ty = -(inv.b * tx + inv.a * ty);
  return inv;
}

double Similarity::scale() const {
  return std::hypot(a, b);
}

void check_landmark_values(const FivePoints& landmarks, const std::string& source) {
  for (std::size_t i = 0; i < landmarks.size(); ++i) {
    const Point& p = landmarks[i];
    if (!(std::abs(p.x) <= kMaxLandmarkCoordinate && std::abs(p.y) <= kMaxLandmarkCoordinate)) {
      throw DataError(fmt::format("{}: landmark {} is ({}, {}): not a point within {:g} pixels of "
                                  "the image",
                                  source, i + 1, p.x, p.y, kMaxLandmarkCoordinate));
    }
  }
}

namespace {

Point mean_of(const FivePoints& p) {
  Point m;
  for (const Point& q : p) {
    m.x += q.x / 5;
    m.y += q.y / 5;
  }
  return m;
}

// The principal variances of the landmarks' scatter about their mean (and its trace): the
// smaller is ~0 for collinear points, both for points all at one place.
struct Spread {
  double major = 0, minor = 0, trace = 0;
  bool coincident() const { return !(major > 1e-6); }
};

Spread spread_of(const FivePoints& p) {
  const Point m = mean_of(p);
  double sxx = 0, syy = 0, sxy = 0;
  for (const Point& q : p) {
    sxx += (q.x - m.x) * (q.x - m.x);
    syy += (q.y - m.y) * (q.y - m.y);
    sxy += (q.x - m.x) * (q.y - m.y);
  }
  const double tr = sxx + syy, det = sxx * syy - sxy * sxy;
  const double disc = std::sqrt(std::max(0.0, tr * tr / 4 - det));
  return {tr / 2 + disc, tr / 2 - disc, tr};
}

}  // namespace

Similarity estimate_similarity(const FivePoints& from, const FivePoints& to,
                               const std::string& source, LandmarkRule rule) {
  check_landmark_values(from, source);
  const Spread spread = spread_of(from);
  if (spread.coincident() ||
      (rule == LandmarkRule::kMustSpanAFace && spread.minor < 1e-4 * spread.major)) {
    throw DataError(fmt::format("{}: the five landmarks are {}: they must span a face", source,
                                spread.coincident() ? "all at one point" : "collinear"));
  }
  const Point mf = mean_of(from), mt = mean_of(to);
  double dot = 0, cross = 0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const double px = from[i].x - mf.x, py = from[i].y - mf.y;
    const double qx = to[i].x - mt.x, qy = to[i].y - mt.y;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
  }
  Similarity s;
  s.a = dot / spread.trace;
  s.b = cross / spread.trace;
  s.tx = mt.x - (s.a * mf.x - s.b * mf.y);
  s.ty = mt.y - (s.b * mf.x + s.a * mf.y);
  return s;
}

std::vector<std::uint8_t> warp_similarity(const std::uint8_t* image, std::int64_t height,
                                          std::int64_t width, const Similarity& to_output,
                                          std::int64_t size) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(size * size * 3), 0);
  const Similarity back = to_output.inverse();
  const auto pixel = [&](std::int64_t x, std::int64_t y, int c) -> double {
    if (x < 0 || y < 0 || x >= width || y >= height) return 0.0;  // the zero border
    return image[(y * width + x) * 3 + c];
  };
  for (std::int64_t oy = 0; oy < size; ++oy) {
    for (std::int64_t ox = 0; ox < size; ++ox) {
      const Point p = back.apply({static_cast<double>(ox), static_cast<double>(oy)});
      const double fx = std::floor(p.x), fy = std::floor(p.y);
      // Far outside (or not a number): the zero border, decided before any integer conversion.
      if (!(fx >= -1 && fy >= -1 && fx < static_cast<double>(width) &&
            fy < static_cast<double>(height))) {
        continue;
      }
      const auto x0 = static_cast<std::int64_t>(fx), y0 = static_cast<std::int64_t>(fy);
      const double wx = p.x - fx, wy = p.y - fy;
      for (int c = 0; c < 3; ++c) {
        const double v = (1 - wy) * ((1 - wx) * pixel(x0, y0, c) + wx * pixel(x0 + 1, y0, c)) +
                         wy * ((1 - wx) * pixel(x0, y0 + 1, c) + wx * pixel(x0 + 1, y0 + 1, c));
        out[static_cast<std::size_t>((oy * size + ox) * 3 + c)] =
            static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

std::vector<std::uint8_t> align_face(const std::uint8_t* image, std::int64_t height,
                                     std::int64_t width, const FivePoints& landmarks,
                                     std::int64_t size, const std::string& source,
                                     LandmarkRule rule) {
  check_landmark_values(landmarks, source);
  if (rule == LandmarkRule::kAsInsightface && spread_of(landmarks).coincident()) {
    return std::vector<std::uint8_t>(static_cast<std::size_t>(size * size * 3), 0);
  }
  // Landmarks outside the image (a face cut by the crop's edge) are no error: what falls outside
  // is the zero border, as insightface's norm_crop and its IJB evaluation do.
  FivePoints target = kArcFaceTemplate;
  for (auto& p : target) {
    p.x *= static_cast<double>(size) / 112.0;
    p.y *= static_cast<double>(size) / 112.0;
  }
  return warp_similarity(image, height, width,
                         estimate_similarity(landmarks, target, source, rule), size);
}

std::vector<LandmarkEntry> read_landmarks(const std::string& file) {
  std::vector<LandmarkEntry> out;
  read_text_table(file, [&out](const TextRow& row) {
    row.expect_fields(
        11, 12, "a path and 10 coordinates (x1 y1 ... x5 y5), optionally followed by a score");
    LandmarkEntry e;
    e.path = std::string(row.fields[0]);
    e.line = row.line;
    for (std::size_t k = 0; k < 5; ++k) {
      e.points[k] = {row.number(1 + 2 * k, "a landmark coordinate"),
                     row.number(2 + 2 * k, "a landmark coordinate")};
    }
    if (row.fields.size() == 12) e.score = row.number(11, "the detector score");
    out.push_back(std::move(e));
  });
  return out;
}

}  // namespace facetrain::data
