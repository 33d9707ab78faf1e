#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace facetrain {

// `host` on `device`. For a CUDA device the copy goes through pinned memory and is queued on
// the current stream without waiting for it (a plain copy from pageable memory would make the
// host wait for everything already queued on the GPU); the CPU tensor itself otherwise.
at::Tensor host_to_device(const at::Tensor& host, const c10::Device& device);

}  // namespace facetrain
