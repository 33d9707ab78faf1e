#include "framework/log/logger.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>

#include "framework/core/error.h"

namespace facetrain::log {
namespace {

struct State {
  std::mutex mutex;
  LogOptions options;
  std::ofstream file;
};

State& state() {
  static State s;
  return s;
}

char level_letter(Level level) {
  switch (level) {
    case Level::kDebug:
      return 'D';
    case Level::kInfo:
      return 'I';
    case Level::kWarn:
      return 'W';
    case Level::kError:
      return 'E';
  }
  return '?';
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:03d}", buf, ms);
}

}  // namespace

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  throw ConfigError(fmt::format("log level '{}': expected debug, info, warn or error", name));
}

void configure(const LogOptions& options) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().options = options;
}

const LogOptions& options() {
  return state().options;
}

void open_file(const std::filesystem::path& path) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::lock_guard<std::mutex> lock(state().mutex);
  state().file.close();
  state().file.clear();
  state().file.open(path, std::ios::app);
  if (!state().file) throw Error(fmt::format("{}: cannot open the log file", path.string()));
}

void close_file() {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().file.close();
}

bool enabled(Level level) {
  return static_cast<int>(level) >= static_cast<int>(state().options.level);
}

void write(Level level, std::string_view message) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const auto& o = s.options;
  const std::string rank_part =
      o.world_size > 1 ? fmt::format(" [rank {}/{}]", o.rank, o.world_size) : std::string();
  const std::string line =
      fmt::format("{} {}{} {}\n", timestamp(), level_letter(level), rank_part, message);
  const bool to_console =
      o.console && (o.rank == 0 || o.console_all_ranks || level == Level::kError);
  if (to_console) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
  if (s.file.is_open()) {
    s.file << line;
    s.file.flush();
  }
}

}  // namespace facetrain::log
