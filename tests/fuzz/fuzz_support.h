#pragma once
// What every fuzz target shares: a scratch folder for readers that take paths, and the rule
// that a reader may refuse an input only with facetrain::Error (any other exception, crash,
// sanitizer report, leak or timeout is a finding).

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace facetrain::fuzz {

// A folder of this process's own, emptied for each input.
inline std::filesystem::path scratch() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base =
        std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return base / ("facetrain_fuzz_" + std::to_string(::getpid()));
  }();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::uint8_t* data,
                       std::size_t size) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace facetrain::fuzz
