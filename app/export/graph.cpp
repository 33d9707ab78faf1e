#include "app/export/graph.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "framework/core/error.h"

namespace facetrain::exporting {
namespace {

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

// How many nodes read each value.
std::map<std::string, int> reader_counts(const Graph& graph) {
  std::map<std::string, int> readers;
  for (const auto& node : graph.nodes) {
    for (const auto& in : node.inputs) ++readers[in];
  }
  return readers;
}

// The BatchNorm's per-channel affine map y = s·x + t, in double.
struct ChannelAffine {
  std::vector<double> scale, shift;
};

ChannelAffine batch_norm_affine(const Graph& graph, const Node& bn) {
  const auto& gamma = graph.find_initializer(bn.inputs[1])->values;
  const auto& beta = graph.find_initializer(bn.inputs[2])->values;
  const auto& mean = graph.find_initializer(bn.inputs[3])->values;
  const auto& var = graph.find_initializer(bn.inputs[4])->values;
  ChannelAffine a;
  a.scale.resize(gamma.size());
  a.shift.resize(gamma.size());
  for (std::size_t c = 0; c < gamma.size(); ++c) {
    a.scale[c] = gamma[c] / std::sqrt(static_cast<double>(var[c]) + bn.epsilon);
    a.shift[c] = beta[c] - mean[c] * a.scale[c];
  }
  return a;
}

bool all_initializers(const Graph& graph, const Node& node, std::size_t from) {
  for (std::size_t i = from; i < node.inputs.size(); ++i) {
    if (graph.find_initializer(node.inputs[i]) == nullptr) return false;
  }
  return true;
}

// The bias of a Conv or Gemm node, added (zeros) when it has none.
Initializer& bias_of(Graph& graph, Node& layer, std::int64_t outputs) {
  if (layer.inputs.size() < 3) {
    std::string name = layer.inputs[1];
    const auto dot = name.rfind("weight");
    name = dot == std::string::npos ? name + ".bias" : name.substr(0, dot) + "bias";
    while (graph.find_initializer(name) != nullptr) name += "_";
    graph.initializers.push_back(
        {name, {outputs}, std::vector<float>(static_cast<std::size_t>(outputs), 0.0f)});
    layer.inputs.push_back(name);
  }
  return *graph.find_initializer(layer.inputs[2]);
}

// y = BN(layer(x)) → layer'(x): output channel o of the weight and bias scaled by s[o], shifted.
void fold_into_producer(Graph& graph, Node& layer, const ChannelAffine& a) {
  Initializer& w = *graph.find_initializer(layer.inputs[1]);
  const std::int64_t outputs = w.shape[0];
  const std::size_t per_output = w.values.size() / static_cast<std::size_t>(outputs);
  for (std::int64_t o = 0; o < outputs; ++o) {
    float* row = w.values.data() + static_cast<std::size_t>(o) * per_output;
    for (std::size_t i = 0; i < per_output; ++i) {
      row[i] = static_cast<float>(row[i] * a.scale[static_cast<std::size_t>(o)]);
    }
  }
  Initializer& b = bias_of(graph, layer, outputs);
  for (std::int64_t o = 0; o < outputs; ++o) {
    const auto k = static_cast<std::size_t>(o);
    b.values[k] = static_cast<float>(b.values[k] * a.scale[k] + a.shift[k]);
  }
}

// y = gemm(flatten(BN(x))) → gemm'(flatten(x)): input column c·HW + j of the weight scaled by
// s[c]; the bias gains W·t.
void fold_into_consumer(Graph& graph, Node& gemm, const ChannelAffine& a) {
  Initializer& w = *graph.find_initializer(gemm.inputs[1]);
  const std::int64_t outputs = w.shape[0];
  const std::int64_t columns = w.shape[1];
  const auto channels = static_cast<std::int64_t>(a.scale.size());
  const std::int64_t per_channel = columns / channels;
  std::vector<double> added(static_cast<std::size_t>(outputs), 0.0);
  for (std::int64_t o = 0; o < outputs; ++o) {
    float* row = w.values.data() + o * columns;
    double sum = 0;
    for (std::int64_t col = 0; col < columns; ++col) {
      const auto c = static_cast<std::size_t>(col / per_channel);
      sum += row[col] * a.shift[c];
      row[col] = static_cast<float>(row[col] * a.scale[c]);
    }
    added[static_cast<std::size_t>(o)] = sum;
  }
  Initializer& b = bias_of(graph, gemm, outputs);
  for (std::size_t o = 0; o < added.size(); ++o) {
    b.values[o] = static_cast<float>(b.values[o] + added[o]);
  }
}

}  // namespace

const char* op_type(Op op) {
  switch (op) {
    case Op::kSub:
      return "Sub";
    case Op::kMul:
      return "Mul";
    case Op::kAdd:
      return "Add";
    case Op::kDiv:
      return "Div";
    case Op::kConv:
      return "Conv";
    case Op::kBatchNorm:
      return "BatchNormalization";
    case Op::kPRelu:
      return "PRelu";
    case Op::kFlatten:
      return "Flatten";
    case Op::kGemm:
      return "Gemm";
    case Op::kMatMul:
      return "MatMul";
    case Op::kSoftmax:
      return "Softmax";
    case Op::kReshape:
      return "Reshape";
    case Op::kTranspose:
      return "Transpose";
    case Op::kGather:
      return "Gather";
    case Op::kClip:
      return "Clip";
    case Op::kLayerNorm:
      return "LayerNormalization";
    case Op::kReduceMean:
      return "ReduceMean";
    case Op::kSqrt:
      return "Sqrt";
  }
  return "?";
}

std::int64_t first_opset(Op op) {
  switch (op) {
    case Op::kLayerNorm:
      return 17;
    case Op::kClip:
      return 11;  // min and max as inputs
    default:
      // Softmax over the last dim: opsets before 13 flatten from `axis` on, the same thing there.
      return 1;
  }
}

const Initializer* Graph::find_initializer(const std::string& name) const {
  for (const auto& init : initializers) {
    if (init.name == name) return &init;
  }
  return nullptr;
}

Initializer* Graph::find_initializer(const std::string& name) {
  return const_cast<Initializer*>(std::as_const(*this).find_initializer(name));
}

Node& Graph::add_node(Op op, std::vector<std::string> inputs, std::string output) {
  Node node;
  node.op = op;
  node.name = std::string(op_type(op)) + "_" + std::to_string(nodes.size());
  node.inputs = std::move(inputs);
  node.output = std::move(output);
  nodes.push_back(std::move(node));
  return nodes.back();
}

void Graph::set_metadata(const std::string& key, const std::string& value) {
  for (auto& [k, v] : metadata) {
    if (k == key) {
      v = value;
      return;
    }
  }
  metadata.emplace_back(key, value);
}

int fold_batch_norm(Graph& graph) {
  int folded = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    const auto readers = reader_counts(graph);
    std::map<std::string, std::size_t> producer;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) producer[graph.nodes[i].output] = i;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      const Node bn = graph.nodes[i];
      if (bn.op != Op::kBatchNorm || !all_initializers(graph, bn, 1)) continue;
      const auto from = producer.find(bn.inputs[0]);
      const bool sole_reader = readers.at(bn.inputs[0]) == 1;
      if (from != producer.end() && sole_reader) {
        Node& layer = graph.nodes[from->second];
        if ((layer.op == Op::kConv || layer.op == Op::kGemm) && all_initializers(graph, layer, 1)) {
          fold_into_producer(graph, layer, batch_norm_affine(graph, bn));
          layer.output = bn.output;
          graph.nodes.erase(graph.nodes.begin() + static_cast<std::ptrdiff_t>(i));
          changed = true;
          ++folded;
          break;
        }
      }
      // BN → Flatten → Gemm, each the only reader of the previous value.
      if (bn.output == graph.output || readers.count(bn.output) == 0 ||
          readers.at(bn.output) != 1) {
        continue;
      }
      auto next = std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const Node& n) {
        return std::find(n.inputs.begin(), n.inputs.end(), bn.output) != n.inputs.end();
      });
      if (next == graph.nodes.end() || next->op != Op::kFlatten ||
          readers.count(next->output) == 0 || readers.at(next->output) != 1) {
        continue;
      }
      const std::string flat = next->output;
      auto gemm = std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const Node& n) {
        return !n.inputs.empty() && n.inputs[0] == flat;
      });
      if (gemm == graph.nodes.end() || gemm->op != Op::kGemm ||
          !all_initializers(graph, *gemm, 1)) {
        continue;
      }
      const ChannelAffine a = batch_norm_affine(graph, bn);
      if (graph.find_initializer(gemm->inputs[1])->shape[1] %
              static_cast<std::int64_t>(a.scale.size()) !=
          0) {
        continue;
      }
      fold_into_consumer(graph, *gemm, a);
      next->inputs[0] = bn.inputs[0];
      graph.nodes.erase(graph.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      changed = true;
      ++folded;
      break;
    }
  }
  // Initializers no node reads any more (the folded BatchNorms' parameters).
  const auto readers = reader_counts(graph);
  graph.initializers.erase(
      std::remove_if(graph.initializers.begin(), graph.initializers.end(),
                     [&](const Initializer& init) { return readers.count(init.name) == 0; }),
      graph.initializers.end());
  return folded;
}

