#pragma once

#include <string>

namespace facetrain::dist {

// The version of the NCCL library loaded in this process ("2.27.7"), or "not compiled" in a
// build without CUDA. Needs no GPU.
std::string nccl_version();

}  // namespace facetrain::dist
