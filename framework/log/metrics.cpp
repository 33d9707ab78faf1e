#include "framework/log/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>

#include "framework/core/error.h"

namespace facetrain::log {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Protobuf wire format: varint, then tagged fields.
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire_type));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
template <typename T>
void put_fixed(std::string& out, int field, int wire_type, T value) {
  put_tag(out, field, wire_type);
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(raw, sizeof(T));
}

std::string event(double wall_time, std::int64_t step) {
  std::string e;
  put_fixed(e, 1, 1, wall_time);  // Event.wall_time: double
  put_tag(e, 2, 0);               // Event.step: int64
  put_varint(e, static_cast<std::uint64_t>(step));
  return e;
}

std::uint32_t masked(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xffffffffu;
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

JsonlWriter::JsonlWriter(const std::filesystem::path& path) : path_(path) {
  out_.open(path, std::ios::app);
  if (!out_) throw Error(fmt::format("{}: cannot open for appending", path.string()));
}

void JsonlWriter::write(std::int64_t step,
                        const std::vector<std::pair<std::string, double>>& values) {
  std::string line = fmt::format("{{\"step\": {}", step);
  for (const auto& [name, value] : values) {
    // JSON has no NaN/inf: written as null.
    line += std::isfinite(value) ? fmt::format(", \"{}\": {:.9g}", name, value)
                                 : fmt::format(", \"{}\": null", name);
  }
  line += "}\n";
  out_ << line << std::flush;
  if (!out_) throw Error(fmt::format("{}: write failed", path_.string()));
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "host";
  gethostname(host, sizeof(host) - 1);
  path_ = dir / fmt::format("events.out.tfevents.{}.{}.{}",
                            static_cast<long long>(now_seconds()), host, ::getpid());
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error(fmt::format("{}: cannot create the event file", path_.string()));
  std::string first = event(now_seconds(), 0);
  put_bytes(first, 3, "brain.Event:2");  // Event.file_version
  record(first);
}

void TensorBoardWriter::scalar(const std::string& tag, double value, std::int64_t step) {
  std::string v;
  put_bytes(v, 1, tag);                                    // Summary.Value.tag
  put_fixed(v, 2, 5, static_cast<float>(value));           // Summary.Value.simple_value
  std::string summary;
  put_bytes(summary, 1, v);                                // Summary.value
  std::string e = event(now_seconds(), step);
  put_bytes(e, 5, summary);                                // Event.summary
  record(e);
}

void TensorBoardWriter::record(const std::string& data) {
  const std::uint64_t length = data.size();
  char header[12];
  std::memcpy(header, &length, 8);
  const std::uint32_t length_crc = masked(crc32c(header, 8));
  std::memcpy(header + 8, &length_crc, 4);
  const std::uint32_t data_crc = masked(crc32c(data.data(), data.size()));
  out_.write(header, 12);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), 4);
  out_.flush();
  if (!out_) throw Error(fmt::format("{}: write failed", path_.string()));
}

}  // namespace facetrain::log
