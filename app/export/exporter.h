#pragma once

// Export of a trained backbone for deployment — ONNX, TorchScript or a PyTorch state dict — with
// an optional parity check of the written model against the LibTorch backbone.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/export/onnx_writer.h"
#include "models/checkpoint_source.h"

namespace facetrain::exporting {

enum class ExportFormat { kOnnx, kTorchScript, kPyTorch };

// "onnx", "torchscript", "pytorch" to the format; UsageError listing them otherwise.
ExportFormat parse_export_format(const std::string& name);
const char* format_name(ExportFormat format);

struct ExportOptions {
  ExportFormat format = ExportFormat::kOnnx;
  // ONNX and TorchScript only: the model takes raw RGB pixels in [0, 255] (see GraphOptions).
  bool normalize_in_graph = false;
  // ONNX and TorchScript only: BatchNorms folded into convolutions and linear layers.
  bool fold_batch_norm = false;
  // ONNX only: the opset, in [kMinOnnxOpset, kMaxOnnxOpset].
  std::int64_t opset = kDefaultOnnxOpset;
  // Run verify_export on the model before it is written.
  bool verify = false;
};

// A parity check passes when, over every input, the cosine similarity of each pair of
// embeddings is at least kParityMinCosine and no element differs by more than kParityMaxAbsDiff.
constexpr double kParityMinCosine = 0.99999;
constexpr double kParityMaxAbsDiff = 1e-4;

// One input batch of a parity check: what it was, and how far the exported model's embeddings
// were from LibTorch's.
struct ParityCase {
  std::string input;  // "random [-1, 1] x4", "synthetic faces x4", …
  std::int64_t batch = 0;
  double max_abs_diff = 0;
  double min_cosine = 1;
  bool passed() const {
    return max_abs_diff <= kParityMaxAbsDiff && min_cosine >= kParityMinCosine;
  }
};

struct ParityReport {
  std::vector<ParityCase> cases;
  double max_abs_diff() const;
  double min_cosine() const;
  bool passed() const;
};

struct ExportResult {
  std::filesystem::path file;
  std::size_t bytes = 0;
  // What the file records about its origin (ONNX metadata_props, TorchScript's extra file
  // facetrain.json): network, embedding_size, normalisation, input_mean, input_std, bn_folded,
  // weights_sha256, config_sha256 (with a checkpoint), producer.
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<ParityReport> parity;  // with options.verify
};

// Exports `source.backbone` to `out` in `options.format`. The file is written atomically (a
// temporary name, then a rename): after an error nothing is left at `out` and an older file there
// is intact. With options.verify the model is first checked against the backbone
// (verify_export) and facetrain::Error, with the figures, is thrown when parity fails — then no
// file is written either. UsageError for options that do not apply to the format.
ExportResult export_backbone(const models::LoadedBackbone& source, const std::filesystem::path& out,
                             const ExportOptions& options);

// Compares an exported model file with `backbone` (eval mode, no gradients) on random inputs in
// [−1, 1] (batches of 1 and 4) and on rendered synthetic faces decoded from JPEG (batch 4); a
// model with in-graph normalisation is given the same images as raw pixels. ONNX files run in
// onnxruntime through scripts/verify_onnx.py (python_executable(), verify_onnx_script()); the
// others run in this process (torch::jit::load; read_state_dict into a fresh backbone). Errors
// of the runtime (a missing Python, an onnxruntime failure) throw facetrain::Error with its
// output; a parity failure does not throw: see ParityReport::passed.
ParityReport verify_export(models::BackboneImpl& backbone, const std::filesystem::path& file,
                           const ExportOptions& options);

// The Python that runs onnxruntime: $FACETRAIN_PYTHON, else $FACETRAIN_VENV/bin/python, else
// /opt/facetrain/venv/bin/python (the set-up's environment).
std::string python_executable();

// scripts/verify_onnx.py: under $FACETRAIN_ROOT when it is set, else in the source tree this
// binary was built from.
std::filesystem::path verify_onnx_script();

}  // namespace facetrain::exporting
