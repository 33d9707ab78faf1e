#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace facetrain::log {

// A one-line progress bar on stderr: "pack [#######.............]  3072/10000  812.4 img/s
// ETA 0:08", redrawn at most every 0.2 s (and always on the last update) when stderr is a
// terminal, and as a plain line every 10% otherwise (logs, CI).
class ProgressBar {
 public:
  ProgressBar(std::string label, std::string unit);
  void update(std::int64_t done, std::int64_t total);
  // Seconds since construction.
  double elapsed() const;

 private:
  std::string label_, unit_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_;
  std::int64_t next_decile_ = 1;
};

}  // namespace facetrain::log
