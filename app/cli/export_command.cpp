#include <fmt/format.h>

#include <memory>

#include "app/cli/commands.h"
#include "app/export/exporter.h"
#include "framework/log/logger.h"
#include "models/checkpoint_source.h"
#include "models/preprocessing.h"

namespace facetrain::cli {
namespace {

struct ExportArgs {
  std::string checkpoint;
  std::string weights;
  std::string network;
  std::string format;
  std::string out;
  std::int64_t opset = exporting::kDefaultOnnxOpset;
  bool verify = false;
  bool normalize_in_graph = false;
  bool fold_bn = false;
};

int run_export(const ExportArgs& args) {
  exporting::ExportOptions options;
  options.format = exporting::parse_export_format(args.format);
  options.opset = args.opset;
  options.verify = args.verify;
  options.normalize_in_graph = args.normalize_in_graph;
  options.fold_batch_norm = args.fold_bn;
  const auto loaded = models::load_backbone(args.checkpoint, args.weights, args.network);
  const auto result = exporting::export_backbone(loaded, args.out, options);
  log::info("exported {} ({}-d embeddings, weights {}) as {} to {} ({:.1f} MB)", loaded.network,
            loaded.backbone->embedding_size(), loaded.weights.string(),
            exporting::format_name(options.format), result.file.string(),
            static_cast<double>(result.bytes) / 1e6);
  if (result.parity) {
    log::info(
        "parity: passed on {} batches: max |diff| {:.3g} (limit {:g}), min cosine {:.8f} "
        "(limit {})",
        result.parity->cases.size(), result.parity->max_abs_diff(), exporting::kParityMaxAbsDiff,
        result.parity->min_cosine(), exporting::kParityMinCosine);
  }
  return 0;
}

}  // namespace

void add_export_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "export",
      "Export a backbone for deployment: ONNX (onnxruntime, insightface), TorchScript "
      "(torch::jit::load, torch.jit.load) or a PyTorch state dict with insightface's key names");
  auto args = std::make_shared<ExportArgs>();
  add_backbone_options(sub, args->checkpoint, args->weights, args->network);
  sub->add_option("--format", args->format, "onnx, torchscript or pytorch")
      ->required()
      ->check(CLI::IsMember({"onnx", "torchscript", "pytorch"}));
  sub->add_option("--out", args->out, "Output file (written atomically)")->required();
  sub->add_flag("--verify", args->verify,
                fmt::format("Compare the exported model with the LibTorch backbone on random "
                            "inputs and synthetic faces before writing it; fail when a cosine "
                            "is below {} or an element differs by more than {:g}",
                            exporting::kParityMinCosine, exporting::kParityMaxAbsDiff));
  sub->add_option("--opset", args->opset, "ONNX opset")
      ->check(CLI::Range(exporting::kMinOnnxOpset, exporting::kMaxOnnxOpset))
      ->capture_default_str();
  sub->add_flag("--normalize-in-graph", args->normalize_in_graph,
                fmt::format("The model takes raw {} pixels in [0, 255]: its first nodes compute "
                            "(x - {}) * (1/{}) (onnx, torchscript)",
                            models::kPreprocessing.channels, models::kPreprocessing.mean,
                            models::kPreprocessing.std));
  sub->add_flag("--fold-bn", args->fold_bn,
                "Fold BatchNorms into the neighbouring convolutions and linear layers (onnx, "
                "torchscript)");
  out.emplace_back(sub, [args] { return run_export(*args); });
}

}  // namespace facetrain::cli
