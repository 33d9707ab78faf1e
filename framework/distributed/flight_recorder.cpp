#include "framework/distributed/flight_recorder.h"

#include <fmt/format.h>

#include <algorithm>

namespace facetrain::dist {
namespace {

double seconds(FlightRecorder::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// "3.1 ms" below a second, "9.8 s" above.
std::string span(FlightRecorder::Clock::duration d) {
  const double s = seconds(d);
  return s < 1.0 ? fmt::format("{:.1f} ms", s * 1e3) : fmt::format("{:.1f} s", s);
}

}  // namespace

FlightRecorder::FlightRecorder(std::string label, std::size_t capacity)
    : label_(std::move(label)), capacity_(std::max<std::size_t>(1, capacity)) {}

void FlightRecorder::issued(std::uint64_t seq, std::string what) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.push_back(Entry{seq, std::move(what), Clock::now(), std::nullopt});
  while (entries_.size() > capacity_) entries_.pop_front();
}

void FlightRecorder::completed(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->seq == seq) {
      if (!it->completed) it->completed = Clock::now();
      return;
    }
  }
}

bool FlightRecorder::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(entries_.begin(), entries_.end(),
                     [](const Entry& e) { return !e.completed.has_value(); });
}

std::string FlightRecorder::where(Clock::time_point now) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& e : entries_) {
    if (!e.completed) {
      return fmt::format("{}: waiting {} in {}", label_, span(now - e.issued), e.what);
    }
  }
  if (entries_.empty()) return fmt::format("{}: no collective yet", label_);
  const Entry& last = entries_.back();
  return fmt::format("{}: last collective {} completed {} ago", label_, last.what,
                     span(now - *last.completed));
}

std::vector<std::string> FlightRecorder::history(Clock::time_point now) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> lines;
  for (const auto& e : entries_) {
    lines.push_back(e.completed
                        ? fmt::format("{}: completed in {}", e.what, span(*e.completed - e.issued))
                        : fmt::format("{}: waiting for {}", e.what, span(now - e.issued)));
  }
  return lines;
}

}  // namespace facetrain::dist
