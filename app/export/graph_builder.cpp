#include "app/export/graph_builder.h"

#include <fmt/format.h>
#include <torch/nn.h>

#include <set>

#include "framework/core/error.h"
#include "models/lowering.h"
#include "models/preprocessing.h"

namespace facetrain::exporting {
namespace {

// The exporter's side of the lowering: LibTorch's leaf layers and containers become graph nodes;
// blocks and backbones describe themselves (models::Lowerable, beside their forward).
class Builder : public models::GraphEmitter {
 public:
  explicit Builder(Graph& graph) : graph_(graph) {}

  std::string apply(const std::string& path, const torch::nn::Module& module,
                    const std::string& x) override {
    if (const auto* block = dynamic_cast<const models::Lowerable*>(&module)) {
      return block->lower(*this, path, x);
    }
    if (const auto* conv = module.as<torch::nn::Conv2d>()) return conv2d(path, *conv, x);
    if (const auto* bn = module.as<torch::nn::BatchNorm2d>()) {
      return batch_norm(path, bn->weight, bn->bias, bn->running_mean, bn->running_var,
                        bn->options.eps(), x);
    }
    if (const auto* bn = module.as<torch::nn::BatchNorm1d>()) {
      return batch_norm(path, bn->weight, bn->bias, bn->running_mean, bn->running_var,
                        bn->options.eps(), x);
    }
    if (const auto* prelu = module.as<torch::nn::PReLU>()) {
      return node(Op::kPRelu, {x, weight(path + ".weight", prelu->weight)}, path);
    }
    if (const auto* linear = module.as<torch::nn::Linear>()) return gemm(path, *linear, x);
    if (const auto* ln = module.as<torch::nn::LayerNorm>()) return layer_norm(path, *ln, x);
    if (module.as<torch::nn::Flatten>() != nullptr) return flatten(path, x);
    // Dropout is the identity at inference.
    if (module.as<torch::nn::Dropout>() != nullptr) return x;
    if (module.as<torch::nn::Sequential>() != nullptr ||
        module.as<torch::nn::ModuleList>() != nullptr) {
      std::string y = x;
      for (const auto& child : module.named_children()) {
        y = apply(join(path, child.key()), *child.value(), y);
      }
      return y;
    }
    throw Error(
        fmt::format("export: module '{}' ({}) has no lowering: give it one "
                    "(models/lowering.h) or use supported layers",
                    path.empty() ? "<root>" : path, module.name()));
  }

  std::string add(const std::string& path, const std::string& a, const std::string& b) override {
    return node(Op::kAdd, {a, b}, path);
  }

  std::string flatten(const std::string& path, const std::string& x) override {
    return node(Op::kFlatten, {x}, path.empty() ? "flatten" : path);
  }

  std::string constant(const std::string& name, const at::Tensor& value) override {
    return weight(name, value);
  }

  std::string mul(const std::string& path, const std::string& a, const std::string& b) override {
    return node(Op::kMul, {a, b}, path);
  }

  std::string matmul(const std::string& path, const std::string& a, const std::string& b) override {
    return node(Op::kMatMul, {a, b}, path);
  }

  std::string softmax(const std::string& path, const std::string& x) override {
    return node(Op::kSoftmax, {x}, path);
  }

  std::string reshape(const std::string& path, const std::string& x,
                      const std::vector<std::int64_t>& shape) override {
    const std::string out = node(Op::kReshape, {x}, path);
    graph_.nodes.back().shape = shape;
    return out;
  }

  std::string transpose(const std::string& path, const std::string& x,
                        const std::vector<std::int64_t>& perm) override {
    const std::string out = node(Op::kTranspose, {x}, path);
    graph_.nodes.back().perm = perm;
    return out;
  }

  std::string select(const std::string& path, const std::string& x, std::int64_t axis,
                     std::int64_t index) override {
    const std::string out = node(Op::kGather, {x}, path);
    graph_.nodes.back().axis = axis;
    graph_.nodes.back().index = index;
    return out;
  }

  std::string clip(const std::string& path, const std::string& x, double lo, double hi) override {
    const std::string out = node(Op::kClip, {x}, path);
    graph_.nodes.back().clip_min = lo;
    graph_.nodes.back().clip_max = hi;
    return out;
  }

