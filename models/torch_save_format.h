#pragma once

// The torch.save file format (PyTorch >= 1.6: a zip archive of a pickle, data.pkl, and one
// entry per tensor storage, data/KEY), read without LibTorch and without running pickle code:
// a dict of tensors — plain, or the OrderedDict that `model.state_dict()` returns, as
// insightface's released weights and arcface_torch's checkpoints are — becomes a list of
// storages (bytes of the archive) and of tensors viewing them. Every size, stride and offset is
// checked against the storage's bytes before anything is allocated (models/state_dict.h makes
// the LibTorch tensors). Tensors saved from a GPU are read as any other: the bytes are the same.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace facetrain::models {

// The element types of torch's typed storages (torch.FloatStorage, …).
enum class StorageDtype {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool
};

// Bytes per element of `dtype`.
std::size_t element_size(StorageDtype dtype);

struct SavedStorage {
  std::string key;  // its entry is data/KEY
  StorageDtype dtype = StorageDtype::kFloat32;
  std::int64_t numel = 0;
  std::string_view bytes;  // numel · element_size bytes of the archive, little-endian
};

// A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage.
struct SavedTensor {
  std::string name;
  std::size_t storage = 0;  // index into SavedStateDict::storages
  std::int64_t offset = 0;  // in elements
  std::vector<std::int64_t> sizes, strides;
};

struct SavedStateDict {
  std::vector<SavedStorage> storages;
  std::vector<SavedTensor> tensors;  // in the dict's order
};

// Reads a torch.save archive held in `bytes` (which the result views: keep them alive). The
// archive must hold a dict from str names to tensors; anything else — not a zip, a legacy
// (pre-1.6) file, a pickle calling other code, a truncated or damaged archive (CRC-32 checked), a
// big-endian one, a tensor reaching past its storage or holding more elements than it, a dict
// of dicts (a training checkpoint) —
// is a CheckpointError naming `source` and what was found.
SavedStateDict read_torch_save(const std::uint8_t* bytes, std::size_t size,
                               const std::string& source);

}  // namespace facetrain::models
