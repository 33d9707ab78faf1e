#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}
namespace torch::nn {
class Module;
}

namespace facetrain::models {

// How a block describes its inference forward for export (ONNX and TorchScript alike), beside
// its training forward: in terms of its children and a few graph operations. The exporter
// implements GraphEmitter (app/export/graph_builder.cpp: LibTorch's leaf layers — convolution,
// BatchNorm, PReLU, linear, flatten, dropout as the identity — and their containers, run in
// order, LayerNorm over the last dim); every block that composes them implements Lowerable.
// Values are named by the dotted path that made them; linear layers take [rows, features]
// values, so a block that works on token sequences lowers them as [N·tokens, features] and
// reshapes where it needs the sequence (see the Vision Transformer). A new block or backbone is
// thus written in one place, models/, for training and deployment.
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
  // A tensor the block holds outside its leaf layers (a position embedding, a scale), as a
  // constant called `name` (its state-dict key where it has one); returns the value's name.
  virtual std::string constant(const std::string& name, const at::Tensor& value) = 0;
  // a · b, elementwise with broadcasting.
  virtual std::string mul(const std::string& path, const std::string& a, const std::string& b) = 0;
  // Matrix product over the last two dims, batched over the others.
  virtual std::string matmul(const std::string& path, const std::string& a,
                             const std::string& b) = 0;
  // Softmax over the last dim.
  virtual std::string softmax(const std::string& path, const std::string& x) = 0;
  // x with dims `shape` (one −1 at most, inferred).
  virtual std::string reshape(const std::string& path, const std::string& x,
                              const std::vector<std::int64_t>& shape) = 0;
  // x.permute(perm).
  virtual std::string transpose(const std::string& path, const std::string& x,
                                const std::vector<std::int64_t>& perm) = 0;
  // x.select(axis, index): one slice, that dim removed.
  virtual std::string select(const std::string& path, const std::string& x, std::int64_t axis,
                             std::int64_t index) = 0;
  // min(max(x, lo), hi).
  virtual std::string clip(const std::string& path, const std::string& x, double lo, double hi) = 0;
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
