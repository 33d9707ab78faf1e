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

std::shared_ptr<MarginHeadImpl> make_margin_head(const Config& c) {
  const std::string& head = c.get_string("loss.head");
  const double s = c.get_float("loss.scale");
  const double t = c.get_float("loss.interclass_filtering_threshold");
  const auto& m = c.get_float_list("loss.margin_list");
  if (head == "combined") return std::make_shared<CombinedMarginHeadImpl>(s, m[0], m[1], m[2], t);
  if (head == "softmax") return std::make_shared<CombinedMarginHeadImpl>(s, 1.0, 0.0, 0.0, t);
  if (head == "curricular") {
    return std::make_shared<CurricularFaceHeadImpl>(s, m[1], c.get_float("loss.curricular_alpha"),
                                                    t);
  }
  if (head == "subcenter") {
    return std::make_shared<SubCenterArcFaceHeadImpl>(s, m[1], c.get_int("loss.subcenter_k"), t);
  }
  if (head == "adaface") {
    return std::make_shared<AdaFaceHeadImpl>(s, c.get_float("loss.adaface_m"),
                                             c.get_float("loss.adaface_h"),
                                             c.get_float("loss.adaface_alpha"), t);
  }
  if (head == "magface") {
    return std::make_shared<MagFaceHeadImpl>(MagFaceOptions()
                                                 .scale(s)
                                                 .l_a(c.get_float("loss.magface_l_a"))
                                                 .u_a(c.get_float("loss.magface_u_a"))
                                                 .l_m(c.get_float("loss.magface_l_m"))
                                                 .u_m(c.get_float("loss.magface_u_m"))
                                                 .lambda_g(c.get_float("loss.magface_lambda_g"))
                                                 .interclass_filtering_threshold(t));
  }
  throw ConfigError(fmt::format("loss.head = \"{}\": unknown head", head));
}

at::Tensor margin_softmax_loss(MarginHeadImpl& head, const HeadInput& input) {
  const at::Tensor logits = head.forward(input);
  const at::Tensor ce = at::cross_entropy_loss(logits, input.labels, {}, at::Reduction::Mean,
                                               /*ignore_index=*/-1);
  return ce + head.regularizer(input);
}

}  // namespace facetrain::losses
