#include "app/export/onnx_writer.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <limits>
#include <set>

#include "framework/core/error.h"

namespace facetrain::exporting {
namespace {

void set_float_tensor_type(onnx::ValueInfoProto& info, const std::string& name,
                           const std::vector<std::int64_t>& dims_after_batch) {
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (const auto d : dims_after_batch) shape->add_dim()->set_dim_value(d);
}

void add_ints(onnx::NodeProto& node, const char* name, const std::vector<std::int64_t>& values) {
  auto* attr = node.add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INTS);
  for (const auto v : values) attr->add_ints(v);
}

void add_int(onnx::NodeProto& node, const char* name, std::int64_t value) {
  auto* attr = node.add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INT);
  attr->set_i(value);
}

void add_float(onnx::NodeProto& node, const char* name, float value) {
  auto* attr = node.add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::FLOAT);
  attr->set_f(value);
}

// The constant inputs ONNX wants where the graph keeps attributes (a reshape's shape, a gather's
// index, a clip's range), as initializers named after their node.
class NodeConstants {
 public:
  NodeConstants(onnx::GraphProto& graph, const Graph& source) : graph_(graph) {
    for (const auto& init : source.initializers) used_.insert(init.name);
    for (const auto& node : source.nodes) used_.insert(node.output);
  }

  // int64 values of shape `dims` ({} for a scalar).
  std::string int64s(const std::string& base, const std::vector<std::int64_t>& values,
                     const std::vector<std::int64_t>& dims) {
    onnx::TensorProto& t = add(base, onnx::TensorProto::INT64, dims);
    // raw_data is little-endian, which is this machine's layout.
    t.set_raw_data(values.data(), values.size() * sizeof(std::int64_t));
    return t.name();
  }

  std::string float_scalar(const std::string& base, double value) {
    onnx::TensorProto& t = add(base, onnx::TensorProto::FLOAT, {});
    const auto f = static_cast<float>(value);
    t.set_raw_data(&f, sizeof(f));
    return t.name();
  }

 private:
  onnx::TensorProto& add(std::string name, onnx::TensorProto::DataType type,
                         const std::vector<std::int64_t>& dims) {
    while (!used_.insert(name).second) name += "_";
    onnx::TensorProto& t = *graph_.add_initializer();
    t.set_name(name);
    t.set_data_type(type);
    for (const auto d : dims) t.add_dims(d);
    return t;
  }

  onnx::GraphProto& graph_;
  std::set<std::string> used_;
};

// The opset is in the writer's range and has every node's operator.
void check_opset(const Graph& graph, std::int64_t opset) {
  if (opset < kMinOnnxOpset || opset > kMaxOnnxOpset) {
    throw UsageError("--opset " + std::to_string(opset) + ": expected an ONNX opset in [" +
                     std::to_string(kMinOnnxOpset) + ", " + std::to_string(kMaxOnnxOpset) + "]");
  }
  for (const auto& node : graph.nodes) {
    if (first_opset(node.op) > opset) {
      throw Error("ONNX export of " + graph.network + ": node " + node.name + " (" +
                  op_type(node.op) + ") needs opset " + std::to_string(first_opset(node.op)) +
                  " or newer, not " + std::to_string(opset));
    }
  }
}

// The graph's weights as initializers; Error when they pass protobuf's 2 GiB message limit.
void add_initializers(onnx::GraphProto& g, const Graph& graph) {
  // PReLU slopes are per channel [C]; ONNX broadcasts from the right, so over NCHW they are
  // stored as [C, 1, 1].
  std::set<std::string> slopes;
  for (const auto& node : graph.nodes) {
    if (node.op == Op::kPRelu) slopes.insert(node.inputs[1]);
  }
  std::size_t total_bytes = 0;
  for (const auto& init : graph.initializers) {
    onnx::TensorProto& t = *g.add_initializer();
    t.set_name(init.name);
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (const auto d : init.shape) t.add_dims(d);
    if (slopes.count(init.name) != 0 && init.shape.size() == 1) {
      t.add_dims(1);
      t.add_dims(1);
    }
    // raw_data is little-endian float32, which is this machine's layout.
    t.set_raw_data(init.values.data(), init.values.size() * sizeof(float));
    total_bytes += init.values.size() * sizeof(float);
  }
  if (total_bytes > static_cast<std::size_t>(std::numeric_limits<int>::max()) - (1 << 20)) {
    throw Error("ONNX export of " + graph.network + ": " + std::to_string(total_bytes) +
                " bytes of weights exceed protobuf's 2 GiB message limit");
  }
}

