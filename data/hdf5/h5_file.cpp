#include "data/hdf5/h5_file.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <limits>
#include <memory>

#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::data {
namespace detail {

namespace {
herr_t innermost(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0) *static_cast<std::string*>(out) = err->desc != nullptr ? err->desc : "";
  return 0;
}
}  // namespace

void throw_h5_error(const char* call, const char* where, int line, const std::string& file) {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost, &message);
  throw DataError(fmt::format("{}: {} failed ({}:{}){}{}", file, call, where, line,
                              message.empty() ? "" : ": ", message));
}

}  // namespace detail

namespace {

// Closes an HDF5 handle with its kind's close call (H5Sclose, H5Tclose, H5Dclose, H5Aclose).
struct Closer {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Closer() {
    if (id >= 0) close(id);
  }
  Closer(const Closer&) = delete;
  Closer& operator=(const Closer&) = delete;
};

hid_t memory_type(at::ScalarType t, const std::string& file, const std::string& name) {
  switch (t) {
    case at::kByte:
      return H5T_NATIVE_UINT8;
    case at::kInt:
      return H5T_NATIVE_INT32;
    case at::kLong:
      return H5T_NATIVE_INT64;
    case at::kFloat:
      return H5T_NATIVE_FLOAT;
    case at::kDouble:
      return H5T_NATIVE_DOUBLE;
    default:
      throw DataError(
          fmt::format("{}: /{}: dtype {} cannot be stored", file, name, c10::toString(t)));
  }
}

// The element count of dataset `set` (space `space`) before a read allocates for it, each taking
// `element_bytes` in memory: its declared dimensions must fit in int64 and its data must be in
// the file. A dataset may declare far more than it stores (unwritten chunks read as a fill
// value), so the declared bytes are bounded by the bytes stored times deflate's largest ratio
// (1032:1), beyond a small allowance.
std::int64_t checked_elements(hid_t set, hid_t space, std::size_t element_bytes,
                              const std::string& file, const std::string& name) {
  if (H5Sget_simple_extent_type(space) == H5S_NULL) return 0;
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  std::optional<std::uint64_t> elements = rank >= 0 ? std::optional<std::uint64_t>(1) : std::nullopt;
  for (const hsize_t d : dims) {
    // Each dimension an int64 too (one of 2^64 - 1 beside a 0 holds no elements, but no shape).
    if (elements && checked::fits<std::int64_t>(d)) {
      elements = checked::try_mul<std::uint64_t>(*elements, d);
    } else {
      elements = std::nullopt;
    }
  }
  const bool fits_int64 = elements && checked::fits<std::int64_t>(*elements);
  const auto product = fits_int64 ? checked::try_mul<std::uint64_t>(*elements, element_bytes)
                                  : std::nullopt;
  const bool fits = product.has_value();
  const std::uint64_t bytes = product.value_or(0);
  constexpr std::uint64_t kAllowance = 1 << 20, kRatio = 1100;
  const std::uint64_t stored = H5Dget_storage_size(set);
  if (!fits || (bytes > kAllowance && bytes / kRatio > stored)) {
    throw DataError(
        fmt::format("{}: /{} declares {} elements of {} bytes but the file stores {} bytes of it: "
                    "a damaged or hostile file",
                    file, name, fits ? fmt::format("{}", *elements) : std::string("more than 2^63"),
                    element_bytes, stored));
  }
  return static_cast<std::int64_t>(*elements);
}

void silence_hdf5() {
  static const bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

}  // namespace

H5File H5File::create(const std::filesystem::path& path) {
  silence_hdf5();
  const std::string path_ = path.string();
  const hid_t id = FT_CHECK_H5(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  return H5File(id, path_);
}

H5File H5File::open(const std::filesystem::path& path) {
  silence_hdf5();
  const std::string path_ = path.string();
  // HDF5 opens the path itself: a FIFO or a folder is refused before it could block or misread.
  require_regular_file<DataError>(path);
  const hid_t id = FT_CHECK_H5(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  return H5File(id, path_);
}

H5File::H5File(H5File&& other) noexcept
    : id_(other.id_),
      path_(std::move(other.path_)),
      open_datasets_(std::move(other.open_datasets_)) {
  other.id_ = -1;
  other.open_datasets_.clear();
}

H5File::~H5File() {
  for (const auto& [name, set] : open_datasets_) H5Dclose(set);
  if (id_ >= 0) H5Fclose(id_);
}

void H5File::close() {
  for (const auto& [name, set] : open_datasets_) H5Dclose(set);
  open_datasets_.clear();
  if (id_ < 0) return;
  const hid_t id = id_;
  id_ = -1;
  if (H5Fflush(id, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(id) < 0) {
    throw DataError(fmt::format("{}: flushing and closing the file failed (disk full?)", path_));
  }
}

hid_t H5File::cached_dataset(const std::string& name) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  const auto it = open_datasets_.find(name);
  if (it != open_datasets_.end()) return it->second;
  const hid_t set = open_dataset(name);
  open_datasets_.emplace(name, set);
  return set;
}

hid_t H5File::open_dataset(const std::string& name) const {
  // Only data in this file: an external link, external raw storage or a virtual dataset would
  // make HDF5 open other paths (a FIFO among them) that no check here has seen.
  H5L_info_t link{};
  FT_CHECK_H5(H5Lget_info(id_, name.c_str(), &link, H5P_DEFAULT));
  if (link.type != H5L_TYPE_HARD) {
    throw DataError(fmt::format("{}: /{} is a link to elsewhere, expected a dataset in the file",
                                path_, name));
  }
  const hid_t set = FT_CHECK_H5(H5Dopen2(id_, name.c_str(), H5P_DEFAULT));
  Closer plist{H5Dget_create_plist(set), H5Pclose};
  const bool external = plist.id >= 0 && H5Pget_external_count(plist.id) > 0;
  const bool is_virtual = plist.id >= 0 && H5Pget_layout(plist.id) == H5D_VIRTUAL;
  if (plist.id < 0 || external || is_virtual) {
    H5Dclose(set);
    throw DataError(fmt::format("{}: /{} keeps its data {}, expected it in the file", path_, name,
                                is_virtual ? "in a virtual mapping" : "in other files"));
  }
  return set;
}

bool H5File::has(const std::string& name) const {
  return H5Lexists(id_, name.c_str(), H5P_DEFAULT) > 0;
}

void H5File::write(const std::string& name, const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous().cpu();
  const hid_t type = memory_type(t.scalar_type(), path_, name);
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Closer space{FT_CHECK_H5(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)),
               H5Sclose};
  const hid_t set = FT_CHECK_H5(
      H5Dcreate2(id_, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const herr_t rc =
      t.numel() > 0 ? H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) : 0;
  H5Dclose(set);
  FT_CHECK_H5(rc);
}

void H5File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  Closer type{FT_CHECK_H5(H5Tcopy(H5T_C_S1)), H5Tclose};
  FT_CHECK_H5(H5Tset_size(type.id, H5T_VARIABLE));
  FT_CHECK_H5(H5Tset_cset(type.id, H5T_CSET_UTF8));
  const hsize_t n = values.size();
  Closer space{FT_CHECK_H5(H5Screate_simple(1, &n, nullptr)), H5Sclose};
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  const hid_t set = FT_CHECK_H5(
      H5Dcreate2(id_, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const herr_t rc =
      n > 0 ? H5Dwrite(set, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) : 0;
  H5Dclose(set);
  FT_CHECK_H5(rc);
}

void H5File::write_attribute(const std::string& name, const std::string& value) {
  Closer type{FT_CHECK_H5(H5Tcopy(H5T_C_S1)), H5Tclose};
  FT_CHECK_H5(H5Tset_size(type.id, std::max<std::size_t>(1, value.size())));
  FT_CHECK_H5(H5Tset_cset(type.id, H5T_CSET_UTF8));
  Closer space{FT_CHECK_H5(H5Screate(H5S_SCALAR)), H5Sclose};
  const hid_t attr =
      FT_CHECK_H5(H5Acreate2(id_, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT));
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  const herr_t rc = H5Awrite(attr, type.id, padded.data());
  H5Aclose(attr);
  FT_CHECK_H5(rc);
}

// An enumeration over integers (numpy's bool, as h5py writes it: FALSE 0, TRUE 1) as its integer
// values: read in the file's own enumeration type, whose bytes are the base integers.
at::Tensor H5File::read_enum(hid_t set, hid_t space, hid_t stored,
                             const std::vector<hsize_t>& dims, const std::string& name) const {
  Closer base{FT_CHECK_H5(H5Tget_super(stored)), H5Tclose};
  const std::size_t bytes = H5Tget_size(base.id);
  const bool is_signed = H5Tget_sign(base.id) == H5T_SGN_2;
  // Signed integers of 1 to 8 bytes, or unsigned bytes: the types a tensor holds as they are.
  if (H5Tget_class(base.id) != H5T_INTEGER || (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8) ||
      (!is_signed && bytes != 1)) {
    throw DataError(fmt::format(
        "{}: /{}: an enumeration over {} {}-byte values, expected signed integers or bytes", path_,
        name, is_signed ? "signed" : "unsigned", bytes));
  }
  const at::ScalarType dtype = bytes == 1 ? (is_signed ? at::kChar : at::kByte)
                               : bytes == 2 ? at::kShort
                               : bytes == 4 ? at::kInt
                                            : at::kLong;
  checked_elements(set, space, bytes, path_, name);
  at::Tensor out = at::empty(std::vector<std::int64_t>(dims.begin(), dims.end()), dtype);
  Closer memory{FT_CHECK_H5(H5Tget_native_type(stored, H5T_DIR_ASCEND)), H5Tclose};
  if (out.numel() > 0) {
    FT_CHECK_H5(H5Dread(set, memory.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()));
  }
  return out;
}

at::Tensor H5File::read(const std::string& name) const {
  if (!has(name)) throw DataError(fmt::format("{}: no dataset /{}", path_, name));
  const hid_t set = open_dataset(name);
  Closer closer{set, H5Dclose};
  Closer space{FT_CHECK_H5(H5Dget_space(set)), H5Sclose};
  const int rank = FT_CHECK_H5(H5Sget_simple_extent_ndims(space.id));
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  FT_CHECK_H5(H5Sget_simple_extent_dims(space.id, dims.data(), nullptr));
  Closer stored{FT_CHECK_H5(H5Dget_type(set)), H5Tclose};
  at::ScalarType dtype;
  const H5T_class_t cls = H5Tget_class(stored.id);
  const std::size_t bytes = H5Tget_size(stored.id);
  if (cls == H5T_ENUM) return read_enum(set, space.id, stored.id, dims, name);
  if (cls == H5T_FLOAT) {
    dtype = bytes == 8 ? at::kDouble : at::kFloat;
  } else if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(stored.id) == H5T_SGN_2;
    dtype = bytes == 1 && !is_signed ? at::kByte : bytes <= 4 ? at::kInt : at::kLong;
  } else {
    throw DataError(fmt::format("{}: /{}: expected a numeric dataset", path_, name));
  }
  // Bounded in the bytes it takes in memory, which may be wider than the stored type.
  checked_elements(set, space.id, std::max(bytes, at::elementSize(dtype)), path_, name);
  std::vector<std::int64_t> shape(dims.begin(), dims.end());
  at::Tensor out = at::empty(shape, dtype);
  if (out.numel() > 0) {
    FT_CHECK_H5(H5Dread(set, memory_type(dtype, path_, name), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                        out.data_ptr()));
  }
  return out;
}

void H5File::read_bytes(const std::string& name, std::int64_t offset, std::int64_t count,
                        std::uint8_t* out) const {
  if (count == 0) return;
  const hid_t set = cached_dataset(name);
  Closer file_space{FT_CHECK_H5(H5Dget_space(set)), H5Sclose};
  const hsize_t start = static_cast<hsize_t>(offset);
  const hsize_t n = static_cast<hsize_t>(count);
  FT_CHECK_H5(H5Sselect_hyperslab(file_space.id, H5S_SELECT_SET, &start, nullptr, &n, nullptr));
  Closer memory_space{FT_CHECK_H5(H5Screate_simple(1, &n, nullptr)), H5Sclose};
  FT_CHECK_H5(H5Dread(set, H5T_NATIVE_UINT8, memory_space.id, file_space.id, H5P_DEFAULT, out));
}

std::int64_t H5File::contiguous_offset(const std::string& name) const {
  const haddr_t at = H5Dget_offset(cached_dataset(name));
  return at == HADDR_UNDEF ? -1 : static_cast<std::int64_t>(at);
}

std::vector<std::int64_t> H5File::shape(const std::string& name) const {
  if (!has(name)) throw DataError(fmt::format("{}: no dataset /{}", path_, name));
  const hid_t set = open_dataset(name);
  Closer closer{set, H5Dclose};
  Closer space{FT_CHECK_H5(H5Dget_space(set)), H5Sclose};
  const int rank = FT_CHECK_H5(H5Sget_simple_extent_ndims(space.id));
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) FT_CHECK_H5(H5Sget_simple_extent_dims(space.id, dims.data(), nullptr));
  return std::vector<std::int64_t>(dims.begin(), dims.end());
}

std::int64_t H5File::length(const std::string& name) const {
  if (!has(name)) throw DataError(fmt::format("{}: no dataset /{}", path_, name));
  const hid_t set = open_dataset(name);
  Closer closer{set, H5Dclose};
  Closer space{FT_CHECK_H5(H5Dget_space(set)), H5Sclose};
  return FT_CHECK_H5(H5Sget_simple_extent_npoints(space.id));
}

std::vector<std::string> H5File::read_strings(const std::string& name) const {
  if (!has(name)) throw DataError(fmt::format("{}: no dataset /{}", path_, name));
  const hid_t set = open_dataset(name);
  Closer closer{set, H5Dclose};
  Closer space{FT_CHECK_H5(H5Dget_space(set)), H5Sclose};
  Closer stored{FT_CHECK_H5(H5Dget_type(set)), H5Tclose};
  if (H5Tget_class(stored.id) != H5T_STRING) {
    throw DataError(fmt::format("{}: /{}: expected a dataset of strings", path_, name));
  }
  const std::size_t size = H5Tget_size(stored.id);
  const std::int64_t n =
      checked_elements(set, space.id, std::max<std::size_t>(1, size), path_, name);
  std::vector<std::string> out;
  if (n == 0) return out;
  // The file's own character set (ASCII or UTF-8, as h5py writes either): HDF5 converts between
  // none of them.
  Closer type{FT_CHECK_H5(H5Tcopy(H5T_C_S1)), H5Tclose};
  FT_CHECK_H5(H5Tset_cset(type.id, H5Tget_cset(stored.id)));
  if (H5Tis_variable_str(stored.id) <= 0) {
    // Fixed-length strings: n × size bytes, each padded with NULs (or spaces).
    const H5T_str_t pad = H5Tget_strpad(stored.id);
    FT_CHECK_H5(H5Tset_size(type.id, size));
    FT_CHECK_H5(H5Tset_strpad(type.id, pad));
    std::string block(static_cast<std::size_t>(n) * size, '\0');
    FT_CHECK_H5(H5Dread(set, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, block.data()));
    for (std::int64_t i = 0; i < n; ++i) {
      std::string s = block.substr(static_cast<std::size_t>(i) * size, size);
      s.erase(s.find_last_not_of(pad == H5T_STR_SPACEPAD ? ' ' : '\0') + 1);
      out.push_back(s.substr(0, s.find('\0')));
    }
    return out;
  }
  FT_CHECK_H5(H5Tset_size(type.id, H5T_VARIABLE));
  std::vector<char*> pointers(static_cast<std::size_t>(n), nullptr);
  FT_CHECK_H5(H5Dread(set, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()));
  for (char* p : pointers) out.emplace_back(p != nullptr ? p : "");
  H5Dvlen_reclaim(type.id, space.id, H5P_DEFAULT, pointers.data());
  return out;
}

std::string H5File::read_attribute(const std::string& name) const {
  const hid_t attr = FT_CHECK_H5(H5Aopen(id_, name.c_str(), H5P_DEFAULT));
  Closer closer{attr, H5Aclose};
  Closer stored{FT_CHECK_H5(H5Aget_type(attr)), H5Tclose};
  Closer space{FT_CHECK_H5(H5Aget_space(attr)), H5Sclose};
  if (H5Tget_class(stored.id) != H5T_STRING) {
    throw DataError(fmt::format("{}: attribute '{}' is not a string", path_, name));
  }
  const hssize_t count = H5Sget_simple_extent_npoints(space.id);
  if (count != 1) {
    throw DataError(fmt::format("{}: attribute '{}' holds {} values, expected one string", path_,
                                name, static_cast<long long>(count)));
  }
  if (H5Tis_variable_str(stored.id) > 0) {
    // A variable-length string (what h5py writes for a Python str): HDF5 allocates it.
    Closer memory{FT_CHECK_H5(H5Tcopy(H5T_C_S1)), H5Tclose};
    FT_CHECK_H5(H5Tset_size(memory.id, H5T_VARIABLE));
    FT_CHECK_H5(H5Tset_cset(memory.id, H5Tget_cset(stored.id)));  // ASCII or UTF-8, as stored
    char* text = nullptr;
    FT_CHECK_H5(H5Aread(attr, memory.id, &text));
    std::string value = text != nullptr ? std::string(text) : std::string();
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(stored.id);
  if (size > (1u << 20)) {
    throw DataError(fmt::format("{}: attribute '{}' is a {}-byte string, expected a short one",
                                path_, name, size));
  }
  std::string value(size, '\0');
  FT_CHECK_H5(H5Aread(attr, stored.id, value.data()));
  return value.substr(0, value.find('\0'));
}

}  // namespace facetrain::data
