#pragma once

#include <torch/arg.h>

#include <array>
#include <memory>
#include <string>

#include "losses/mag_face_head.h"
#include "losses/margin_head.h"

namespace facetrain::losses {

// Which margin head a run trains with, and its parameters (the configuration's loss.* keys):
//   combined   — margins (m1, m2, m3)             softmax  — (1, 0, 0)
//   curricular — m = margins[1], curricular_alpha
//   subcenter  — ArcFace m = margins[1], K = subcenter_k
//   adaface    — adaface_m, _h, _alpha            magface  — magface (its scale is `scale`)
// all with s = scale and interclass_filtering_threshold. The defaults are ArcFace's (s = 64,
// m2 = 0.5) and each paper's own.
using Margins = std::array<double, 3>;  // (m1, m2, m3)

struct MarginHeadSpec {
  TORCH_ARG(std::string, kind) = "combined";
  TORCH_ARG(double, scale) = 64.0;
  TORCH_ARG(Margins, margins) = {{1.0, 0.5, 0.0}};
  TORCH_ARG(double, interclass_filtering_threshold) = 0.0;
  TORCH_ARG(double, curricular_alpha) = 0.01;
  TORCH_ARG(std::int64_t, subcenter_k) = 3;
  TORCH_ARG(double, adaface_m) = 0.4;
  TORCH_ARG(double, adaface_h) = 0.333;
  TORCH_ARG(double, adaface_alpha) = 0.01;
  TORCH_ARG(MagFaceOptions, magface) = {};
};

// The head `spec` describes. An unknown kind or invalid parameters throw ConfigError naming the
// head and the parameter.
std::shared_ptr<MarginHeadImpl> make_margin_head(const MarginHeadSpec& spec);

// The training loss of a head: softmax cross-entropy of its logits against the labels (rows with
// label -1 are ignored), averaged over the rows, plus the head's regulariser.
at::Tensor margin_softmax_loss(MarginHeadImpl& head, const HeadInput& input);

}  // namespace facetrain::losses
