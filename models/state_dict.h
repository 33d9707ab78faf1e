#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace facetrain::models {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Every parameter, then every buffer, of `module` under its dotted name ("layer1.0.bn1.weight",
// "layer1.0.bn1.num_batches_tracked"), in registration order — insightface's names for our
// backbones.
NamedTensors state_dict(const torch::nn::Module& module);

// Copies `tensors` into `module`'s parameters and buffers (converted to their dtype and device).
// The keys must be exactly the module's, with the same shapes; otherwise nothing is changed and
// CheckpointError lists, for `source`, the missing keys, the unexpected keys and the mis-shaped
// ones with both shapes.
void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                     const std::string& source);

// The embedding length stored in a backbone's weights (iresnet: fc.weight's rows; mbf:
// features.layers.2.weight's rows); CheckpointError naming `source` when the key is absent.
std::int64_t embedding_size_in(const std::string& network,
                               const std::map<std::string, at::Tensor>& tensors,
                               const std::string& source);

// Reads a file written by Python's `torch.save(state_dict, path)` (or write_state_dict): a dict
// — or the OrderedDict that `model.state_dict()` returns — from names to tensors, saved from the
// CPU or a GPU, read without running pickle code (models/torch_save_format.h). A model saved
// through DistributedDataParallel has its "module." prefix removed from every name. Missing,
// truncated, damaged or foreign files throw CheckpointError naming the file and the problem.
std::map<std::string, at::Tensor> read_state_dict(const std::filesystem::path& file);

// `tensors` as a dict of CPU tensors in torch.save's format (a zip archive), which Python's
// torch.load reads, also with weights_only=True.
std::string state_dict_bytes(const NamedTensors& tensors);

// Writes state_dict_bytes(tensors) to `file` atomically (see write_file_atomic).
void write_state_dict(const std::filesystem::path& file, const NamedTensors& tensors);

}  // namespace facetrain::models
