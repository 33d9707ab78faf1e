#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "framework/core/input_file.h"

namespace facetrain::data {

// insightface's image-record header (MXNet's IRHeader): 24 bytes at the start of a record,
// then `flag` extra float32 labels when flag > 0, then the image bytes.
struct ImageRecord {
  std::uint32_t flag = 0;
  std::vector<float> labels;  // one label (flag == 0) or `flag` labels
  std::uint64_t id = 0;
  std::uint64_t id2 = 0;
  std::vector<std::uint8_t> payload;  // the image (JPEG) bytes
};

// Reads an MXNet/insightface RecordIO pair: NAME.rec holds records, each a 4-byte magic
// 0xced7230a, a 4-byte (cflag << 29 | length) word and `length` bytes padded to 4; a record
// split into parts (cflag 1 first, 2 middle, 3 last) is joined with the magic between parts, as
// the writer cut it there. NAME.idx lists "key<TAB>offset" lines; every key has a record of its
// own, ending where the next record begins (two keys at one offset, or a record running into the
// next, are refused, so what is read never exceeds the file). Malformed files give
// DataError naming the file, the record's key or offset, and what was expected.
class RecordIOReader {
 public:
  // `path` is NAME.rec, NAME.idx or NAME.
  explicit RecordIOReader(const std::filesystem::path& path);

  // Keys in the index, ascending.
  const std::vector<std::uint64_t>& keys() const { return keys_; }
  bool has(std::uint64_t key) const { return offsets_.count(key) > 0; }
  // The whole record of `key` (parts joined).
  std::vector<std::uint8_t> read(std::uint64_t key);
  // read(key) unpacked into header, labels and payload.
  ImageRecord read_image(std::uint64_t key);
  const std::filesystem::path& rec_path() const { return rec_path_; }

 private:
  // Where the record at `offset` must end: the next record's offset, or the end of the file.
  std::uint64_t record_limit(std::uint64_t offset) const;

  std::filesystem::path rec_path_;
  InputFile rec_;
  std::uint64_t rec_size_ = 0;
  std::vector<std::uint64_t> starts_;  // every record's offset, ascending
  std::vector<std::uint64_t> keys_;
  std::map<std::uint64_t, std::uint64_t> offsets_;
};

// Unpacks one record's bytes; `where` names it in errors.
ImageRecord unpack_image_record(const std::vector<std::uint8_t>& record, const std::string& where);

}  // namespace facetrain::data
