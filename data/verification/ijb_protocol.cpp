#include "data/verification/ijb_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <unordered_set>

#include "framework/core/error.h"
#include "framework/core/input_file.h"
#include "framework/core/text_table.h"

namespace facetrain::data {
namespace fs = std::filesystem;
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

// The images: the landmarks file and the template/media file, line for line.
void read_images(IjbProtocol& p) {
  const fs::path landmarks = p.meta("_name_5pts_score.txt");
  const fs::path tid_mid = p.meta("_face_tid_mid.txt");
  p.images = read_landmarks(landmarks.string());
  std::size_t k = 0;
  read_text_table(tid_mid.string(), [&](const TextRow& row) {
    row.expect_fields(3, 3, "image template-id media-id");
    if (k >= p.images.size()) {
      throw DataError(fmt::format("{}: more images than the {} lines of {}", row.where(),
                                  p.images.size(), landmarks.string()));
    }
    if (row.fields[0] != p.images[k].path) {
      throw DataError(fmt::format(
          "{}: image '{}', but line {} of {} is '{}': the two files must "
          "list the same images in the same order",
          row.where(), row.fields[0], p.images[k].line, landmarks.string(), p.images[k].path));
    }
    p.templates.push_back(row.integer(1, "a template id"));
    p.medias.push_back(row.integer(2, "a media id"));
    ++k;
  });
  if (k != p.images.size()) {
    throw DataError(fmt::format("{}: {} images, but {} lists {}", tid_mid.string(), k,
                                landmarks.string(), p.images.size()));
  }
  for (const auto& e : p.images) {
    const fs::path rel(e.path);
    const std::string where = fmt::format("{}:{}: image '{}'", landmarks.string(), e.line, e.path);
    if (rel.is_absolute() || rel.lexically_normal().string().rfind("..", 0) == 0) {
      throw DataError(
          fmt::format("{}: the path must stay inside {}", where, p.image_folder().string()));
    }
    const InputFile image = InputFile::open(p.image_folder() / rel);
    if (e.path.find('\0') != std::string::npos || !image.problem().empty()) {
      throw DataError(fmt::format("{}: {} in {}", where,
                                  image.problem().empty() ? "a NUL byte in the name" : image.problem(),
                                  p.image_folder().string()));
    }
    // The detector's face probability weighs the image's features: within [0, 1].
    if (!(e.score >= 0 && e.score <= 1)) {
      throw DataError(
          fmt::format("{}: detector score {} must lie within [0, 1] (a face probability)", where,
                      e.score));
    }
    // Landmarks that are no points are refused here, before any image is embedded; any others
    // align, as in eval_ijbc.py (outside the crop: the zero border; all at one point: the zero
    // face).
    check_landmark_values(e.points, where);
  }
}

void read_pairs(IjbProtocol& p, const std::unordered_set<std::int64_t>& known) {
  const std::string file = p.meta("_template_pair_label.txt").string();
  read_text_table(file, [&](const TextRow& row) {
    row.expect_fields(3, 3, "template-id template-id label");
    const std::int64_t a = row.integer(0, "a template id");
    const std::int64_t b = row.integer(1, "a template id");
    const std::int64_t label = row.integer(2, "a label, 1 (genuine) or 0 (impostor)");
    if (label != 0 && label != 1) {
      throw DataError(
          fmt::format("{}: label {}: expected 1 (genuine) or 0 (impostor)", row.where(), label));
    }
    for (const std::int64_t t : {a, b}) {
      if (known.count(t) == 0) {
        throw DataError(fmt::format("{}: template {} has no images in {}", row.where(), t,
                                    p.meta("_face_tid_mid.txt").string()));
      }
    }
    p.pair_first.push_back(a);
    p.pair_second.push_back(b);
    p.pair_label.push_back(static_cast<std::uint8_t>(label));
  });
  if (p.pair_first.empty()) throw DataError(fmt::format("{}: no pairs", file));
}

// A 1:N CSV: a header line, then TEMPLATE_ID,SUBJECT_ID,… per image (templates repeat).
IjbTemplateList read_template_list(const IjbProtocol& p, const std::string& name,
                                   const std::string& suffix,
                                   const std::unordered_set<std::int64_t>& known) {
  IjbTemplateList list;
  list.name = name;
  list.file = p.meta(suffix);
  std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>>
      subject_of;  // template → (subject, line)
  read_text_table(
      list.file.string(),
      [&](const TextRow& row) {
        row.expect_fields(2, 1000, "TEMPLATE_ID,SUBJECT_ID,...");
        const std::int64_t t = row.integer(0, "a template id");
        const std::int64_t s = row.integer(1, "a subject id");
        if (known.count(t) == 0) {
          throw DataError(fmt::format("{}: template {} has no images in {}", row.where(), t,
                                      p.meta("_face_tid_mid.txt").string()));
        }
        const auto [it, added] = subject_of.emplace(t, std::make_pair(s, row.line));
        if (!added && it->second.first != s) {
          throw DataError(fmt::format("{}: template {} is subject {}, but line {} says {}",
                                      row.where(), t, s, it->second.second, it->second.first));
        }
      },
      /*skip_lines=*/1);
  if (subject_of.empty()) throw DataError(fmt::format("{}: no templates", list.file.string()));
  for (const auto& [t, s] : subject_of) {
    list.templates.push_back(t);
    list.subjects.push_back(s.first);
  }
  return list;
}

// One template per subject in each gallery, and no subject in both.
void check_galleries(const std::vector<IjbTemplateList>& galleries) {
  std::map<std::int64_t, std::pair<std::int64_t, const IjbTemplateList*>> gallery_of;
  for (const auto& g : galleries) {
    for (std::size_t k = 0; k < g.templates.size(); ++k) {
      const auto [it, added] =
          gallery_of.emplace(g.subjects[k], std::make_pair(g.templates[k], &g));
      if (!added) {
        throw DataError(fmt::format(
            "{}: subject {} has template {}, and template {} in {}: a gallery holds one template "
            "per subject and the galleries are disjoint",
            g.file.string(), g.subjects[k], g.templates[k], it->second.first,
            it->second.second->file.string()));
      }
    }
  }
}

}  // namespace

