#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image/alignment.h"

namespace facetrain::data {

// One IJB 1:N template list (a gallery, or the probes): its templates in ascending order and
// each one's subject.
struct IjbTemplateList {
  std::string name;            // "G1", "G2" (IJB-C) or "S1", "S2" (IJB-B), "probe"
  std::filesystem::path file;  // the CSV it was read from
  std::vector<std::int64_t> templates;
  std::vector<std::int64_t> subjects;
};

// An IJB-B or IJB-C benchmark in insightface's layout (the IJB download with its meta files):
//   ROOT/loose_crop/<image>                        the unaligned face crops
//   ROOT/meta/<name>_name_5pts_score.txt           image x1 y1 … x5 y5 detector-score
//   ROOT/meta/<name>_face_tid_mid.txt              image template-id media-id (same order)
//   ROOT/meta/<name>_template_pair_label.txt       template template label (1 genuine, 0 impostor)
//   ROOT/meta/<name>_1N_gallery_G1.csv, _G2.csv    (IJB-B: _S1, _S2) TEMPLATE_ID,SUBJECT_ID,…
//   ROOT/meta/<name>_1N_probe_mixed.csv            TEMPLATE_ID,SUBJECT_ID,…
// with <name> "ijbb" or "ijbc". The 1:N files are optional (all or none).
struct IjbProtocol {
  std::filesystem::path root;
  std::string name;  // "IJBB" or "IJBC"

  // Per image, in file order.
  std::vector<LandmarkEntry> images;  // path relative to loose_crop/, landmarks, detector score
  std::vector<std::int64_t> templates, medias;

  // 1:1 template pairs.
  std::vector<std::int64_t> pair_first, pair_second;
  std::vector<std::uint8_t> pair_label;

  // 1:N: the two galleries and the mixed probes (empty when the protocol has no 1:N files).
  std::vector<IjbTemplateList> galleries;
  IjbTemplateList probes;

  std::filesystem::path image_folder() const { return root / "loose_crop"; }
  std::filesystem::path meta(const std::string& suffix) const;
};

// "IJBB" or "IJBC" when exactly one of them has a pair file under ROOT/meta; a DataError
// naming what was found otherwise.
std::string detect_ijb_name(const std::filesystem::path& root);

// Reads and checks the protocol: every line's field count and numbers, the two image lists
// naming the same image on the same line, every image file present (paths inside loose_crop/),
// pair labels 0 or 1, every pair's and 1:N template having images, one subject per template,
// one gallery template per subject, and no subject in both galleries. Any violation is a
// DataError naming the file and the line. `name` is "IJBB" or "IJBC" (any case).
IjbProtocol read_ijb_protocol(const std::filesystem::path& root, const std::string& name);

}  // namespace facetrain::data
