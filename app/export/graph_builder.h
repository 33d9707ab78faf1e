#pragma once

#include "app/export/graph.h"
#include "models/backbone.h"

namespace facetrain::exporting {

// How the exported graph differs from the backbone's own forward.
struct GraphOptions {
  // Prepend Sub(127.5) then Mul(1/127.5): the graph takes raw RGB pixels in [0, 255] instead of
  // the backbone's [−1, 1] input (insightface's ArcFaceONNX recognises these first nodes).
  bool normalize_in_graph = false;
  // Fold BatchNorms into the neighbouring convolutions and linear layers (fold_batch_norm).
  bool fold_batch_norm = false;
};

// The inference graph of `backbone` (in eval semantics: BatchNorm running statistics, no
// dropout), with its weights copied as float32 and named by their state-dict keys: the backbone
// lowers itself (models/lowering.h), its blocks in turn, down to LibTorch's leaf layers. A module
// with no lowering throws facetrain::Error naming its path. Sets graph.network and
// graph.embedding_size; no metadata.
Graph build_graph(const models::BackboneImpl& backbone, const GraphOptions& options = {});

}  // namespace facetrain::exporting
