#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image/alignment.h"

namespace facetrain::data {

class JpegCodec;

// The aligned face of an encoded photo (JPEG, PNG, BMP, TGA or GIF, any size) with five
// landmarks: uint8 [size, size, 3] RGB, degenerate landmarks judged by `rule` (align_face);
// errors name `where`.
std::vector<std::uint8_t> aligned_face_pixels(JpegCodec& codec,
                                              const std::vector<std::uint8_t>& bytes,
                                              const FivePoints& landmarks, std::int64_t size,
                                              const std::string& where,
                                              LandmarkRule rule = LandmarkRule::kMustSpanAFace);

// The aligned face of an encoded photo (JPEG, PNG, BMP, TGA or GIF) with five landmarks, encoded
// as JPEG at `quality`; errors name `where`.
std::vector<std::uint8_t> aligned_jpeg(JpegCodec& codec, const std::vector<std::uint8_t>& bytes,
                                       const FivePoints& landmarks, std::int64_t size, int quality,
                                       const std::string& where);

struct AlignFolderOptions {
  std::int64_t size = 112;  // side of the aligned faces
  int quality = 95;         // JPEG quality of the written faces
};

// Aligns every image a landmarks file lists (read_landmarks; paths relative to `images`) to the
// ArcFace template and writes it as OUT/<path with .jpg> (each file written atomically; folders
// created); landmarks off the image warp with the zero border. An image that is missing,
// undecodable or whose landmarks are degenerate (collinear, or all at one point) is a DataError
// naming the landmarks file's line and the image. Returns the faces written.
std::int64_t align_folder(const std::filesystem::path& images,
                          const std::filesystem::path& landmarks, const std::filesystem::path& out,
                          const AlignFolderOptions& options = {});

}  // namespace facetrain::data
