#include "framework/serialization/zip_archive.h"

#include <fmt/format.h>

#include "framework/core/checksum.h"
#include "framework/core/error.h"

namespace facetrain::serialization {
namespace {

constexpr std::uint32_t kLocalHeader = 0x04034b50;
constexpr std::uint32_t kCentralHeader = 0x02014b50;
constexpr std::uint32_t kEndOfDirectory = 0x06054b50;
constexpr std::uint32_t kZip64Locator = 0x07064b50;
constexpr std::uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr std::size_t kEndSize = 22, kLocatorSize = 20, kZip64EndSize = 56;
constexpr std::size_t kCentralSize = 46, kLocalSize = 30;

// Little-endian fields at checked offsets of a byte range.
class Fields {
 public:
  Fields(const std::uint8_t* bytes, std::size_t size) : bytes_(bytes), size_(size) {}
  bool has(std::uint64_t at, std::uint64_t n) const { return at <= size_ && n <= size_ - at; }
  std::uint64_t le(std::uint64_t at, int n) const {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(bytes_[at + i]) << (8 * i);
    return v;
  }

 private:
  const std::uint8_t* bytes_;
  std::size_t size_;
};

}  // namespace

bool looks_like_zip(const std::uint8_t* bytes, std::size_t size) {
  return size >= 4 && Fields(bytes, size).le(0, 4) == kLocalHeader;
}

ZipArchive::ZipArchive(const std::uint8_t* bytes, std::size_t size, std::string source)
    : bytes_(bytes), size_(size), source_(std::move(source)) {
  read_directory();
}

void ZipArchive::fail(const std::string& what) const {
  throw DataError(fmt::format("{}: not a readable zip archive: {}", source_, what));
}

void ZipArchive::read_directory() {
  const Directory d = find_directory();
  const Fields f(bytes_, size_);
  if (!f.has(d.offset, d.size)) {
    fail(fmt::format("the central directory (bytes {} + {}) lies past the end ({} bytes)", d.offset,
                     d.size, size_));
  }
  // Every entry takes 46 bytes at least: a count beyond that is a lie, not an allocation.
  if (d.count > d.size / kCentralSize) {
    fail(fmt::format("{} entries announced in a {}-byte directory", d.count, d.size));
  }
  entries_.reserve(static_cast<std::size_t>(d.count));
  std::uint64_t at = d.offset, data_bytes = 0;
  for (std::uint64_t i = 0; i < d.count; ++i) {
    ZipEntry e;
    at = read_entry(at, d.offset + d.size, i, e);
    // Entries own disjoint bytes: together they cannot hold more than the archive.
    data_bytes += e.size;
    if (data_bytes > size_) {
      fail(fmt::format("{}: the entries hold more bytes than the archive's {} (shared data)",
                       e.name, size_));
    }
    if (!by_name_.emplace(e.name, entries_.size()).second) {
      fail(fmt::format("two entries are called {}", e.name));
    }
    entries_.push_back(std::move(e));
  }
}

ZipArchive::Directory ZipArchive::find_directory() const {
  const Fields f(bytes_, size_);
  // The end record is in the last 22 + 65535 (its comment) bytes; search backwards.
  if (size_ < kEndSize) fail(fmt::format("{} bytes, too short for an end record", size_));
  std::uint64_t end = size_ - kEndSize;
  const std::uint64_t lowest = size_ >= kEndSize + 0xffff ? size_ - kEndSize - 0xffff : 0;
  while (f.le(end, 4) != kEndOfDirectory) {
    if (end == lowest) fail("no end-of-central-directory record (truncated?)");
    --end;
  }
  Directory d{f.le(end + 16, 4), f.le(end + 12, 4), f.le(end + 10, 2)};
  if (d.count == 0xffff || d.size == 0xffffffff || d.offset == 0xffffffff) {
    // zip64: a locator just before the end record points at the zip64 end record.
    if (end < kLocatorSize || f.le(end - kLocatorSize, 4) != kZip64Locator) {
      fail("a zip64 archive without its zip64 locator");
    }
    const std::uint64_t record = f.le(end - kLocatorSize + 8, 8);
    if (!f.has(record, kZip64EndSize) || f.le(record, 4) != kZip64EndOfDirectory) {
      fail(fmt::format("no zip64 end record at byte {}", record));
    }
    d = {f.le(record + 48, 8), f.le(record + 40, 8), f.le(record + 32, 8)};
  }
  return d;
}

std::uint64_t ZipArchive::read_entry(std::uint64_t at, std::uint64_t directory_end,
                                     std::uint64_t index, ZipEntry& e) const {
  const Fields f(bytes_, size_);
  if (at > directory_end || directory_end - at < kCentralSize || f.le(at, 4) != kCentralHeader) {
    fail(fmt::format("central directory entry {} is missing or damaged", index));
  }
  const auto flags = f.le(at + 8, 2), method = f.le(at + 10, 2);
  e.crc32 = static_cast<std::uint32_t>(f.le(at + 16, 4));
  std::uint64_t compressed = f.le(at + 20, 4);
  e.size = f.le(at + 24, 4);
  const auto name_length = f.le(at + 28, 2), extra_length = f.le(at + 30, 2),
             comment_length = f.le(at + 32, 2);
  std::uint64_t local = f.le(at + 42, 4);
  const std::uint64_t next = at + kCentralSize + name_length + extra_length + comment_length;
  if (next > directory_end) fail(fmt::format("central directory entry {} runs past it", index));
  e.name.assign(reinterpret_cast<const char*>(bytes_ + at + kCentralSize), name_length);
  // zip64 extra field: 8-byte sizes and offset for the fields saturated above, in order.
  const std::uint64_t extra_end = at + kCentralSize + name_length + extra_length;
  for (std::uint64_t x = at + kCentralSize + name_length; x + 4 <= extra_end;) {
    const auto id = f.le(x, 2), length = f.le(x + 2, 2);
    const std::uint64_t field_end = x + 4 + length;
    if (field_end > extra_end) break;
    if (id == 0x0001) {
      std::uint64_t p = x + 4;
      const auto wide = [&](std::uint64_t& value) {
        if (value != 0xffffffff) return;
        if (p + 8 > field_end) fail(fmt::format("{}: a short zip64 extra field", e.name));
        value = f.le(p, 8);
        p += 8;
      };
      wide(e.size);
      wide(compressed);
      wide(local);
    }
    x = field_end;
  }
  if (method != 0 || compressed != e.size) {
    fail(fmt::format("{}: compressed (method {}); torch.save stores entries uncompressed", e.name,
                     method));
  }
  if ((flags & 0x1) != 0) fail(fmt::format("{}: encrypted", e.name));
  // The data follows the local header, whose own name and extra lengths count.
  if (!f.has(local, kLocalSize) || f.le(local, 4) != kLocalHeader) {
    fail(fmt::format("{}: no local header at byte {}", e.name, local));
  }
  const auto local_name = f.le(local + 26, 2);
  if (local_name != name_length || !f.has(local + kLocalSize, local_name) ||
      e.name.compare(0, e.name.size(), reinterpret_cast<const char*>(bytes_ + local + kLocalSize),
                     local_name) != 0) {
    fail(fmt::format("{}: its local header names another entry", e.name));
  }
  e.offset = local + kLocalSize + local_name + f.le(local + 28, 2);
  if (!f.has(e.offset, e.size)) {
    fail(fmt::format("{}: its {} bytes at byte {} lie past the end ({} bytes; truncated?)", e.name,
                     e.size, e.offset, size_));
  }
  return next;
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipArchive::read(const ZipEntry& entry) const {
  const std::string_view data(reinterpret_cast<const char*>(bytes_ + entry.offset),
                              static_cast<std::size_t>(entry.size));
  const std::uint32_t crc = crc32_of(data);
  if (crc != entry.crc32) {
    throw DataError(fmt::format("{}: {}: CRC-32 {:08x}, the archive says {:08x} (a damaged file)",
                                source_, entry.name, crc, entry.crc32));
  }
  return data;
}

}  // namespace facetrain::serialization
