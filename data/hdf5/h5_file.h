#pragma once

#include <ATen/core/Tensor.h>
#include <hdf5.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace facetrain::data {

namespace detail {
// Throws DataError with the HDF5 call, its location, `file` and HDF5's own innermost message.
[[noreturn]] void throw_h5_error(const char* call, const char* where, int line,
                                 const std::string& file);
}  // namespace detail

// Checks an HDF5 call's result (negative means failure); `path_` names the file in the error.
#define FT_CHECK_H5(call)                                                          \
  ([&]() {                                                                         \
    const auto ft_h5_rc_ = (call);                                                 \
    if (ft_h5_rc_ < 0)                                                             \
      ::facetrain::data::detail::throw_h5_error(#call, __FILE__, __LINE__, path_); \
    return ft_h5_rc_;                                                              \
  }())

// An open HDF5 file (C API), closed on destruction. Datasets are whole tensors (uint8, int32,
// int64, float32, float64) or lists of variable-length strings; attributes are strings.
// HDF5's own error printing is turned off: failures become DataError naming the file.
class H5File {
 public:
  static H5File create(const std::filesystem::path& path);  // truncates
  static H5File open(const std::filesystem::path& path);    // read-only
  ~H5File();
  H5File(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  H5File& operator=(H5File&&) = delete;

  // Closes the file now, flushing it: a failure (a full disk) is a DataError naming the file,
  // where the destructor could only ignore it. Writers call it before using the file.
  void close();

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;

  void write(const std::string& name, const at::Tensor& tensor);
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  void write_attribute(const std::string& name, const std::string& value);

  // A numeric dataset: integers, floats, or an enumeration over integers (h5py's numpy bool).
  at::Tensor read(const std::string& name) const;
  // Elements [offset, offset + count) of a 1-D uint8 dataset, into `out` (count bytes): one
  // contiguous read.
  void read_bytes(const std::string& name, std::int64_t offset, std::int64_t count,
                  std::uint8_t* out) const;
  // The file offset of a dataset stored contiguously (HDF5's default layout), so its bytes can
  // be read straight from the file; -1 for chunked or compact datasets.
  std::int64_t contiguous_offset(const std::string& name) const;
  // A dataset's declared dimensions (nothing read), for checks before a read allocates.
  std::vector<std::int64_t> shape(const std::string& name) const;
  // The number of elements of a 1-D dataset.
  std::int64_t length(const std::string& name) const;
  // A dataset of strings, and a one-string attribute: fixed or variable length, ASCII or UTF-8
  // (each as h5py writes it).
  std::vector<std::string> read_strings(const std::string& name) const;
  std::string read_attribute(const std::string& name) const;

 private:
  H5File(hid_t id, std::string path) : id_(id), path_(std::move(path)) {}
  // The open handle of dataset `name`, kept for repeated read_bytes calls (one per image).
  hid_t cached_dataset(const std::string& name) const;
  // Opens dataset `name` (the caller closes it), refusing one whose data is not in this file.
  hid_t open_dataset(const std::string& name) const;
  // read() of a dataset of an enumeration type over integers (h5py's numpy bool).
  at::Tensor read_enum(hid_t set, hid_t space, hid_t stored, const std::vector<hsize_t>& dims,
                       const std::string& name) const;

  hid_t id_ = -1;
  std::string path_;
  mutable std::mutex cache_mutex_;
  mutable std::map<std::string, hid_t> open_datasets_;
};

}  // namespace facetrain::data
