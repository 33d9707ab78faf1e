#include "framework/log/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace facetrain::log {

ProgressBar::ProgressBar(std::string label, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      tty_(::isatty(STDERR_FILENO) == 1) {}

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(std::int64_t done, std::int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  const bool last = done >= total;
  if (tty_) {
    if (!last && now - last_draw_ < std::chrono::milliseconds(200)) return;
  } else {
    if (!last && done * 10 < next_decile_ * total) return;
    while (next_decile_ * total <= done * 10) ++next_decile_;
  }
  last_draw_ = now;
  const double secs = elapsed();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  const auto eta =
      rate > 0 ? static_cast<std::int64_t>(static_cast<double>(total - done) / rate) : 0;
  constexpr int kWidth = 24;
  const int filled = total > 0 ? static_cast<int>(kWidth * done / total) : kWidth;
  const std::string line =
      fmt::format("{} [{}{}] {}/{} {:.1f} {}/s ETA {}:{:02d}", label_, std::string(filled, '#'),
                  std::string(kWidth - filled, '.'), done, total, rate, unit_, eta / 60, eta % 60);
  std::fprintf(stderr, tty_ ? "\r%s%s" : "%s%s", line.c_str(), (last || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace facetrain::log
