#include "data/shards/manifest.h"

#include <fmt/format.h>
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/image/image_limits.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/serialization/json_object.h"

namespace facetrain::data {
namespace {

using nlohmann::json;
using Object = serialization::JsonObject<DataError>;

json parse(const std::filesystem::path& dir) {
  const auto path = dir / "manifest.json";
  std::ifstream in(path);
  if (!in) {
    throw DataError(fmt::format("{}: no manifest (is {} a facetrain dataset folder?)",
                                path.string(), dir.string()));
  }
  try {
    return json::parse(in);
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
  if (info.file.find('/') != std::string::npos) {
    throw DataError(
        fmt::format("{}: file \"{}\" must be a plain name in the folder", s.where(), info.file));
  }
  info.num_samples = s.integer<std::int64_t>("num_samples", 0);
  info.label_min = s.integer<std::int64_t>("label_min");
  info.label_max = s.integer<std::int64_t>("label_max");
  info.bytes = s.integer<std::int64_t>("bytes", 0);
  info.crc32 = s.integer<std::uint32_t>("crc32");
  return info;
}

// The shards, whose sample counts must add up to the manifest's.
std::vector<ShardInfo> shard_list(const Object& j, std::int64_t num_samples) {
  const json& list = j.array("shards");
  std::vector<ShardInfo> shards;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    shards.push_back(shard_info(Object(list[i], fmt::format("{}: shards[{}]", j.where(), i))));
    if (__builtin_add_overflow(total, shards.back().num_samples, &total)) {
      throw DataError(fmt::format("{}: the shards' num_samples add up beyond 2^63", j.where()));
    }
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
  m.shards = shard_list(j, m.num_samples);
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

std::uint32_t file_crc32(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", file.string()));
  std::vector<char> block(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto n = in.gcount();
    if (n > 0) crc = crc32(crc, reinterpret_cast<const Bytef*>(block.data()), static_cast<uInt>(n));
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace facetrain::data
