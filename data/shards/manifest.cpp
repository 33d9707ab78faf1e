#include "data/shards/manifest.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "data/image/image_limits.h"
#include "framework/core/atomic_file.h"
#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"
#include "framework/core/strings.h"
#include "framework/serialization/json_object.h"

namespace facetrain::data {
namespace {

using nlohmann::json;
using Object = serialization::JsonObject<DataError>;

// A manifest lists shards, a few hundred bytes each: 64 MiB is some 200,000 of them.
constexpr std::int64_t kMaxManifestBytes = std::int64_t{64} << 20;

json parse(const std::filesystem::path& dir) {
  const auto path = dir / "manifest.json";
  const InputFile file = InputFile::open(path);
  if (!file.problem().empty()) {
    throw DataError(fmt::format("{}: no manifest: {} (is {} a facetrain dataset folder?)",
                                path.string(), file.problem(), dir.string()));
  }
  const std::string text = file.read_all<DataError>(kMaxManifestBytes, "a manifest");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range on number overflow
    throw DataError(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

void check_format(const Object& j) {
  const auto format = j.string("format");
  if (format != Manifest::kFormat) {
    throw DataError(
        fmt::format("{}: format \"{}\", expected \"{}\"", j.where(), format, Manifest::kFormat));
  }
  const auto version = j.integer<std::int64_t>("version");
  if (version < 1 || version > Manifest::kVersion) {
    throw DataError(
        fmt::format("{}: format version {} is not supported (this build reads up to {})", j.where(),
                    version, Manifest::kVersion));
  }
}

ShardInfo shard_info(const Object& s) {
  ShardInfo info;
  info.file = s.string("file");
  if (!is_plain_file_name(info.file)) {
    throw DataError(fmt::format("{}: file \"{}\" must be a plain name in the folder (1 to 255 "
                                "bytes, no '/')",
                                s.where(), info.file));
  }
  info.num_samples = s.integer<std::int64_t>("num_samples", 0);
  info.label_min = s.integer<std::int64_t>("label_min");
  info.label_max = s.integer<std::int64_t>("label_max");
  info.bytes = s.integer<std::int64_t>("bytes", 0);
  info.crc32 = s.integer<std::uint32_t>("crc32");
  return info;
}

// The shards, each named once, whose labels lie in [0, num_classes) and whose sample counts add
// up to the manifest's.
std::vector<ShardInfo> shard_list(const Object& j, std::int64_t num_samples,
                                  std::int64_t num_classes) {
  const json& list = j.array("shards");
  std::vector<ShardInfo> shards;
  std::map<std::string, std::size_t> seen;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = fmt::format("{}: shards[{}]", j.where(), i);
    const ShardInfo& s = shards.emplace_back(shard_info(Object(list[i], where)));
    if (const auto [it, fresh] = seen.emplace(s.file, i); !fresh) {
      throw DataError(fmt::format("{}: file \"{}\" is listed already as shards[{}]", where, s.file,
                                  it->second));
    }
    if (s.num_samples > 0 && (s.label_min < 0 || s.label_max < s.label_min ||
                              s.label_max >= num_classes)) {
      throw DataError(fmt::format("{}: labels [{}, {}] are not within [0, num_classes = {})", where,
                                  s.label_min, s.label_max, num_classes));
    }
    total = checked::add<DataError>(total, s.num_samples, where + ": num_samples, in all");
  }
  if (total != num_samples) {
    throw DataError(
        fmt::format("{}: num_samples is {} but the shards hold {}", j.where(), num_samples, total));
  }
  return shards;
}

}  // namespace

Manifest Manifest::read(const std::filesystem::path& dir) {
  const json parsed = parse(dir);
  const Object j(parsed, (dir / "manifest.json").string());
  check_format(j);
  Manifest m;
  m.num_classes = j.integer<std::int64_t>("num_classes", 1);
  m.num_samples = j.integer<std::int64_t>("num_samples", 0);
  const auto size = j.integers<std::int64_t>("image_size", 2, 1, kMaxImagePixels);
  check_image_size(size[1], size[0], j.where() + ": image_size");
  m.image_height = size[0];
  m.image_width = size[1];
  m.channels = j.integer<std::int64_t>("channels", 3, 3);
  m.encoding = j.string("encoding");
  if (m.encoding != "jpeg") {
    throw DataError(fmt::format("{}: encoding \"{}\", expected \"jpeg\"", j.where(), m.encoding));
  }
  // Every class has an image: more classes than images is no dataset, and would size the
  // classifier from nothing.
  if (m.num_classes > std::max<std::int64_t>(m.num_samples, 1)) {
    throw DataError(fmt::format("{}: num_classes is {}, more than the {} images (num_samples) it "
                                "can have",
                                j.where(), m.num_classes, m.num_samples));
  }
  m.shards = shard_list(j, m.num_samples, m.num_classes);
  return m;
}

void Manifest::write(const std::filesystem::path& dir) const {
  json shard_list = json::array();
  for (const auto& s : shards) {
    shard_list.push_back({{"file", s.file},
                          {"num_samples", s.num_samples},
                          {"label_min", s.label_min},
                          {"label_max", s.label_max},
                          {"bytes", s.bytes},
                          {"crc32", s.crc32}});
  }
  const json j = {{"format", kFormat},
                  {"version", kVersion},
                  {"num_classes", num_classes},
                  {"num_samples", num_samples},
                  {"image_size", {image_height, image_width}},
                  {"channels", channels},
                  {"encoding", encoding},
                  {"shards", shard_list}};
  write_file_atomic(dir / "manifest.json", j.dump(2) + "\n");
}


}  // namespace facetrain::data
