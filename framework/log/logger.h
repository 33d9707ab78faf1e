#pragma once

#include <fmt/format.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace facetrain::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn", "error"; throws ConfigError naming the word otherwise.
Level parse_level(std::string_view name);

// How the process-wide logger writes. Console lines go to stderr (stdout is left to command
// output such as `config show`). With console_all_ranks false only rank 0 prints at every level
// and the other ranks print errors only, so a failure on any rank is still seen.
struct LogOptions {
  Level level = Level::kInfo;
  int rank = 0;
  int world_size = 1;
  bool console_all_ranks = false;
  bool console = true;
};

// Sets level, rank and console policy. Safe to call again (e.g. once the rank is known).
void configure(const LogOptions& options);
const LogOptions& options();

// Also writes every line of this rank (at the configured level) to `path`, appending; creates
// the parent folders. Throws facetrain::Error if the file cannot be opened.
void open_file(const std::filesystem::path& path);
void close_file();

bool enabled(Level level);

// Writes one line: "2026-11-29 10:00:00.123 I [rank 1/4] message" (the rank part only when the
// world has more than one rank). Thread-safe.
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kError)) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace facetrain::log
