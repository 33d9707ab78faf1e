#include "losses/margin_head_factory.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "framework/core/error.h"
#include "losses/ada_face_head.h"
#include "losses/combined_margin_head.h"
#include "losses/curricular_face_head.h"
#include "losses/mag_face_head.h"
#include "losses/sub_center_head.h"

namespace facetrain::losses {

std::shared_ptr<MarginHeadImpl> make_margin_head(const MarginHeadSpec& spec) {
  const std::string& head = spec.kind();
  const double s = spec.scale();
  const double t = spec.interclass_filtering_threshold();
  const auto& m = spec.margins();
  if (head == "combined") return std::make_shared<CombinedMarginHeadImpl>(s, m[0], m[1], m[2], t);
  if (head == "softmax") return std::make_shared<CombinedMarginHeadImpl>(s, 1.0, 0.0, 0.0, t);
  if (head == "curricular") {
    return std::make_shared<CurricularFaceHeadImpl>(s, m[1], spec.curricular_alpha(), t);
  }
  if (head == "subcenter") {
    return std::make_shared<SubCenterArcFaceHeadImpl>(s, m[1], spec.subcenter_k(), t);
  }
  if (head == "adaface") {
    return std::make_shared<AdaFaceHeadImpl>(s, spec.adaface_m(), spec.adaface_h(),
                                             spec.adaface_alpha(), t);
  }
  if (head == "magface") {
    return std::make_shared<MagFaceHeadImpl>(
        MagFaceOptions(spec.magface()).scale(s).interclass_filtering_threshold(t));
  }
  throw ConfigError(
      fmt::format("loss.head = \"{}\": unknown head (expected combined, softmax, "
                  "curricular, subcenter, adaface or magface)",
                  head));
}

at::Tensor margin_softmax_loss(MarginHeadImpl& head, const HeadInput& input) {
  const at::Tensor logits = head.forward(input);
  const at::Tensor ce = at::cross_entropy_loss(logits, input.labels, {}, at::Reduction::Mean,
                                               /*ignore_index=*/-1);
  return ce + head.regularizer(input);
}

}  // namespace facetrain::losses
