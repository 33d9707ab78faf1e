// The HDF5 openers — a verification set, a dataset folder (manifest + shards) — on files whose
// structure the fuzzer chooses: which datasets exist, their element types, their declared shapes
// (up to 2^40 elements, then stored as empty chunks), their contents, the manifest's numbers
// and the format attribute's type and shape. The files are written with HDF5's own API, so
// HDF5 always parses a valid file and what is exercised is the openers' checks of what valid
// files may hold (libhdf5's parser of corrupt bytes is libhdf5's to harden, not ours).
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/shards/manifest.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace fs = std::filesystem;

// What a dataset's elements are.
enum class Element { kAbsent, kUInt8, kInt8, kInt32, kInt64, kDouble, kString, kCount };

hid_t file_type(Element e) {
  switch (e) {
    case Element::kUInt8:
      return H5T_NATIVE_UINT8;
    case Element::kInt8:
      return H5T_NATIVE_INT8;
    case Element::kInt32:
      return H5T_NATIVE_INT32;
    case Element::kInt64:
      return H5T_NATIVE_INT64;
    default:
      return H5T_NATIVE_DOUBLE;
  }
}

hid_t string_type() {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  return t;
}

// One dataset of the fuzzer's choosing. `increasing` offers the fuzzer values that grow (as
// offsets do), so the checks behind the first ones are reached too.
void write_dataset(hid_t file, const char* name, FuzzedDataProvider& in, bool increasing) {
  const auto element = static_cast<Element>(
      in.ConsumeIntegralInRange<int>(0, static_cast<int>(Element::kCount) - 1));
  if (element == Element::kAbsent) return;
  const int rank = in.ConsumeIntegralInRange(0, 2);
  static const hsize_t kSizes[] = {0, 1, 2, 3, 4, 5, 7, 9, 17, 33, hsize_t{1} << 20,
                                   hsize_t{1} << 40};
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  std::uint64_t elements = 1;
  for (auto& d : dims) {
    d = in.PickValueInArray(kSizes);
    if (__builtin_mul_overflow(elements, d, &elements)) elements = UINT64_MAX;
  }
  const bool written = elements <= 4096;
  if (rank == 0 && !written) return;
  const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr);
  const hid_t properties = H5Pcreate(H5P_DATASET_CREATE);
  if (!written) {
    // Declared, never stored: chunked, so HDF5 allocates nothing.
    std::vector<hsize_t> chunk(dims.size());
    for (std::size_t i = 0; i < dims.size(); ++i) chunk[i] = std::max<hsize_t>(1, std::min<hsize_t>(dims[i], 64));
    H5Pset_chunk(properties, rank, chunk.data());
  }
  const hid_t type = element == Element::kString ? string_type() : H5Tcopy(file_type(element));
  const hid_t set = H5Dcreate2(file, name, type, space, H5P_DEFAULT, properties, H5P_DEFAULT);
  if (set >= 0 && written && elements > 0) {
    if (element == Element::kString) {
      std::vector<std::string> values;
      std::vector<const char*> pointers;
      for (std::uint64_t i = 0; i < elements; ++i) values.push_back(in.ConsumeRandomLengthString(8));
      for (const auto& v : values) pointers.push_back(v.c_str());
      H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data());
    } else {
      std::vector<double> values(elements);
      double last = 0;
      for (auto& v : values) {
        const auto step = in.ConsumeIntegralInRange<std::int64_t>(-2, 3000);
        v = increasing ? (last += static_cast<double>(step)) : static_cast<double>(step);
      }
      H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    }
  }
  if (set >= 0) H5Dclose(set);
  H5Tclose(type);
  H5Pclose(properties);
  H5Sclose(space);
}

// The "format" attribute: absent, the expected text (fixed or variable length), other text, an
// array of strings, or a number.
void write_format(hid_t file, const std::string& expected, FuzzedDataProvider& in) {
  const int choice = in.ConsumeIntegralInRange(0, 5);
  if (choice == 0) return;
  const std::string text = choice <= 2 ? expected : in.ConsumeRandomLengthString(32);
  hsize_t count = choice == 4 ? in.ConsumeIntegralInRange<hsize_t>(0, 2000) : 1;
  const hid_t space = choice == 4 ? H5Screate_simple(1, &count, nullptr) : H5Screate(H5S_SCALAR);
  hid_t type;
  if (choice == 5) {
    type = H5Tcopy(H5T_NATIVE_INT64);
  } else if (choice == 2 || choice == 4) {
    type = string_type();
  } else {
    type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, std::max<std::size_t>(1, text.size()));
  }
  const hid_t attr = H5Acreate2(file, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr >= 0) {
    if (choice == 5) {
      const std::int64_t v = 7;
      H5Awrite(attr, type, &v);
    } else if (choice == 2 || choice == 4) {
      std::vector<const char*> pointers(count, text.c_str());
      if (count > 0) H5Awrite(attr, type, pointers.data());
    } else {
      std::string padded = text.empty() ? std::string(1, '\0') : text;
      H5Awrite(attr, type, padded.data());
    }
    H5Aclose(attr);
  }
  H5Tclose(type);
  H5Sclose(space);
}

void verification_set(const fs::path& dir, FuzzedDataProvider& in) {
  const fs::path path = dir / "pairs.h5";
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  write_format(file, "facetrain-verification", in);
  write_dataset(file, "jpeg", in, false);
  write_dataset(file, "offsets", in, true);
  write_dataset(file, "issame", in, false);
  H5Fclose(file);
  facetrain::data::VerificationSet set(path);
  for (std::int64_t i : {std::int64_t{0}, std::int64_t{1}, 2 * set.num_pairs() - 1}) {
    if (i >= 0 && i < 2 * set.num_pairs()) set.image(i);
  }
}

void dataset(const fs::path& dir, FuzzedDataProvider& in) {
  facetrain::data::Manifest manifest;
  static const std::int64_t kCounts[] = {0, 1, 2, 3, 5, 8, 4096, std::int64_t{1} << 40};
  manifest.num_classes = in.PickValueInArray(kCounts);
  const int shards = in.ConsumeIntegralInRange(1, 2);
  for (int s = 0; s < shards; ++s) {
    facetrain::data::ShardInfo info;
    info.file = "shard-0000" + std::to_string(s) + ".h5";
    info.num_samples = in.PickValueInArray(kCounts);
    info.label_min = 0;
    info.label_max = std::max<std::int64_t>(0, manifest.num_classes - 1);
    manifest.num_samples += info.num_samples;
    const hid_t file =
        H5Fcreate((dir / info.file).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    write_dataset(file, "jpeg", in, false);
    write_dataset(file, "offsets", in, true);
    write_dataset(file, "labels", in, false);
    H5Fclose(file);
    manifest.shards.push_back(info);
  }
  manifest.write(dir);
  facetrain::data::ShardedDataset data(dir);
  std::vector<std::uint8_t> bytes;
  for (std::int64_t i : {std::int64_t{0}, data.size() / 2, data.size() - 1}) {
    if (i >= 0 && i < data.size()) data.read(i, bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)quiet;
  FuzzedDataProvider in(data, size);
  const fs::path dir = facetrain::fuzz::scratch();
  try {
    if (in.ConsumeBool()) {
      verification_set(dir, in);
    } else {
      dataset(dir, in);
    }
  } catch (const facetrain::Error&) {
  }
  return 0;
}
