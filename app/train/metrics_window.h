#pragma once

#include <cstdint>

namespace facetrain::train {

// The steps since the last progress line: their mean loss (over the steps whose loss was
// finite; NaN when none was) and throughput, images / (now − start of the window), as
// arcface_torch's AverageMeter and speed callback report them.
class MetricsWindow {
 public:
  struct Summary {
    double mean_loss = 0;
    double images_per_second = 0;
    std::int64_t steps = 0;
  };

  // Starts the first window at time `now` (seconds on any steady clock).
  explicit MetricsWindow(double now = 0) : start_(now) {}

  void add(double loss, std::int64_t images);
  // The window ending at `now`; a new window starts there.
  Summary close(double now);

 private:
  double start_;
  double loss_sum_ = 0;
  std::int64_t finite_ = 0, steps_ = 0, images_ = 0;
};

}  // namespace facetrain::train
