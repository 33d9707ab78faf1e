#include "app/export/exporter.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <torch/nn.h>
#include <torch/script.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "app/export/build_info.h"
#include "app/export/graph_builder.h"
#include "app/export/npy.h"
#include "app/export/sha256.h"
#include "app/export/torchscript_writer.h"
#include "data/image/jpeg_codec.h"
#include "data/synth/synthetic_faces.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "models/embedding.h"
#include "models/preprocessing.h"
#include "models/state_dict.h"

namespace facetrain::exporting {
namespace {

namespace fs = std::filesystem;

// A private folder under the system's temporary directory, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    path_ =
        fs::temp_directory_path() / fmt::format("facetrain-export-{}-{}", ::getpid(), counter++);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `command` with sh; returns its exit status and its stdout and stderr together.
std::pair<int, std::string> run_command(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw Error("cannot start a shell to run: " + command);
  std::string output;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string metadata_json(const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string out = "{";
  for (const auto& [k, v] : metadata) {
    out += fmt::format("{}\n  {}: {}", out.size() > 1 ? "," : "", json_string(k), json_string(v));
  }
  return out + "\n}\n";
}

std::vector<std::pair<std::string, std::string>> export_metadata(
    const models::LoadedBackbone& source, const ExportOptions& options) {
  std::vector<std::pair<std::string, std::string>> m;
  m.emplace_back("network", source.network);
  m.emplace_back("embedding_size", std::to_string(source.backbone->embedding_size()));
  const models::Preprocessing& p = models::kPreprocessing;
  m.emplace_back("input",
                 fmt::format("float32 [N, 3, {0}, {0}] {1}, aligned face", p.size, p.channels));
  if (options.normalize_in_graph) {
    m.emplace_back("normalisation",
                   fmt::format("in graph: input is raw {} in [0, 255]; (x - {}) * (1/{}) applied",
                               p.channels, p.mean, p.std));
    m.emplace_back("input_mean", "0");
    m.emplace_back("input_std", "1");
  } else {
    m.emplace_back("normalisation", fmt::format("caller: input is ({} - {}) / {}, in [-1, 1]",
                                                p.channels, p.mean, p.std));
    m.emplace_back("input_mean", fmt::format("{}", p.mean));
    m.emplace_back("input_std", fmt::format("{}", p.std));
  }
  m.emplace_back("bn_folded", options.fold_batch_norm ? "true" : "false");
  m.emplace_back("weights_sha256", sha256_file(source.weights));
  if (!source.config.empty() && fs::exists(source.config)) {
    m.emplace_back("config_sha256", sha256_file(source.config));
  }
  m.emplace_back("producer", "facetrain " FACETRAIN_VERSION);
  return m;
}

// Inputs of a parity check: what the backbone takes, and what the exported model takes.
struct ParityInput {
  std::string name;
  at::Tensor normalized;  // [N, 3, size, size] in [-1, 1] (models::kPreprocessing)
  at::Tensor raw;         // the same images as pixels in [0, 255]
};

std::vector<ParityInput> parity_inputs() {
  std::vector<ParityInput> inputs;
  auto gen = at::detail::createCPUGenerator(20261129);
  for (const std::int64_t batch : {1, 4}) {
    const auto& p = models::kPreprocessing;
    const at::Tensor x = at::rand({batch, 3, p.size, p.size}, gen) * 2 - 1;
    inputs.push_back({fmt::format("random [-1, 1] x{}", batch), x, x * p.std + p.mean});
  }
  data::JpegCodec codec;
  std::vector<at::Tensor> faces;
  for (std::int64_t identity = 0; identity < 4; ++identity) {
    faces.push_back(codec.decode(data::synthetic_face_jpeg(7, identity, 0),
                                 fmt::format("synthetic face {}", identity)));
  }
  const at::Tensor pixels = at::stack(faces);
  inputs.push_back({"synthetic faces x4", models::images_to_input(pixels),
                    pixels.permute({0, 3, 1, 2}).to(at::kFloat).contiguous()});
  return inputs;
}

ParityCase compare(const std::string& name, const at::Tensor& expected, const at::Tensor& actual) {
  ParityCase c;
  c.input = name;
  c.batch = expected.size(0);
  if (actual.sizes() != expected.sizes()) {
    throw Error(fmt::format("parity check on {}: the exported model gave shape {}, expected {}",
                            name, actual.sizes(), expected.sizes()));
  }
  const at::Tensor a = expected.to(at::kDouble);
  const at::Tensor b = actual.to(at::kDouble);
  c.max_abs_diff = (a - b).abs().max().item<double>();
  c.min_cosine = at::cosine_similarity(a, b, 1, 1e-30).min().item<double>();
  return c;
}

std::string model_bytes(const models::LoadedBackbone& source, const ExportOptions& options,
                        std::vector<std::pair<std::string, std::string>>& metadata) {
  if (options.format == ExportFormat::kPyTorch) {
    return models::state_dict_bytes(models::state_dict(*source.backbone));
  }
  Graph graph =
      build_graph(*source.backbone, {options.normalize_in_graph, options.fold_batch_norm});
  graph.metadata = metadata;
  if (options.format == ExportFormat::kOnnx) {
    adapt_to_opset(graph, options.opset);
    return onnx_model_bytes(graph, options.opset, FACETRAIN_VERSION);
  }
  torch::jit::Module module = torchscript_module(graph);
  std::ostringstream out;
  module.save(out, {{"facetrain.json", metadata_json(metadata)}});
  return out.str();
}

}  // namespace

ExportFormat parse_export_format(const std::string& name) {
  if (name == "onnx") return ExportFormat::kOnnx;
  if (name == "torchscript") return ExportFormat::kTorchScript;
  if (name == "pytorch") return ExportFormat::kPyTorch;
  throw UsageError(fmt::format("--format {}: expected onnx, torchscript or pytorch", name));
}

const char* format_name(ExportFormat format) {
  switch (format) {
    case ExportFormat::kOnnx:
      return "onnx";
    case ExportFormat::kTorchScript:
      return "torchscript";
    case ExportFormat::kPyTorch:
      return "pytorch";
  }
  return "?";
}

double ParityReport::max_abs_diff() const {
  double m = 0;
  for (const auto& c : cases) m = std::max(m, c.max_abs_diff);
  return m;
}

double ParityReport::min_cosine() const {
  double m = 1;
  for (const auto& c : cases) m = std::min(m, c.min_cosine);
  return m;
}

bool ParityReport::passed() const {
  return !cases.empty() &&
         std::all_of(cases.begin(), cases.end(), [](const ParityCase& c) { return c.passed(); });
}

std::string python_executable() {
  if (const char* p = std::getenv("FACETRAIN_PYTHON"); p != nullptr && *p != '\0') return p;
  if (const char* v = std::getenv("FACETRAIN_VENV"); v != nullptr && *v != '\0') {
    return (fs::path(v) / "bin" / "python").string();
  }
  return "/opt/facetrain/venv/bin/python";
}

fs::path verify_onnx_script() {
  if (const char* root = std::getenv("FACETRAIN_ROOT"); root != nullptr && *root != '\0') {
    const fs::path script = fs::path(root) / "scripts" / "verify_onnx.py";
    if (fs::exists(script)) return script;
  }
  return fs::path(FACETRAIN_SOURCE_DIR) / "scripts" / "verify_onnx.py";
}

ParityReport verify_export(models::BackboneImpl& backbone, const fs::path& file,
                           const ExportOptions& options) {
  torch::NoGradGuard no_grad;
  backbone.eval();
  const auto inputs = parity_inputs();
  std::vector<at::Tensor> expected;
  for (const auto& in : inputs) expected.push_back(backbone.forward(in.normalized));
  auto model_input = [&](const ParityInput& in) {
    return options.normalize_in_graph ? in.raw : in.normalized;
  };

  std::vector<at::Tensor> actual;
  if (options.format == ExportFormat::kOnnx) {
    ScratchDir scratch;
    std::string command = shell_quote(python_executable()) + " " +
                          shell_quote(verify_onnx_script().string()) + " " +
                          shell_quote(file.string());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const fs::path in = scratch.path() / fmt::format("input-{}.npy", i);
      write_npy(in, model_input(inputs[i]));
      command += " " + shell_quote(in.string());
    }
    command += " --out-dir " + shell_quote(scratch.path().string());
    const auto [code, output] = run_command(command);
    if (code != 0) {
      throw Error(fmt::format("{}: onnxruntime could not run the model ({} exited with {}): {}",
                              file.string(), verify_onnx_script().string(), code, output));
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      actual.push_back(read_npy(scratch.path() / fmt::format("input-{}.embedding.npy", i)));
    }
  } else if (options.format == ExportFormat::kTorchScript) {
    torch::jit::Module module = torch::jit::load(file.string());
    module.eval();
    for (const auto& in : inputs) actual.push_back(module.forward({model_input(in)}).toTensor());
  } else {
    auto reloaded = models::make_backbone(
        backbone.network(), models::BackboneOptions().embedding_size(backbone.embedding_size()));
    models::load_state_dict(*reloaded, models::read_state_dict(file), file.string());
    reloaded->eval();
    for (const auto& in : inputs) actual.push_back(reloaded->forward(in.normalized));
  }

