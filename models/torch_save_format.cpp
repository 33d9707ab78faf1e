#include "models/torch_save_format.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <limits>
#include <map>

#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "framework/serialization/unpickler.h"
#include "framework/serialization/zip_archive.h"

namespace facetrain::models {
namespace {

using serialization::is_object;
using serialization::PyValue;
using serialization::Unpickler;
using Kind = PyValue::Kind;

constexpr const char* kStorage = "torch storage";
constexpr const char* kTensor = "torch.Tensor";
constexpr std::size_t kMaxDims = 64;

struct StorageType {
  const char* global;  // "torch FloatStorage"
  StorageDtype dtype;
};

constexpr std::array<StorageType, 10> kStorageTypes = {{
    {"torch FloatStorage", StorageDtype::kFloat32},
    {"torch DoubleStorage", StorageDtype::kFloat64},
    {"torch HalfStorage", StorageDtype::kFloat16},
    {"torch BFloat16Storage", StorageDtype::kBFloat16},
    {"torch LongStorage", StorageDtype::kInt64},
    {"torch IntStorage", StorageDtype::kInt32},
    {"torch ShortStorage", StorageDtype::kInt16},
    {"torch CharStorage", StorageDtype::kInt8},
    {"torch ByteStorage", StorageDtype::kUInt8},
    {"torch BoolStorage", StorageDtype::kBool},
}};

// What a torch.save pickle of tensors holds beyond plain data: OrderedDicts, tensors rebuilt
// from (storage, offset, size, stride), parameters wrapping them, and persistent references
// to the archive's storages. A storage is an object with `data` its key and `ints` {dtype,
// numel}; a tensor has `items` {storage} and `ints` {offset, sizes..., strides...}.
class TensorVocabulary : public serialization::PickleVocabulary {
 public:
  std::string format() const override { return "a torch.save file of tensors"; }

  bool allows(const std::string& g) const override {
    if (g == "collections OrderedDict" || g == "torch._utils _rebuild_tensor_v2" ||
        g == "torch._utils _rebuild_tensor" || g == "torch._utils _rebuild_parameter") {
      return true;
    }
    for (const auto& t : kStorageTypes) {
      if (g == t.global) return true;
    }
    return false;
  }

  PyValue* reduce(Unpickler& u, const PyValue& callable, const PyValue& args) override {
    const std::string& g = callable.text;
    const auto& a = args.items;
    const auto bad = [&] { u.fail(fmt::format("REDUCE: unexpected arguments to '{}'", g)); };
    if (g == "collections OrderedDict") {
      if (!a.empty()) bad();  // its items follow as SETITEMS
      return u.make(Kind::kDict);
    }
    if (g == "torch._utils _rebuild_parameter") {
      // (data, requires_grad, backward_hooks): the tensor itself.
      if (a.size() != 3 || !is_object(*a[0], kTensor)) bad();
      return a[0];
    }
    if (g == "torch._utils _rebuild_tensor_v2" || g == "torch._utils _rebuild_tensor") {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
      if (a.size() < 4 || a.size() > 7 || !is_object(*a[0], kStorage) || a[1]->kind != Kind::kInt ||
          a[2]->kind != Kind::kTuple || a[3]->kind != Kind::kTuple ||
          a[2]->items.size() != a[3]->items.size() || a[2]->items.size() > kMaxDims) {
        bad();
      }
      PyValue* t = u.make(Kind::kObject);
      t->text = kTensor;
      t->items = {a[0]};
      t->ints.push_back(a[1]->integer);
      for (const auto* tuple : {a[2], a[3]}) {
        for (const auto* d : tuple->items) {
          if (d->kind != Kind::kInt) bad();
          t->ints.push_back(d->integer);
        }
      }
      return t;
    }
    u.fail(fmt::format("REDUCE of '{}' is not supported", g));
  }

