#include "app/train/metrics_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace facetrain::train {

void MetricsWindow::add(double loss, std::int64_t images) {
  if (std::isfinite(loss)) {
    loss_sum_ += loss;
    finite_ += 1;
  }
  steps_ += 1;
  images_ += images;
}

MetricsWindow::Summary MetricsWindow::close(double now) {
  Summary s;
  s.steps = steps_;
  s.mean_loss = finite_ > 0 ? loss_sum_ / static_cast<double>(finite_)
                            : std::numeric_limits<double>::quiet_NaN();
  s.images_per_second = static_cast<double>(images_) / std::max(1e-9, now - start_);
  *this = MetricsWindow(now);
  return s;
}

}  // namespace facetrain::train