  ParityReport report;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    report.cases.push_back(compare(inputs[i].name, expected[i], actual[i]));
  }
  return report;
}

ExportResult export_backbone(const models::LoadedBackbone& source, const fs::path& out,
                             const ExportOptions& options) {
  if (options.format == ExportFormat::kPyTorch &&
      (options.normalize_in_graph || options.fold_batch_norm)) {
    throw UsageError(
        "--normalize-in-graph and --fold-bn change the model's graph; they apply to --format onnx "
        "and torchscript, not to a state dict");
  }
  if (options.format != ExportFormat::kOnnx && options.opset != kDefaultOnnxOpset) {
    throw UsageError("--opset applies to --format onnx only");
  }
  ExportResult result;
  result.file = out;
  if (options.format != ExportFormat::kPyTorch) result.metadata = export_metadata(source, options);
  const std::string bytes = model_bytes(source, options, result.metadata);
  result.bytes = bytes.size();

  if (options.verify) {
    ScratchDir scratch;
    const fs::path candidate = scratch.path() / out.filename();
    write_file_atomic(candidate, bytes);
    result.parity = verify_export(*source.backbone, candidate, options);
    for (const auto& c : result.parity->cases) {
      log::info("parity {:<20} batch {}: max |diff| {:.3g}, min cosine {:.8f}{}", c.input, c.batch,
                c.max_abs_diff, c.min_cosine, c.passed() ? "" : "  FAILED");
    }
    if (!result.parity->passed()) {
      throw Error(fmt::format(
          "{}: the exported {} model does not match the LibTorch backbone: max |diff| {:.3g} "
          "(limit {:g}), min cosine {:.8f} (limit {}); nothing was written",
          out.string(), format_name(options.format), result.parity->max_abs_diff(),
          kParityMaxAbsDiff, result.parity->min_cosine(), kParityMinCosine));
    }
  }
  write_file_atomic(out, bytes);
  return result;
}

}  // namespace facetrain::exporting
