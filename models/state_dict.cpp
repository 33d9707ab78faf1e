#include "models/state_dict.h"

#include "models/backbone.h"

#include <ATen/core/Dict.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "framework/config/config.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"
#include "models/torch_save_format.h"

namespace facetrain::models {
namespace {

std::string shape(const at::Tensor& t) {
  return fmt::format("[{}]", fmt::join(t.sizes(), ", "));
}

std::string listing(const std::vector<std::string>& items, std::size_t limit = 8) {
  std::vector<std::string> shown(items.begin(),
                                 items.begin() + static_cast<long>(std::min(limit, items.size())));
  std::string out = fmt::format("{}", fmt::join(shown, ", "));
  if (items.size() > limit) out += fmt::format(", … ({} more)", items.size() - limit);
  return out;
}

at::ScalarType scalar_type(StorageDtype dtype) {
  switch (dtype) {
    case StorageDtype::kFloat32:
      return at::kFloat;
    case StorageDtype::kFloat64:
      return at::kDouble;
    case StorageDtype::kFloat16:
      return at::kHalf;
    case StorageDtype::kBFloat16:
      return at::kBFloat16;
    case StorageDtype::kInt64:
      return at::kLong;
    case StorageDtype::kInt32:
      return at::kInt;
    case StorageDtype::kInt16:
      return at::kShort;
    case StorageDtype::kInt8:
      return at::kChar;
    case StorageDtype::kUInt8:
      return at::kByte;
    case StorageDtype::kBool:
      return at::kBool;
  }
  return at::kFloat;
}

}  // namespace

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                     const std::string& source) {
  const NamedTensors mine = state_dict(module);
  std::vector<std::string> missing, misshaped, unexpected;
  std::map<std::string, bool> known;
  for (const auto& [name, t] : mine) {
    known[name] = true;
    const auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != t.sizes()) {
      misshaped.push_back(fmt::format("{} (file {}, model {})", name, shape(it->second), shape(t)));
    }
  }
  for (const auto& [name, t] : tensors) {
    if (!known.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) {
      parts.push_back(fmt::format("{} missing: {}", missing.size(), listing(missing)));
    }
    if (!unexpected.empty()) {
      parts.push_back(fmt::format("{} unexpected: {}", unexpected.size(), listing(unexpected)));
    }
    if (!misshaped.empty()) {
      parts.push_back(fmt::format("{} mis-shaped: {}", misshaped.size(), listing(misshaped)));
    }
    throw CheckpointError(
        fmt::format("{}: the weights do not fit the model: {}", source, fmt::join(parts, "; ")));
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : mine) {
    const at::Tensor& src = tensors.at(name);
    at::Tensor dst = t;  // shares storage with the module's tensor
    dst.copy_(src.to(dst.scalar_type()));
  }
}

std::int64_t embedding_size_in(const std::string& network,
                               const std::map<std::string, at::Tensor>& tensors,
                               const std::string& source) {
  const std::string key = embedding_weight_name(network);
  const auto it = tensors.find(key);
  if (it == tensors.end() || it->second.dim() != 2) {
    throw CheckpointError(
        fmt::format("{}: no 2-D {} in the weights: not a {} state dict", source, key, network));
  }
  // The size a model is built with: within model.embedding_size's range, and a weight that holds
  // something (a [2^31, 0] tensor would size a model from nothing).
  const std::int64_t size = it->second.size(0);
  const auto max_size =
      static_cast<std::int64_t>(*ConfigSchema::instance().find("model.embedding_size")->max);
  if (size < 1 || size > max_size || it->second.size(1) < 1) {
    throw CheckpointError(fmt::format(
        "{}: {} has shape [{}, {}]: an embedding of 1 to {} values from a non-empty input "
        "expected",
        source, key, size, it->second.size(1), max_size));
  }
  return size;
}

namespace {

// The largest weights file read into memory: a ViT-H backbone, or one rank's Partial FC rows of
// millions of classes with their optimizer state, fit well inside it.
constexpr std::int64_t kMaxWeightsFileBytes = std::int64_t{64} << 30;

}  // namespace

std::map<std::string, at::Tensor> read_state_dict(const std::filesystem::path& file) {
  const std::string bytes = InputFile::open_or_throw<CheckpointError>(file).read_all<CheckpointError>(
      kMaxWeightsFileBytes, "a weights file");
  const SavedStateDict saved = read_torch_save(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                               bytes.size(), file.string());
  // One tensor per storage, its bytes copied once; the saved tensors are views of them.
  std::vector<at::Tensor> storages;
  for (const auto& s : saved.storages) {
    at::Tensor t = at::empty({s.numel}, at::TensorOptions().dtype(scalar_type(s.dtype)));
    if (!s.bytes.empty()) std::memcpy(t.data_ptr(), s.bytes.data(), s.bytes.size());
    storages.push_back(std::move(t));
  }
  std::map<std::string, at::Tensor> out;
  for (const auto& t : saved.tensors) {
    try {
      out[t.name] = storages[t.storage].as_strided(t.sizes, t.strides, t.offset);
    } catch (const c10::Error& e) {
      throw CheckpointError(fmt::format("{}: tensor '{}' of shape [{}] does not fit its storage: {}",
                                        file.string(), t.name, fmt::join(t.sizes, ", "),
                                        e.what_without_backtrace()));
    }
  }
  // A model saved through DistributedDataParallel carries its wrapper's "module." on every name.
  const std::string wrapper = "module.";
  const bool wrapped = !out.empty() && std::all_of(out.begin(), out.end(), [&](const auto& e) {
    return e.first.rfind(wrapper, 0) == 0;
  });
  if (wrapped) {
    std::map<std::string, at::Tensor> unwrapped;
    for (auto& [name, t] : out) unwrapped[name.substr(wrapper.size())] = std::move(t);
    out = std::move(unwrapped);
  }
  return out;
}

std::string state_dict_bytes(const NamedTensors& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().cpu().contiguous());
  // What torch::pickle_save does, but without tagging the dict with its TorchScript type: that
  // tag (torch.jit._pickle.restore_type_tag) makes Python's torch.load(weights_only=True), the
  // default since torch 2.6, refuse the file.
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* data, std::size_t size) { pickle.insert(pickle.end(), data, data + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::string container;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t size) {
    container.append(static_cast<const char*>(data), size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return container;
}

void write_state_dict(const std::filesystem::path& file, const NamedTensors& tensors) {
  write_file_atomic(file, state_dict_bytes(tensors));
}

}  // namespace facetrain::models
