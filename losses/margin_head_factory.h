#pragma once

#include <memory>

#include "framework/config/config.h"
#include "losses/margin_head.h"

namespace facetrain::losses {

// The head a configuration asks for (loss.head):
//   combined   — loss.margin_list (m1, m2, m3)    softmax  — (1, 0, 0)
//   curricular — m = margin_list[1], loss.curricular_alpha
//   subcenter  — ArcFace m = margin_list[1], K = loss.subcenter_k
//   adaface    — loss.adaface_m, _h, _alpha       magface  — loss.magface_*
// all with s = loss.scale and loss.interclass_filtering_threshold. Invalid parameters throw
// ConfigError naming the head and the parameter.
std::shared_ptr<MarginHeadImpl> make_margin_head(const Config& config);

// The training loss of a head: softmax cross-entropy of its logits against the labels (rows with
// label -1 are ignored), averaged over the rows, plus the head's regulariser.
at::Tensor margin_softmax_loss(MarginHeadImpl& head, const HeadInput& input);

}  // namespace facetrain::losses
