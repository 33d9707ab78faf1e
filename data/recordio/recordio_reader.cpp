#include "data/recordio/recordio_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::data {
namespace {

constexpr std::uint32_t kMagic = 0xced7230a;

std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// An index of 5.8 million records (insightface's largest) is some 100 MiB.
constexpr std::int64_t kMaxIndexBytes = std::int64_t{1} << 30;

// NAME.rec for NAME.rec, NAME.idx or NAME.
std::filesystem::path record_path(const std::filesystem::path& path) {
  std::filesystem::path stem = path;
  if (path.extension() == ".rec" || path.extension() == ".idx") stem.replace_extension();
  return stem.string() + ".rec";
}

}  // namespace

RecordIOReader::RecordIOReader(const std::filesystem::path& path)
    : rec_path_(record_path(path)), rec_(InputFile::open_or_throw<DataError>(rec_path_)) {
  rec_size_ = static_cast<std::uint64_t>(rec_.size());
  const std::filesystem::path idx_path = rec_path_.parent_path() / (rec_path_.stem().string() + ".idx");
  const std::string text =
      InputFile::open_or_throw<DataError>(idx_path).read_all<DataError>(kMaxIndexBytes, "a RecordIO index");
  std::istringstream idx(text);
  std::map<std::uint64_t, std::uint64_t> key_at;  // offset -> the key listed there
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(idx, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::uint64_t key = 0, offset = 0;
    if (!(fields >> key >> offset)) {
      throw DataError(fmt::format("{}:{}: expected \"key<TAB>offset\", found \"{}\"",
                                  idx_path.string(), line_no, line.substr(0, 60)));
    }
    if (offset >= rec_size_) {
      throw DataError(fmt::format("{}:{}: offset {} is past the end of {} ({} bytes)",
                                  idx_path.string(), line_no, offset, rec_path_.string(),
                                  rec_size_));
    }
    if (!offsets_.emplace(key, offset).second) {
      throw DataError(fmt::format("{}:{}: key {} appears twice", idx_path.string(), line_no, key));
    }
    if (const auto [it, fresh] = key_at.emplace(offset, key); !fresh) {
      throw DataError(fmt::format("{}:{}: key {} has offset {}, which key {} has already: every "
                                  "record has an offset of its own",
                                  idx_path.string(), line_no, key, offset, it->second));
    }
    keys_.push_back(key);
  }
  std::sort(keys_.begin(), keys_.end());
  for (const auto& [offset, key] : key_at) starts_.push_back(offset);
  if (keys_.empty()) throw DataError(fmt::format("{}: no records listed", idx_path.string()));
}

std::uint64_t RecordIOReader::record_limit(std::uint64_t offset) const {
  const auto next = std::upper_bound(starts_.begin(), starts_.end(), offset);
  return next == starts_.end() ? rec_size_ : *next;
}

std::vector<std::uint8_t> RecordIOReader::read(std::uint64_t key) {
  const auto it = offsets_.find(key);
  if (it == offsets_.end()) {
    throw DataError(fmt::format("{}: no record with key {}", rec_path_.string(), key));
  }
  std::uint64_t offset = it->second;
  const std::uint64_t limit = record_limit(offset);
  std::vector<std::uint8_t> out;
  for (int part = 0;; ++part) {
    std::uint8_t header[8];
    if (offset + 8 > limit ||
        rec_.read_at(static_cast<std::int64_t>(offset), reinterpret_cast<char*>(header), 8) != 8) {
      throw DataError(fmt::format("{}: record {} at offset {}: truncated header",
                                  rec_path_.string(), key, offset));
    }
    const std::uint32_t magic = le32(header);
    if (magic != kMagic) {
      throw DataError(
          fmt::format("{}: record {} at offset {}: magic {:#010x}, expected {:#010x} "
                      "(not a RecordIO file, or a wrong .idx)",
                      rec_path_.string(), key, offset, magic, kMagic));
    }
    const std::uint32_t word = le32(header + 4);
    const std::uint32_t cflag = word >> 29;
    const std::uint32_t length = word & ((1u << 29) - 1);
    const bool first = part == 0;
    if ((first && cflag != 0 && cflag != 1) || (!first && cflag != 2 && cflag != 3)) {
      throw DataError(fmt::format("{}: record {} at offset {}: part {} has continuation flag {}",
                                  rec_path_.string(), key, offset, part, cflag));
    }
    if (offset + 8 + length > limit) {
      throw DataError(
          fmt::format("{}: record {} at offset {}: {} bytes announced, {} first",
                      rec_path_.string(), key, offset, length,
                      limit == rec_size_ ? std::string("the file ends")
                                         : fmt::format("the next record begins at {}", limit)));
    }
    const std::size_t at = out.size();
    out.resize(at + length);
    if (length > 0 &&
        rec_.read_at(static_cast<std::int64_t>(offset + 8), reinterpret_cast<char*>(out.data() + at),
                     length) != length) {
      throw DataError(fmt::format("{}: record {}: read failed", rec_path_.string(), key));
    }
    if (cflag == 0 || cflag == 3) break;
    // The writer cut the record where the magic number occurred; put it back.
    const std::uint8_t magic_bytes[4] = {0x0a, 0x23, 0xd7, 0xce};
    out.insert(out.end(), magic_bytes, magic_bytes + 4);
    offset += 8 + ((length + 3u) & ~3u);
  }
  return out;
}

ImageRecord unpack_image_record(const std::vector<std::uint8_t>& record, const std::string& where) {
  constexpr std::size_t kHeader = 24;
  if (record.size() < kHeader) {
    throw DataError(
        fmt::format("{}: {} bytes, shorter than the 24-byte image header", where, record.size()));
  }
  ImageRecord r;
  std::memcpy(&r.flag, record.data(), 4);
  float label = 0;
  std::memcpy(&label, record.data() + 4, 4);
  std::memcpy(&r.id, record.data() + 8, 8);
  std::memcpy(&r.id2, record.data() + 16, 8);
  std::size_t at = kHeader;
  if (r.flag == 0) {
    r.labels.push_back(label);
  } else {
    if (record.size() < kHeader + 4ull * r.flag) {
      throw DataError(fmt::format("{}: header announces {} labels, the record holds {} bytes",
                                  where, r.flag, record.size()));
    }
    r.labels.resize(r.flag);
    std::memcpy(r.labels.data(), record.data() + at, 4ull * r.flag);
    at += 4ull * r.flag;
  }
  r.payload.assign(record.begin() + static_cast<long>(at), record.end());
  return r;
}

ImageRecord RecordIOReader::read_image(std::uint64_t key) {
  return unpack_image_record(read(key), fmt::format("{}: record {}", rec_path_.string(), key));
}

}  // namespace facetrain::data
