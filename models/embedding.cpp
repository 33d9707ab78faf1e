#include "models/embedding.h"

#include <torch/nn.h>

#include "models/preprocessing.h"

namespace facetrain::models {

at::Tensor images_to_input(const at::Tensor& uint8_nhwc) {
  return uint8_nhwc.permute({0, 3, 1, 2})
      .to(torch::kFloat)
      .sub(kPreprocessing.mean)
      .div(kPreprocessing.std)
      .contiguous();
}

at::Tensor embed_images(BackboneImpl& backbone, const at::Tensor& uint8_nhwc, bool flip,
                        bool normalize) {
  torch::NoGradGuard no_grad;
  backbone.eval();
  const at::Tensor input = images_to_input(uint8_nhwc);
  at::Tensor out = backbone.forward(input);
  if (flip) out = out + backbone.forward(input.flip({3}));
  if (normalize)
    out =
        torch::nn::functional::normalize(out, torch::nn::functional::NormalizeFuncOptions().dim(1));
  return out;
}

}  // namespace facetrain::models