int decompose_layer_norm(Graph& graph) {
  validate(graph);  // the rewrite reads each norm's inputs
  int rewritten = 0;
  std::vector<Node> nodes;
  nodes.reserve(graph.nodes.size());
  std::set<std::string> names;
  for (const auto& init : graph.initializers) names.insert(init.name);
  for (const auto& node : graph.nodes) names.insert(node.output);
  // A value or constant name derived from the norm's output, unused so far.
  const auto fresh = [&](const std::string& base) {
    std::string name = base;
    while (!names.insert(name).second) name += "_";
    return name;
  };
  for (auto& ln : graph.nodes) {
    if (ln.op != Op::kLayerNorm) {
      nodes.push_back(std::move(ln));
      continue;
    }
    const std::string x = ln.inputs[0], base = ln.output;
    const std::string eps = fresh(base + ".epsilon");
    graph.initializers.push_back({eps, {}, {static_cast<float>(ln.epsilon)}});
    // Named after the norm they implement ("LayerNormalization_5/Sub"), not "Sub_…":
    // insightface's ArcFaceONNX takes a Sub or Mul among the first nodes for in-graph input
    // normalisation.
    const auto emit = [&](Op op, std::vector<std::string> inputs, const std::string& out) {
      Node n;
      n.op = op;
      n.name = ln.name + "/" + op_type(op) + "_" + std::to_string(nodes.size());
      n.inputs = std::move(inputs);
      n.output = out;
      nodes.push_back(std::move(n));
      return out;
    };
    const std::string mean = emit(Op::kReduceMean, {x}, fresh(base + "/mean"));
    const std::string centered = emit(Op::kSub, {x, mean}, fresh(base + "/centered"));
    const std::string squares = emit(Op::kMul, {centered, centered}, fresh(base + "/squares"));
    const std::string var = emit(Op::kReduceMean, {squares}, fresh(base + "/variance"));
    const std::string shifted = emit(Op::kAdd, {var, eps}, fresh(base + "/variance_eps"));
    const std::string std_dev = emit(Op::kSqrt, {shifted}, fresh(base + "/std"));
    const std::string normalized = emit(Op::kDiv, {centered, std_dev}, fresh(base + "/normalized"));
    const std::string scaled = emit(Op::kMul, {normalized, ln.inputs[1]}, fresh(base + "/scaled"));
    emit(Op::kAdd, {scaled, ln.inputs[2]}, base);
    ++rewritten;
  }
  graph.nodes = std::move(nodes);
  return rewritten;
}