  // ('storage', storage type, key, location, numel): one object per key.
  PyValue* persistent(Unpickler& u, const PyValue& id) override {
    const auto& a = id.items;
    if (id.kind != Kind::kTuple || a.size() != 5 || a[0]->kind != Kind::kStr ||
        a[0]->text != "storage" || a[1]->kind != Kind::kGlobal || a[2]->kind != Kind::kStr ||
        a[3]->kind != Kind::kStr || a[4]->kind != Kind::kInt || a[4]->integer < 0) {
      u.fail("a persistent reference that is not ('storage', type, key, location, numel)");
    }
    StorageDtype dtype{};
    bool known = false;
    for (const auto& t : kStorageTypes) {
      if (a[1]->text == t.global) dtype = t.dtype, known = true;
    }
    if (!known) u.fail(fmt::format("'{}' is not a storage type", a[1]->text));
    const std::string& key = a[2]->text;
    const auto numel = a[4]->integer;
    const auto it = storages_.find(key);
    if (it != storages_.end()) {
      if (it->second->ints != std::vector<std::int64_t>{static_cast<std::int64_t>(dtype), numel}) {
        u.fail(fmt::format("storage '{}' is referenced with two types or sizes", key));
      }
      return it->second;
    }
    PyValue* s = u.make(Kind::kObject);
    s->text = kStorage;
    s->data = key;
    s->ints = {static_cast<std::int64_t>(dtype), numel};
    storages_.emplace(key, s);
    return s;
  }

