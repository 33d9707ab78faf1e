#pragma once

// The inference graph of a backbone as the exporters see it: a straight list of operators over
// named values, with float32 weights. Built once from a LibTorch backbone (graph_builder.h),
// optionally rewritten (fold_batch_norm), then emitted as ONNX (onnx_writer.h) or TorchScript
// (torchscript_writer.h), so both formats share one traversal. This header does not include
// LibTorch: the ONNX writer is compiled without it (see onnx_writer.h).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace facetrain::exporting {

// The operators the supported backbones need, with ONNX's semantics:
//   kSub, kMul, kAdd, kDiv  inputs {a, b}, elementwise with broadcasting;
//   kConv             inputs {x, weight [O, I/group, kH, kW], (bias [O])}; strides, pads
//                     (top, left, bottom, right), group;
//   kBatchNorm        inputs {x, scale [C], bias [C], mean [C], var [C]}; epsilon; inference
//                     form scale·(x − mean)/√(var + ε) + bias over dim 1 of a 2-D or 4-D x;
//   kPRelu            inputs {x, slope [C]}: x where x ≥ 0, slope·x elsewhere, over dim 1;
//   kFlatten          inputs {x}: [N, ...] to [N, prod(...)];
//   kGemm             inputs {x [N, I], weight [O, I], (bias [O])}: x·weightᵀ + bias;
//   kMatMul           inputs {a, b}: matrix product over the last two dims, batched over the
//                     others (numpy's matmul);
//   kSoftmax          inputs {x}: softmax over the last dim;
//   kReshape          inputs {x}; shape: the output's dims, at most one −1 (inferred), no 0;
//   kTranspose        inputs {x}; perm: output dim i is input dim perm[i];
//   kGather           inputs {x}; axis, index: the slice x[..., index, ...] at `axis` (that dim
//                     removed);
//   kClip             inputs {x}; clip_min, clip_max: min(max(x, clip_min), clip_max);
//   kLayerNorm        inputs {x, scale [C], bias [C]}; epsilon: over the last dim (size C),
//                     (x − mean)/√(var + ε)·scale + bias with the biased variance (opset ≥ 17;
//                     decompose_layer_norm rewrites it for older opsets);
//   kReduceMean       inputs {x}: the mean over the last dim, kept as a dim of size 1;
//   kSqrt             inputs {x}: elementwise square root.
enum class Op {
  kSub,
  kMul,
  kAdd,
  kDiv,
  kConv,
  kBatchNorm,
  kPRelu,
  kFlatten,
  kGemm,
  kMatMul,
  kSoftmax,
  kReshape,
  kTranspose,
  kGather,
  kClip,
  kLayerNorm,
  kReduceMean,
  kSqrt
};

// ONNX's name of `op` ("Conv", "BatchNormalization", …).
const char* op_type(Op op);

// The first ONNX opset (default domain) in which `op` has the semantics above.
std::int64_t first_opset(Op op);

// A constant: float32 values in row-major order.
struct Initializer {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

// One operator application. Inputs name the graph input, an earlier node's output or an
// initializer; `output` is unique in the graph.
struct Node {
  Op op = Op::kAdd;
  std::string name;  // "Conv_3": ONNX node names, op type first (insightface looks at them)
  std::vector<std::string> inputs;
  std::string output;
  std::vector<std::int64_t> strides;  // kConv
  std::vector<std::int64_t> pads;     // kConv: top, left, bottom, right
  std::int64_t group = 1;             // kConv
  double epsilon = 1e-5;              // kBatchNorm, kLayerNorm
  std::vector<std::int64_t> shape;    // kReshape
  std::vector<std::int64_t> perm;     // kTranspose
  std::int64_t axis = 0;              // kGather
  std::int64_t index = 0;             // kGather
  double clip_min = 0, clip_max = 0;  // kClip
};

// A backbone's graph: input float32 [N, 3, height, width] named `input`, output float32
// [N, embedding_size] named `output`; N is free. `metadata` is carried into the exported file
// (ONNX metadata_props; a JSON extra file in TorchScript).
struct Graph {
  std::string network;
  std::string input = "data";
  std::string output = "embedding";
  std::vector<std::int64_t> input_chw = {3, 112, 112};
  std::int64_t embedding_size = 0;
  std::vector<Initializer> initializers;
  std::vector<Node> nodes;
  std::vector<std::pair<std::string, std::string>> metadata;

  // The initializer called `name`, or nullptr.
  const Initializer* find_initializer(const std::string& name) const;
  Initializer* find_initializer(const std::string& name);
  // Adds a node with a fresh name ("{op type}_{index}") and returns it.
  Node& add_node(Op op, std::vector<std::string> inputs, std::string output);
  // Sets (or replaces) metadata entry `key`.
  void set_metadata(const std::string& key, const std::string& value);
};

// Folds every BatchNorm that directly follows a Conv or Gemm (whose output nothing else reads)
// into that layer's weight and bias, and every BatchNorm that reaches a Gemm through a single
// Flatten into the Gemm's weight and bias: scale s = γ/√(var + ε), W' = W·s, b' = (b − mean)·s + β
// (computed in double). BatchNorms before a padded convolution are kept (folding them would
// change the padded border). Returns the number of BatchNorms removed; drops unused initializers.
int fold_batch_norm(Graph& graph);

// Rewrites every kLayerNorm as the ops of its definition (ReduceMean, Sub, Mul, ReduceMean, Add
// ε, Sqrt, Div, Mul scale, Add bias), for opsets older than LayerNormalization's; the result is
// the same function; those nodes are named after the norm ("LayerNormalization_5/Sub_7").
// Returns the number rewritten.
int decompose_layer_norm(Graph& graph);

// Checks that every node input is defined before use, outputs are unique, initializer sizes
// match their shapes, the operators' attributes are well formed (a reshape with one −1 at most
// and no 0, a permutation, an ordered clip range) and the last node produces `graph.output`;
// throws facetrain::Error naming the node and the value otherwise.
void validate(const Graph& graph);

}  // namespace facetrain::exporting
