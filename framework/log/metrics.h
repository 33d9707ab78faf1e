#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace facetrain::log {

// Appends one JSON object per line to a metrics file (`{"step": 10, "loss": 12.3, ...}`), flushed
// after each line so a killed run keeps every line it wrote. Values are numbers; names are
// plain identifiers (no escaping needed).
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::filesystem::path& path);
  void write(std::int64_t step, const std::vector<std::pair<std::string, double>>& values);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

// Writes TensorBoard scalar summaries to an event file (events.out.tfevents.TIME.HOST.PID) in
// `dir`: TFRecord framing (length, masked CRC-32C of the length, the serialized Event, masked
// CRC-32C of it) around tensorflow.Event messages — the first with file_version "brain.Event:2",
// then one per scalar with wall_time, step and a Summary.Value {tag, simple_value}. The few
// fields are encoded directly in the protobuf wire format. Flushed after every write.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  void scalar(const std::string& tag, double value, std::int64_t step);
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::filesystem::path path_;
  std::ofstream out_;
};

// CRC-32C (Castagnoli), as TFRecord uses it.
std::uint32_t crc32c(const void* data, std::size_t size);

}  // namespace facetrain::log
