#include "framework/core/run_layout.h"

#include <fmt/format.h>

#include <regex>

#include "framework/core/input_file.h"

namespace facetrain {
namespace fs = std::filesystem;

const char* const CheckpointLayout::kFiles[4] = {"backbone.pt", "optimizer.pt", kState,
                                                 "config.toml"};

fs::path CheckpointLayout::fc(std::int64_t lo, std::int64_t hi) const {
  return dir / fmt::format("fc-{}-{}.pt", lo, hi);
}

std::optional<std::pair<std::int64_t, std::int64_t>> CheckpointLayout::fc_range(
    const std::string& name) {
  static const std::regex pattern(R"(fc-(\d{1,18})-(\d{1,18})\.pt)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::make_pair(std::stoll(m[1].str()), std::stoll(m[2].str()));
}

fs::path RunLayout::log(int rank) const {
  return logs() / fmt::format("rank-{}.log", rank);
}

std::string RunLayout::step_name(std::int64_t step) {
  return fmt::format("step-{:07d}", step);
}

std::optional<std::int64_t> RunLayout::step_number(const std::string& name) {
  static const std::regex pattern(R"(step-(\d{7,18}))");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::stoll(m[1].str());
}

std::optional<fs::path> RunLayout::latest_checkpoint() const {
  const fs::path link = latest();
  std::error_code ec;
  if (fs::is_symlink(link, ec)) {
    const fs::path target = fs::read_symlink(link, ec);
    if (ec) return std::nullopt;
    return target.is_absolute() ? target : checkpoints() / target;
  }
  if (const InputFile file = InputFile::open(link); file.problem().empty()) {
    // A file naming the step folder: one short line.
    const std::string text = file.read_all<Error>(4096, "a latest file");
    const std::string name = text.substr(0, text.find('\n'));
    if (!step_number(name)) return std::nullopt;
    return checkpoints() / name;
  }
  return std::nullopt;
}

std::optional<CheckpointLayout> find_checkpoint(const fs::path& dir) {
  const CheckpointLayout self{dir};
  if (fs::exists(self.backbone())) return self;
  if (const auto latest = RunLayout{dir}.latest_checkpoint()) return CheckpointLayout{*latest};
  return std::nullopt;
}

}  // namespace facetrain
