#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace facetrain::exporting {

// Writes a float32 tensor (any shape, converted and made contiguous) as a NumPy .npy file
// (format 1.0, '<f4', C order), which numpy.load reads.
void write_npy(const std::filesystem::path& file, const at::Tensor& tensor);

// Reads a .npy file holding little-endian float32 ('<f4') in C order. facetrain::Error naming
// the file and what was found when it is missing, truncated, or holds another dtype or order.
at::Tensor read_npy(const std::filesystem::path& file);

}  // namespace facetrain::exporting
