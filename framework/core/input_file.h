#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "framework/core/error.h"

namespace facetrain {

// A file the program was given to read, opened so that what is not a regular file is refused by
// name instead of waited on or misread: open(O_RDONLY | O_NONBLOCK) — a FIFO with no writer does
// not block — then fstat on what was opened. Every reader of a user-named file opens it here.
class InputFile {
 public:
  // Why `path` cannot be read as a file (missing, a folder, a FIFO, a device, a socket), or empty
  // when it is an open regular file. System trouble that says nothing about the file's content
  // (permission, I/O error, too many open files) is an IoError, thrown.
  static InputFile open(const std::filesystem::path& path);

  // open(), throwing E ("PATH: is a FIFO, expected a regular file") when the file is unusable:
  // the caller's domain decides whether that is bad data, a damaged checkpoint or a bad config.
  template <class E>
  static InputFile open_or_throw(const std::filesystem::path& path) {
    InputFile f = open(path);
    if (!f.problem().empty()) throw E(path.string() + ": " + f.problem());
    return f;
  }

  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  const std::string& problem() const { return problem_; }
  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }
  // The size fstat reported when the file was opened.
  std::int64_t size() const { return size_; }

  // The whole file. A file larger than `max_bytes` is refused with E naming both sizes and `what`
  // the file is taken for ("a manifest": a stated maximum for what the caller keeps in memory); a
  // failed read is an IoError.
  template <class E>
  std::string read_all(std::int64_t max_bytes, std::string_view what) const {
    if (size_ > max_bytes) throw E(too_large(max_bytes, what));
    return read_all_unchecked();
  }

  // Up to `n` bytes from `offset` into `out`; fewer only at the end of the file. A failed read is
  // an IoError.
  std::size_t read_at(std::int64_t offset, char* out, std::size_t n) const;

 private:
  explicit InputFile(std::filesystem::path path) : path_(std::move(path)) {}
  std::string too_large(std::int64_t max_bytes, std::string_view what) const;
  std::string read_all_unchecked() const;

  std::filesystem::path path_;
  int fd_ = -1;
  std::int64_t size_ = 0;
  std::string problem_;
};

// Refuses `path` with E unless it is a regular file (for readers that must open it themselves,
// such as HDF5's); the check opens it non-blocking and closes it again.
template <class E>
void require_regular_file(const std::filesystem::path& path) {
  InputFile::open_or_throw<E>(path);
}

}  // namespace facetrain