fs::path IjbProtocol::meta(const std::string& suffix) const {
  return root / "meta" / (lower(name) + suffix);
}

std::string detect_ijb_name(const fs::path& root) {
  std::vector<std::string> found;
  for (const char* name : {"IJBB", "IJBC"}) {
    if (fs::exists(root / "meta" / (lower(name) + "_template_pair_label.txt")))
      found.push_back(name);
  }
  if (found.size() != 1) {
    throw DataError(fmt::format(
        "{}: {} IJB protocols under meta/ (ijbb_template_pair_label.txt, "
        "ijbc_template_pair_label.txt): expected exactly one, or give the name (IJBB or IJBC)",
        root.string(), found.size()));
  }
  return found[0];
}

IjbProtocol read_ijb_protocol(const fs::path& root, const std::string& name) {
  IjbProtocol p;
  p.root = root;
  p.name = upper(name);
  if (p.name != "IJBB" && p.name != "IJBC") {
    throw UsageError(fmt::format("IJB name '{}': expected IJBB or IJBC", name));
  }
  if (!fs::is_directory(p.image_folder())) {
    throw DataError(
        fmt::format("{}: no loose_crop/ folder (insightface's IJB layout: "
                    "loose_crop/ and meta/)",
                    root.string()));
  }
  read_images(p);
  const std::unordered_set<std::int64_t> known(p.templates.begin(), p.templates.end());
  read_pairs(p, known);

  const bool ijbc = p.name == "IJBC";
  const std::string g1 = ijbc ? "G1" : "S1", g2 = ijbc ? "G2" : "S2";
  const std::vector<std::string> one_to_n = {"_1N_gallery_" + g1 + ".csv",
                                             "_1N_gallery_" + g2 + ".csv", "_1N_probe_mixed.csv"};
  const auto present = std::count_if(one_to_n.begin(), one_to_n.end(),
                                     [&](const std::string& s) { return fs::exists(p.meta(s)); });
  if (present == 0) return p;
  if (present != 3) {
    throw DataError(fmt::format(
        "{}: {} of the three 1:N files ({}, {}, {}): expected all or none",
        (root / "meta").string(), present, p.meta(one_to_n[0]).filename().string(),
        p.meta(one_to_n[1]).filename().string(), p.meta(one_to_n[2]).filename().string()));
  }
  p.galleries.push_back(read_template_list(p, g1, one_to_n[0], known));
  p.galleries.push_back(read_template_list(p, g2, one_to_n[1], known));
  p.probes = read_template_list(p, "probe", one_to_n[2], known);
  check_galleries(p.galleries);
  return p;
}

}  // namespace facetrain::data