namespace {

// The attribute checks of validate(): what a node's operator requires of its fields.
void validate_attributes(const Graph& graph, const Node& node) {
  const auto fail = [&](const std::string& what) {
    throw Error("export graph: node " + node.name + ": " + what);
  };
  switch (node.op) {
    case Op::kReshape: {
      if (node.shape.empty()) fail("a reshape with no target shape");
      const auto inferred = std::count(node.shape.begin(), node.shape.end(), -1);
      const bool positive = std::all_of(node.shape.begin(), node.shape.end(),
                                        [](std::int64_t d) { return d > 0 || d == -1; });
      if (inferred > 1 || !positive) {
        fail("reshape dims must be positive, with at most one -1");
      }
      break;
    }
    case Op::kTranspose: {
      std::vector<std::int64_t> sorted = node.perm;
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 0; i < sorted.size(); ++i) {
        if (sorted[i] != static_cast<std::int64_t>(i)) fail("transpose perm is not a permutation");
      }
      if (sorted.empty()) fail("a transpose with no perm");
      break;
    }
    case Op::kGather:
      if (node.axis < 0 || node.index < 0) fail("gather axis and index must be >= 0");
      break;
    case Op::kClip:
      if (!(node.clip_min <= node.clip_max)) fail("clip range is empty");
      break;
    case Op::kLayerNorm:
    case Op::kBatchNorm: {
      // The writers read a norm's width from its scale: the affine parameters are constants.
      for (std::size_t i = 1; i < node.inputs.size(); ++i) {
        const Initializer* p = graph.find_initializer(node.inputs[i]);
        if (p == nullptr || p->shape.size() != 1) fail("a norm's parameters must be 1-D constants");
      }
      if (!(node.epsilon > 0)) fail("a norm epsilon must be > 0");
      break;
    }
    default:
      break;
  }
}