 private:
  std::map<std::string, PyValue*> storages_;
};

// The storages of `root`'s tensors in first-use order, with their bytes from `archive`, and the
// tensors checked to lie inside them.
SavedStateDict collect(const PyValue& root, const serialization::ZipArchive& archive,
                       const std::string& prefix, const std::string& source) {
  SavedStateDict out;
  std::map<const PyValue*, std::size_t> index;
  for (std::size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PyValue& key = *root.items[i];
    const PyValue& value = *root.items[i + 1];
    if (key.kind != Kind::kStr) {
      throw CheckpointError(fmt::format("{}: a key of the dict is a {}, expected a str name",
                                        source, serialization::kind_name(key)));
    }
    if (!is_object(value, kTensor)) {
      throw CheckpointError(
          fmt::format("{}: '{}' is a {}, expected a tensor: not a state dict{}", source, key.text,
                      serialization::kind_name(value),
                      value.kind == Kind::kDict
                          ? fmt::format(" (a training checkpoint? save its weights alone: "
                                        "torch.save(checkpoint['{}'], path))",
                                        key.text)
                          : ""));
    }
    const PyValue& storage = *value.items[0];
    auto [slot, added] = index.emplace(&storage, out.storages.size());
    if (added) {
      SavedStorage s;
      s.key = storage.data;
      s.dtype = static_cast<StorageDtype>(storage.ints[0]);
      s.numel = storage.ints[1];
      const std::string entry = prefix + "data/" + s.key;
      const serialization::ZipEntry* e = archive.find(entry);
      if (e == nullptr) {
        throw CheckpointError(fmt::format("{}: tensor '{}': its storage {} is not in the archive",
                                          source, key.text, entry));
      }
      const auto expected =
          checked::try_mul(s.numel, static_cast<std::int64_t>(element_size(s.dtype)));
      if (!expected || static_cast<std::uint64_t>(*expected) != e->size) {
        throw CheckpointError(
            fmt::format("{}: storage {}: {} bytes, expected {} elements of {} bytes", source, entry,
                        e->size, s.numel, element_size(s.dtype)));
      }
      s.bytes = archive.read(*e);
      out.storages.push_back(std::move(s));
    }
    SavedTensor t;
    t.name = key.text;
    t.storage = slot->second;
    const std::size_t dims = (value.ints.size() - 1) / 2;
    t.offset = value.ints[0];
    t.sizes.assign(value.ints.begin() + 1, value.ints.begin() + 1 + dims);
    t.strides.assign(value.ints.begin() + 1 + dims, value.ints.end());
    // The last element it reaches, offset + Σ (size − 1)·stride, must be in the storage.
    std::int64_t last = t.offset, elements = 1;
    bool ok = t.offset >= 0;
    for (std::size_t d = 0; d < dims && ok; ++d) {
      ok = t.sizes[d] >= 0 && t.strides[d] >= 0;
      const auto grown = ok ? checked::try_mul(elements, t.sizes[d]) : std::nullopt;
      const auto reach = ok && t.sizes[d] > 0 ? checked::try_mul(t.sizes[d] - 1, t.strides[d])
                                              : std::optional<std::int64_t>(0);
      const auto further = grown && reach ? checked::try_add(last, *reach) : std::nullopt;
      ok = ok && further.has_value();
      if (ok) {
        elements = *grown;
        last = *further;
      }
    }
    // Within its storage, and no more elements than it (a view that repeats elements, like
    // expand()'s, could make a 1-element storage a 2^36-element tensor downstream).
    const std::int64_t numel = out.storages[t.storage].numel;
    if (!ok || (elements > 0 && (last >= numel || elements > numel))) {
      throw CheckpointError(fmt::format(
          "{}: tensor '{}' (offset {}, sizes [{}], strides [{}]) does not fit in its storage of "
          "{} elements",
          source, t.name, t.offset, fmt::join(t.sizes, ", "), fmt::join(t.strides, ", "), numel));
    }
    out.tensors.push_back(std::move(t));
  }
  return out;
}

// The folder data.pkl is in ("archive/"), its one pickle.
const serialization::ZipEntry& find_pickle(const serialization::ZipArchive& archive,
                                           const std::string& source, std::string& prefix) {
  const serialization::ZipEntry* found = nullptr;
  for (const auto& e : archive.entries()) {
    const std::string suffix = "data.pkl";
    if (!ends_with(e.name, suffix)) continue;
    const std::string folder = e.name.substr(0, e.name.size() - suffix.size());
    if (!folder.empty() && (folder.back() != '/' || folder.find('/') != folder.size() - 1)) {
      continue;
    }
    if (found != nullptr) {
      throw CheckpointError(fmt::format("{}: two pickles, {} and {}", source, found->name, e.name));
    }
    found = &e;
    prefix = folder;
  }
  if (found == nullptr) {
    throw CheckpointError(
        fmt::format("{}: a zip archive without data.pkl: not a torch.save file", source));
  }
  return *found;
}

}  // namespace

std::size_t element_size(StorageDtype dtype) {
  switch (dtype) {
    case StorageDtype::kFloat64:
    case StorageDtype::kInt64:
      return 8;
    case StorageDtype::kFloat32:
    case StorageDtype::kInt32:
      return 4;
    case StorageDtype::kFloat16:
    case StorageDtype::kBFloat16:
    case StorageDtype::kInt16:
      return 2;
    case StorageDtype::kInt8:
    case StorageDtype::kUInt8:
    case StorageDtype::kBool:
      return 1;
  }
  return 1;
}

SavedStateDict read_torch_save(const std::uint8_t* bytes, std::size_t size,
                               const std::string& source) {
  if (!serialization::looks_like_zip(bytes, size)) {
    // The legacy format starts with a pickled magic number (protocol 2, LONG1 of 10 bytes).
    const bool legacy = size > 4 && bytes[0] == 0x80 && bytes[2] == 0x8a && bytes[3] == 0x0a;
    throw CheckpointError(fmt::format(
        "{}: not a readable torch.save file ({} bytes): {}", source, size,
        legacy ? "the legacy format of PyTorch before 1.6; re-save it with a current PyTorch: "
                 "torch.save(torch.load(path), path)"
               : "not a zip archive"));
  }
  try {
    const serialization::ZipArchive archive(bytes, size, source);
    std::string prefix;
    const serialization::ZipEntry& pickle = find_pickle(archive, source, prefix);
    if (const auto* order = archive.find(prefix + "byteorder")) {
      if (archive.read(*order) != "little") {
        throw CheckpointError(
            fmt::format("{}: a big-endian archive ({}byteorder); only little-endian ones are read",
                        source, prefix));
      }
    }
    const std::string_view pkl = archive.read(pickle);
    TensorVocabulary vocabulary;
    Unpickler unpickler(reinterpret_cast<const std::uint8_t*>(pkl.data()), pkl.size(),
                        source + ": " + pickle.name, vocabulary);
    const PyValue* root = unpickler.run();
    if (root->kind != Kind::kDict) {
      throw CheckpointError(fmt::format("{}: expected a dict of tensors, found a {}", source,
                                        serialization::kind_name(*root)));
    }
    return collect(*root, archive, prefix, source);
  } catch (const DataError& e) {
    // The archive's and the pickle's own messages start with the file's name.
    std::string why = e.what();
    if (why.rfind(source + ": ", 0) == 0) why.erase(0, source.size() + 2);
    throw CheckpointError(
        fmt::format("{}: not a readable torch.save file ({} bytes): {}", source, size, why));
  }
}

}  // namespace facetrain::models