 private:
  static std::string join(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }

  std::string weight(const std::string& name, const at::Tensor& t) {
    if (!values_.insert(name).second) {
      throw Error(fmt::format("export: the constant '{}' is defined twice", name));
    }
    const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    Initializer init{name, c.sizes().vec(), {}};
    init.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    graph_.initializers.push_back(std::move(init));
    return name;
  }

  std::string node(Op op, std::vector<std::string> inputs, const std::string& value) {
    std::string out = value;
    for (int i = 1; !values_.insert(out).second; ++i) out = fmt::format("{}_{}", value, i);
    graph_.add_node(op, std::move(inputs), out);
    return out;
  }

  std::string conv2d(const std::string& path, const torch::nn::Conv2dImpl& conv,
                     const std::string& x) {
    const auto& o = conv.options;
    const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
    if (padding == nullptr || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1 ||
        !std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) || o.transposed()) {
      throw Error(fmt::format(
          "export: convolution '{}': only zero-padded, undilated convolutions are supported",
          path));
    }
    std::vector<std::string> inputs = {x, weight(path + ".weight", conv.weight)};
    if (conv.bias.defined()) inputs.push_back(weight(path + ".bias", conv.bias));
    const std::string out = node(Op::kConv, std::move(inputs), path);
    Node& n = graph_.nodes.back();
    n.strides = {(*o.stride())[0], (*o.stride())[1]};
    n.pads = {(**padding)[0], (**padding)[1], (**padding)[0], (**padding)[1]};
    n.group = o.groups();
    return out;
  }

  std::string batch_norm(const std::string& path, const at::Tensor& gamma, const at::Tensor& beta,
                         const at::Tensor& mean, const at::Tensor& var, double eps,
                         const std::string& x) {
    if (!gamma.defined() || !mean.defined()) {
      throw Error(fmt::format(
          "export: batch norm '{}': needs affine parameters and running statistics", path));
    }
    const std::string out =
        node(Op::kBatchNorm,
             {x, weight(path + ".weight", gamma), weight(path + ".bias", beta),
              weight(path + ".running_mean", mean), weight(path + ".running_var", var)},
             path);
    graph_.nodes.back().epsilon = eps;
    return out;
  }

  std::string layer_norm(const std::string& path, const torch::nn::LayerNormImpl& ln,
                         const std::string& x) {
    if (ln.options.normalized_shape().size() != 1 || !ln.weight.defined() || !ln.bias.defined()) {
      throw Error(fmt::format(
          "export: layer norm '{}': only an affine norm over the last dim is supported", path));
    }
    const std::string out =
        node(Op::kLayerNorm,
             {x, weight(path + ".weight", ln.weight), weight(path + ".bias", ln.bias)}, path);
    graph_.nodes.back().epsilon = ln.options.eps();
    return out;
  }

  std::string gemm(const std::string& path, const torch::nn::LinearImpl& linear,
                   const std::string& x) {
    std::vector<std::string> inputs = {x, weight(path + ".weight", linear.weight)};
    if (linear.bias.defined()) inputs.push_back(weight(path + ".bias", linear.bias));
    return node(Op::kGemm, std::move(inputs), path);
  }

  Graph& graph_;
  std::set<std::string> values_;
};

}  // namespace

Graph build_graph(const models::BackboneImpl& backbone, const GraphOptions& options) {
  Graph graph;
  graph.network = backbone.network();
  graph.embedding_size = backbone.embedding_size();
  Builder builder(graph);
  std::string x = graph.input;
  if (options.normalize_in_graph) {
    const models::Preprocessing& p = models::kPreprocessing;
    graph.initializers.push_back({"input_mean", {1}, {static_cast<float>(p.mean)}});
    graph.initializers.push_back({"input_scale", {1}, {static_cast<float>(1.0 / p.std)}});
    graph.add_node(Op::kSub, {x, "input_mean"}, "data_centered");
    graph.add_node(Op::kMul, {"data_centered", "input_scale"}, "data_normalized");
    x = "data_normalized";
  }
  x = builder.apply("", backbone, x);
  graph.nodes.back().output = graph.output;
  if (options.fold_batch_norm) fold_batch_norm(graph);
  validate(graph);
  return graph;
}

}  // namespace facetrain::exporting
