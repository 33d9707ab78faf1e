#pragma once

#include <torch/csrc/jit/api/module.h>

#include "app/export/graph.h"

namespace facetrain::exporting {

// `graph` as a scripted module: its weights registered as parameters (BatchNorm statistics and
// the input normalisation constants as buffers) under their names with '.' replaced by '_', and
// a generated TorchScript `forward(self, data: Tensor) -> Tensor` that applies the nodes in
// order with torch's functional ops (conv2d, batch_norm in inference form, prelu, linear, …).
// The module is in eval mode; `module.save(path)` writes a file that torch::jit::load and
// Python's torch.jit.load run.
torch::jit::Module torchscript_module(const Graph& graph);

// The TorchScript source of the module's forward (what torchscript_module defines).
std::string torchscript_source(const Graph& graph);

}  // namespace facetrain::exporting
