#pragma once

// The entries of a zip archive held in memory, as PyTorch's torch.save writes them: stored, not
// compressed (zip64 records included, for archives past 4 GiB). A parser that assumes an
// attacker: every offset and size is checked against the bytes there are before it is used.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace facetrain::serialization {

struct ZipEntry {
  std::string name;
  std::uint64_t offset = 0;  // of the entry's data in the archive
  std::uint64_t size = 0;
  std::uint32_t crc32 = 0;
};

class ZipArchive {
 public:
  // Reads the central directory of `bytes` (which must outlive the archive). Anything but a
  // well-formed archive of stored entries — no end record, a directory or an entry past the
  // end of the bytes, a compressed or encrypted entry, local and central records that disagree,
  // two entries of one name, entries whose data add up to more than the archive (entries
  // sharing their bytes) — is a DataError naming `source` and the entry.
  ZipArchive(const std::uint8_t* bytes, std::size_t size, std::string source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry called `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  // The entry's bytes, after checking its CRC-32 (DataError naming the entry when it differs:
  // a damaged file).
  std::string_view read(const ZipEntry& entry) const;

 private:
  // Where the central directory is (from the end record, or the zip64 one), as announced.
  struct Directory {
    std::uint64_t offset = 0, size = 0, count = 0;
  };

  [[noreturn]] void fail(const std::string& what) const;
  void read_directory();
  Directory find_directory() const;
  // Reads central directory entry `index` at byte `at` (the directory ends at `directory_end`)
  // and its local header into `entry`; returns where the next entry starts.
  std::uint64_t read_entry(std::uint64_t at, std::uint64_t directory_end, std::uint64_t index,
                           ZipEntry& entry) const;

  const std::uint8_t* bytes_;
  std::size_t size_;
  std::string source_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> by_name_;
};

// Whether `bytes` start like a zip archive (a local file header).
bool looks_like_zip(const std::uint8_t* bytes, std::size_t size);

}  // namespace facetrain::serialization
