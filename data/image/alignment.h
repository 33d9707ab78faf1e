#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace facetrain::data {

struct Point {
  double x = 0, y = 0;
};

// Five facial landmarks, in insightface's order: left eye, right eye, nose tip, left and right
// mouth corners (left/right as seen in the image).
using FivePoints = std::array<Point, 5>;

// ArcFace's 112 × 112 template: where the five landmarks of an aligned face lie.
inline constexpr FivePoints kArcFaceTemplate = {{{38.2946, 51.6963},
                                                 {73.5318, 51.5014},
                                                 {56.0252, 71.7366},
                                                 {41.5493, 92.3655},
                                                 {70.7299, 92.2041}}};

// A similarity transform (rotation, uniform scale, translation; no reflection):
//   x' = a·x − b·y + tx,   y' = b·x + a·y + ty.
struct Similarity {
  double a = 1, b = 0, tx = 0, ty = 0;

  Point apply(Point p) const { return {a * p.x - b * p.y + tx, b * p.x + a * p.y + ty}; }
  Similarity inverse() const;
  double scale() const;
};

// The least-squares similarity taking `from` onto `to` (Umeyama 1991 without reflection, as
// skimage's SimilarityTransform.estimate): minimises Σ |S(from_i) − to_i|². In closed form, with
// centred points p = from − mean, q = to − mean: a = Σ(p·q)/Σ|p|², b = Σ(p × q)/Σ|p|².
// Throws DataError (naming `source`) when `from` is degenerate: a non-finite coordinate, or points
// that do not span two dimensions (all equal, or collinear).
//
// `rule` says what landmarks are degenerate: kMustSpanAFace (aligning a training set: collinear
// or coincident landmarks are wrong) or kAsInsightface (evaluation, as eval_ijbc.py's skimage
// estimate: any landmarks not all at one point give their least-squares similarity).
enum class LandmarkRule { kMustSpanAFace, kAsInsightface };
Similarity estimate_similarity(const FivePoints& from, const FivePoints& to,
                               const std::string& source,
                               LandmarkRule rule = LandmarkRule::kMustSpanAFace);

// `image` (uint8 [height, width, 3], row-major RGB) warped by `to_output` (image → output
// coordinates) into uint8 [size, size, 3]: output pixel (x, y) is the input bilinearly sampled at
// to_output⁻¹(x, y), pixel centres at integer coordinates and zeros outside the image, as
// OpenCV's warpAffine with a constant zero border (insightface's norm_crop).
std::vector<std::uint8_t> warp_similarity(const std::uint8_t* image, std::int64_t height,
                                          std::int64_t width, const Similarity& to_output,
                                          std::int64_t size);

// An aligned face: the image's landmarks mapped onto kArcFaceTemplate (scaled by size/112) and
// the image warped there (landmarks outside the image too: what falls outside is the zero border,
// as insightface's norm_crop). Degenerate landmarks (by `rule`) are a DataError naming `source`,
// except that under kAsInsightface landmarks all at one point give the zero face, as
// eval_ijbc.py's undefined transform warps to nothing.
std::vector<std::uint8_t> align_face(const std::uint8_t* image, std::int64_t height,
                                     std::int64_t width, const FivePoints& landmarks,
                                     std::int64_t size, const std::string& source,
                                     LandmarkRule rule = LandmarkRule::kMustSpanAFace);

// How far a landmark may lie from the image's origin: 10^7 pixels, a thousand times the largest
// image facetrain decodes (beyond it an alignment's arithmetic loses its meaning).
inline constexpr double kMaxLandmarkCoordinate = 1e7;

// DataError naming `source` and the landmark unless all five are finite points within
// kMaxLandmarkCoordinate.
void check_landmark_values(const FivePoints& landmarks, const std::string& source);

// One line of a landmarks file: an image path (relative to the images' folder), its five
// landmarks and, in insightface's files, the detector's score (1 when absent).
struct LandmarkEntry {
  std::string path;
  FivePoints points;
  double score = 1.0;
  std::int64_t line = 0;
};

// Reads a landmarks file: one image per line, fields separated by tabs, commas or spaces,
//   path x1 y1 x2 y2 x3 y3 x4 y4 x5 y5          (TSV/CSV)
//   name x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 score    (insightface's *_name_5pts_score.txt)
// Blank lines and lines starting with '#' are skipped. A line with another field count or a
// field that is not a finite number is a DataError naming the file, the line and the field.
std::vector<LandmarkEntry> read_landmarks(const std::string& file);

}  // namespace facetrain::data
