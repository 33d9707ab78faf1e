#pragma once

#include "models/backbone.h"

namespace facetrain::models {

// Aligned face images as a backbone expects them: uint8 [N, H, W, 3] RGB to float32
// [N, 3, H, W] with (x − 127.5) / 127.5, i.e. in [−1, 1] (insightface's normalisation).
at::Tensor images_to_input(const at::Tensor& uint8_nhwc);

// Embeddings [N, D] of uint8 [N, 112, 112, 3] RGB faces, computed in eval mode without
// gradients. With `flip`, the embedding of each image plus that of its horizontal mirror (as
// insightface evaluates); with `normalize`, each row scaled to unit L2 norm.
at::Tensor embed_images(BackboneImpl& backbone, const at::Tensor& uint8_nhwc, bool flip,
                        bool normalize);

}  // namespace facetrain::models
