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

}  // namespace

std::string onnx_model_bytes(const Graph& graph, std::int64_t opset,
                             const std::string& producer_version) {
  if (opset < kMinOnnxOpset || opset > kMaxOnnxOpset) {
    throw UsageError("--opset " + std::to_string(opset) + ": expected an ONNX opset in [" +
                     std::to_string(kMinOnnxOpset) + ", " + std::to_string(kMaxOnnxOpset) + "]");
  }
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

  for (const auto& node : graph.nodes) {
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
      default:
        break;
    }
  }

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