// How many inputs each operator reads: {at least, at most}.
std::pair<std::size_t, std::size_t> input_counts(Op op) {
  switch (op) {
    case Op::kSub:
    case Op::kMul:
    case Op::kAdd:
    case Op::kDiv:
    case Op::kMatMul:
    case Op::kPRelu:
      return {2, 2};
    case Op::kConv:
    case Op::kGemm:
      return {2, 3};
    case Op::kBatchNorm:
      return {5, 5};
    case Op::kLayerNorm:
      return {3, 3};
    default:
      return {1, 1};
  }
}

}  // namespace

void validate(const Graph& graph) {
  std::set<std::string> defined = {graph.input};
  for (const auto& init : graph.initializers) {
    if (!defined.insert(init.name).second) {
      throw Error("export graph: initializer '" + init.name + "' is defined twice");
    }
    if (element_count(init.shape) != static_cast<std::int64_t>(init.values.size())) {
      throw Error("export graph: initializer '" + init.name + "' holds " +
                  std::to_string(init.values.size()) + " values, its shape " +
                  std::to_string(element_count(init.shape)));
    }
  }
  for (const auto& node : graph.nodes) {
    const auto [least, most] = input_counts(node.op);
    if (node.inputs.size() < least || node.inputs.size() > most) {
      throw Error("export graph: node " + node.name + " has " + std::to_string(node.inputs.size()) +
                  " inputs, " + op_type(node.op) + " takes " + std::to_string(least) +
                  (least == most ? "" : " to " + std::to_string(most)));
    }
    for (const auto& in : node.inputs) {
      if (defined.count(in) == 0) {
        throw Error("export graph: node " + node.name + " reads '" + in +
                    "', which is not defined before it");
      }
    }
    validate_attributes(graph, node);
    if (!defined.insert(node.output).second) {
      throw Error("export graph: node " + node.name + " writes '" + node.output +
                  "', which is already defined");
    }
  }
  if (graph.nodes.empty() || graph.nodes.back().output != graph.output) {
    throw Error("export graph: the last node does not produce the output '" + graph.output + "'");
  }
}

}  // namespace facetrain::exporting
