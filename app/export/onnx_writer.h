#pragma once

// ONNX emission with the ONNX library's own protobuf classes (onnx::ModelProto …).
//
// This file and onnx_writer.cpp are compiled without LibTorch's include folders: the torch wheel
// ships protobuf 3.13 headers there, while Debian's libonnx is generated for protobuf 3.21, and
// one translation unit cannot see both. At run time they coexist: LibTorch links its protobuf
// and its `onnx_torch` copy statically and exports none of their symbols, so Debian's
// libprotobuf and libonnx are the only ones the dynamic linker sees (checked by the export
// tests, which write ONNX from the same process that runs LibTorch).

#include <cstdint>
#include <string>

#include "app/export/graph.h"

namespace facetrain::exporting {

// The opset range the writer accepts (every operator of graph.h but LayerNormalization, which
// adapt_to_opset rewrites below 17, is unchanged over it, and the linked libonnx checks models
// up to kMaxOnnxOpset).
constexpr std::int64_t kMinOnnxOpset = 11;
constexpr std::int64_t kMaxOnnxOpset = 17;
constexpr std::int64_t kDefaultOnnxOpset = 17;

// Rewrites the operators that `opset` lacks in terms of older ones (LayerNormalization, opset
// 17, as its definition: decompose_layer_norm); returns the number of nodes rewritten.
int adapt_to_opset(Graph& graph, std::int64_t opset);

// `graph` as a serialized ONNX model (IR version 8, default domain at `opset`): input
// `graph.input` float32 [N, C, H, W] and output `graph.output` float32 [N, embedding_size] with
// a symbolic batch dimension "N", weights as initializers, `graph.metadata` as metadata_props,
// node names as in the graph. The model is checked with onnx::checker::check_model and
// onnx::shape_inference::InferShapes (strict) before it is returned; facetrain::Error carries
// the checker's message when either fails, or when `opset` is outside
// [kMinOnnxOpset, kMaxOnnxOpset] or older than a node's operator (see adapt_to_opset), or when
// the model would exceed protobuf's 2 GiB limit.
std::string onnx_model_bytes(const Graph& graph, std::int64_t opset,
                             const std::string& producer_version);

}  // namespace facetrain::exporting
