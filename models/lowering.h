#pragma once

#include <string>

namespace torch::nn {
class Module;
}

namespace facetrain::models {

// How a block describes its inference forward for export (ONNX and TorchScript alike), beside
// its training forward: in terms of its children and a few graph operations. The exporter
// implements GraphEmitter (app/export/graph_builder.cpp: LibTorch's leaf layers — convolution,
// BatchNorm, PReLU, linear, flatten, dropout as the identity — and their containers, run in
// order); every block that composes them implements Lowerable. A new block or backbone is thus
// written in one place, models/, for training and deployment.
class GraphEmitter {
 public:
  virtual ~GraphEmitter() = default;
  // `child` (at dotted state-dict path `path`) applied to value `x`: a leaf layer, a container
  // (children in order) or a Lowerable block. Returns the output value's name.
  virtual std::string apply(const std::string& path, const torch::nn::Module& child,
                            const std::string& x) = 0;
  // a + b, elementwise.
  virtual std::string add(const std::string& path, const std::string& a, const std::string& b) = 0;
  // [N, ...] to [N, prod(...)].
  virtual std::string flatten(const std::string& path, const std::string& x) = 0;
};

class Lowerable {
 public:
  virtual ~Lowerable() = default;
  // Emits this module's inference forward (eval semantics) at `path` applied to value `x`;
  // returns the output value's name. Must compute what forward() computes in eval mode (the
  // export tests check every backbone's parity).
  virtual std::string lower(GraphEmitter& graph, const std::string& path,
                            const std::string& x) const = 0;

 protected:
  // "path.name", or "name" at the root.
  static std::string child_path(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }
};

}  // namespace facetrain::models
