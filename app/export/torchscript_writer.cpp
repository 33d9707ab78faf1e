#include "app/export/torchscript_writer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn.h>

#include <map>
#include <set>

#include "framework/core/error.h"

namespace facetrain::exporting {
namespace {

// TorchScript attribute names of the initializers, and which are buffers.
struct Attributes {
  std::map<std::string, std::string> name;
  std::set<std::string> buffers;
};

Attributes attributes_of(const Graph& graph) {
  Attributes a;
  std::set<std::string> used;
  for (const auto& init : graph.initializers) {
    std::string id;
    for (const char c : init.name) id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (id.empty() || std::isdigit(static_cast<unsigned char>(id[0]))) id = "w_" + id;
    while (!used.insert(id).second) id += "_";
    a.name[init.name] = id;
  }
  for (const auto& node : graph.nodes) {
    if (node.op == Op::kBatchNorm) {
      a.buffers.insert(node.inputs[3]);
      a.buffers.insert(node.inputs[4]);
    } else if (node.op == Op::kSub || node.op == Op::kMul) {
      a.buffers.insert(node.inputs[1]);
    }
  }
  return a;
}

}  // namespace

std::string torchscript_source(const Graph& graph) {
  validate(graph);
  const Attributes attrs = attributes_of(graph);
  std::map<std::string, std::string> local = {{graph.input, "data"}};
  auto value = [&](const std::string& v) {
    const auto a = attrs.name.find(v);
    if (a != attrs.name.end()) return "self." + a->second;
    return local.at(v);
  };
  auto optional = [&](const Node& n, std::size_t i) {
    return n.inputs.size() > i ? value(n.inputs[i]) : std::string("None");
  };

  std::string src = "def forward(self, data: Tensor) -> Tensor:\n";
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    const std::string out = fmt::format("v{}", i);
    // torch.FUNCTION(a, b) of the node's two inputs.
    const auto binary = [&](const char* function) {
      return fmt::format("torch.{}({}, {})", function, value(n.inputs[0]), value(n.inputs[1]));
    };
    std::string expr;
    switch (n.op) {
      case Op::kSub:
        expr = binary("sub");
        break;
      case Op::kMul:
        expr = binary("mul");
        break;
      case Op::kAdd:
        expr = binary("add");
        break;
      case Op::kDiv:
        expr = binary("div");
        break;
      case Op::kMatMul:
        expr = binary("matmul");
        break;
      case Op::kSoftmax:
        expr = fmt::format("torch.softmax({}, -1)", value(n.inputs[0]));
        break;
      case Op::kReshape:
        expr = fmt::format("torch.reshape({}, [{}])", value(n.inputs[0]), fmt::join(n.shape, ", "));
        break;
      case Op::kTranspose:
        expr = fmt::format("torch.permute({}, [{}])", value(n.inputs[0]), fmt::join(n.perm, ", "));
        break;
      case Op::kGather:
        expr = fmt::format("torch.select({}, {}, {})", value(n.inputs[0]), n.axis, n.index);
        break;
      case Op::kClip:
        expr = fmt::format("torch.clamp({}, {:.17g}, {:.17g})", value(n.inputs[0]), n.clip_min,
                           n.clip_max);
        break;
      case Op::kLayerNorm:
        expr = fmt::format("torch.layer_norm({}, [{}], {}, {}, {:.17g})", value(n.inputs[0]),
                           graph.find_initializer(n.inputs[1])->shape.at(0), value(n.inputs[1]),
                           value(n.inputs[2]), n.epsilon);
        break;
      case Op::kReduceMean:
        expr = fmt::format("torch.mean({}, [-1], True)", value(n.inputs[0]));
        break;
      case Op::kSqrt:
        expr = fmt::format("torch.sqrt({})", value(n.inputs[0]));
        break;
      case Op::kConv:
        if (n.pads[0] != n.pads[2] || n.pads[1] != n.pads[3]) {
          throw Error(fmt::format("TorchScript export: node {}: asymmetric padding", n.name));
        }
        expr = fmt::format("torch.conv2d({}, {}, {}, [{}, {}], [{}, {}], [1, 1], {})",
                           value(n.inputs[0]), value(n.inputs[1]), optional(n, 2), n.strides[0],
                           n.strides[1], n.pads[0], n.pads[1], n.group);
        break;
      case Op::kBatchNorm:
        expr = fmt::format("torch.batch_norm({}, {}, {}, {}, {}, False, 0.0, {:.17g}, False)",
                           value(n.inputs[0]), value(n.inputs[1]), value(n.inputs[2]),
                           value(n.inputs[3]), value(n.inputs[4]), n.epsilon);
        break;
      case Op::kPRelu:
        expr = fmt::format("torch.prelu({}, {})", value(n.inputs[0]), value(n.inputs[1]));
        break;
      case Op::kFlatten:
        expr = fmt::format("torch.flatten({}, 1)", value(n.inputs[0]));
        break;
      case Op::kGemm:
        expr = fmt::format("torch.linear({}, {}, {})", value(n.inputs[0]), value(n.inputs[1]),
                           optional(n, 2));
        break;
    }
    src += fmt::format("    {} = {}\n", out, expr);
    local[n.output] = out;
  }
  src += fmt::format("    return {}\n", local.at(graph.output));
  return src;
}

torch::jit::Module torchscript_module(const Graph& graph) {
  const std::string src = torchscript_source(graph);
  const Attributes attrs = attributes_of(graph);
  torch::jit::Module module("facetrain.FaceEmbedding");
  for (const auto& init : graph.initializers) {
    const at::Tensor t = at::from_blob(const_cast<float*>(init.values.data()),
                                       c10::IntArrayRef(init.shape), at::kFloat)
                             .clone();
    const std::string& name = attrs.name.at(init.name);
    if (attrs.buffers.count(init.name) != 0) {
      module.register_buffer(name, t);
    } else {
      module.register_parameter(name, t, /*is_buffer=*/false);
    }
  }
  module.define(src);
  module.eval();
  return module;
}

}  // namespace facetrain::exporting