// `node` as an ONNX node: its inputs, output, and its operator's attributes (or the constant
// inputs ONNX takes instead).
void add_node(onnx::GraphProto& g, const Graph& graph, const Node& node, NodeConstants& constants) {
  onnx::NodeProto& n = *g.add_node();
  n.set_name(node.name);
  n.set_op_type(op_type(node.op));
  for (const auto& in : node.inputs) n.add_input(in);
  n.add_output(node.output);
  switch (node.op) {
    case Op::kConv: {
      const Initializer* w = graph.find_initializer(node.inputs[1]);
      add_ints(n, "kernel_shape", {w->shape[2], w->shape[3]});
      add_ints(n, "strides", node.strides);
      add_ints(n, "pads", node.pads);
      add_ints(n, "dilations", {1, 1});
      add_int(n, "group", node.group);
      break;
    }
    case Op::kBatchNorm:
      add_float(n, "epsilon", static_cast<float>(node.epsilon));
      break;
    case Op::kFlatten:
      add_int(n, "axis", 1);
      break;
    case Op::kGemm:
      add_int(n, "transB", 1);
      break;
    case Op::kSoftmax:
      add_int(n, "axis", -1);
      break;
    case Op::kReshape:
      n.add_input(constants.int64s(node.name + "_shape", node.shape,
                                   {static_cast<std::int64_t>(node.shape.size())}));
      break;
    case Op::kTranspose:
      add_ints(n, "perm", node.perm);
      break;
    case Op::kGather:
      n.add_input(constants.int64s(node.name + "_index", {node.index}, {}));
      add_int(n, "axis", node.axis);
      break;
    case Op::kClip:
      n.add_input(constants.float_scalar(node.name + "_min", node.clip_min));
      n.add_input(constants.float_scalar(node.name + "_max", node.clip_max));
      break;
    case Op::kLayerNorm:
      add_int(n, "axis", -1);
      add_float(n, "epsilon", static_cast<float>(node.epsilon));
      break;
    case Op::kReduceMean:
      add_ints(n, "axes", {-1});
      add_int(n, "keepdims", 1);
      break;
    default:
      break;
  }
}

}  // namespace

int adapt_to_opset(Graph& graph, std::int64_t opset) {
  return opset < first_opset(Op::kLayerNorm) ? decompose_layer_norm(graph) : 0;
}

std::string onnx_model_bytes(const Graph& graph, std::int64_t opset,
                             const std::string& producer_version) {
  check_opset(graph, opset);
  validate(graph);

  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("facetrain");
  model.set_producer_version(producer_version);
  model.set_doc_string("facetrain " + graph.network + " face embedding");
  auto* op_set = model.add_opset_import();
  op_set->set_domain("");
  op_set->set_version(opset);
  for (const auto& [key, value] : graph.metadata) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }

  onnx::GraphProto& g = *model.mutable_graph();
  g.set_name("facetrain_" + graph.network);
  set_float_tensor_type(*g.add_input(), graph.input, graph.input_chw);
  set_float_tensor_type(*g.add_output(), graph.output, {graph.embedding_size});
  add_initializers(g, graph);
  NodeConstants constants(g, graph);
  for (const auto& node : graph.nodes) add_node(g, graph, node, constants);

  try {
    onnx::checker::check_model(model);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true,
                                                                   /*strict_mode=*/1));
  } catch (const std::exception& e) {
    throw Error("ONNX export of " + graph.network + ": the model fails ONNX's checks: " + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    throw Error("ONNX export of " + graph.network + ": protobuf could not serialize the model");
  }
  return bytes;
}

}  // namespace facetrain::exporting
