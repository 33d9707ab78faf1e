#include "data/shards/manifest.h"

#include <fmt/format.h>
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace {

using nlohmann::json;

template <typename T>
T field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw DataError(fmt::format("{}: missing key \"{}\"", where, key));
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw DataError(
        fmt::format("{}: key \"{}\" has the wrong type ({})", where, key, j.at(key).type_name()));
  }
}

}  // namespace

Manifest Manifest::read(const std::filesystem::path& dir) {
  const auto path = dir / "manifest.json";
  const std::string where = path.string();
  std::ifstream in(path);
  if (!in)
    throw DataError(
        fmt::format("{}: no manifest (is {} a facetrain dataset folder?)", where, dir.string()));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {  // parse_error, and out_of_range on number overflow
    throw DataError(fmt::format("{}: invalid JSON: {}", where, e.what()));
  }
  if (!j.is_object()) throw DataError(fmt::format("{}: expected a JSON object", where));
  const auto format = field<std::string>(j, "format", where);
  if (format != kFormat) {
    throw DataError(fmt::format("{}: format \"{}\", expected \"{}\"", where, format, kFormat));
  }
  const auto version = field<int>(j, "version", where);
  if (version < 1 || version > kVersion) {
    throw DataError(
        fmt::format("{}: format version {} is not supported (this build reads up to {})", where,
                    version, kVersion));
  }
  Manifest m;
  m.num_classes = field<std::int64_t>(j, "num_classes", where);
  m.num_samples = field<std::int64_t>(j, "num_samples", where);
  const auto size = field<std::vector<std::int64_t>>(j, "image_size", where);
  if (size.size() != 2)
    throw DataError(fmt::format("{}: image_size must be [height, width]", where));
  m.image_height = size[0];
  m.image_width = size[1];
  m.channels = field<std::int64_t>(j, "channels", where);
  m.encoding = field<std::string>(j, "encoding", where);
  if (m.encoding != "jpeg") {
    throw DataError(fmt::format("{}: encoding \"{}\", expected \"jpeg\"", where, m.encoding));
  }
  if (!j.contains("shards") || !j.at("shards").is_array()) {
    throw DataError(fmt::format("{}: missing array \"shards\"", where));
  }
  std::int64_t total = 0;
  for (std::size_t i = 0; i < j.at("shards").size(); ++i) {
    const json& s = j.at("shards")[i];
    const std::string w = fmt::format("{}: shards[{}]", where, i);
    ShardInfo info;
    info.file = field<std::string>(s, "file", w);
    info.num_samples = field<std::int64_t>(s, "num_samples", w);
    info.label_min = field<std::int64_t>(s, "label_min", w);
    info.label_max = field<std::int64_t>(s, "label_max", w);
    info.bytes = field<std::int64_t>(s, "bytes", w);
    info.crc32 = field<std::uint32_t>(s, "crc32", w);
    if (info.file.find('/') != std::string::npos) {
      throw DataError(
          fmt::format("{}: file \"{}\" must be a plain name in the folder", w, info.file));
    }
    total += info.num_samples;
    m.shards.push_back(std::move(info));
  }
  if (total != m.num_samples) {
    throw DataError(
        fmt::format("{}: num_samples is {} but the shards hold {}", where, m.num_samples, total));
  }
  if (m.num_classes < 1 || m.channels != 3 || m.image_height < 1 || m.image_width < 1) {
    throw DataError(
        fmt::format("{}: expected num_classes >= 1, channels 3 and a positive image "
                    "size, found {}, {}, {}x{}",
                    where, m.num_classes, m.channels, m.image_height, m.image_width));
  }
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
