#include "framework/core/input_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace facetrain {
namespace {

// What a non-regular file is, in the words an error message uses.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile InputFile::open(const std::filesystem::path& path) {
  InputFile f(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      f.problem_ = "no such file";
    } else if (err == ENXIO) {
      f.problem_ = "a socket or device without a reader, expected a regular file";
    } else if (err == ELOOP) {
      f.problem_ = "a loop of symbolic links";
    } else if (err == ENAMETOOLONG) {
      f.problem_ = "a name longer than the file system allows";
    } else {
      throw IoError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(err)));
    }
    return f;
  }
  f.fd_ = fd;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw IoError(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    f.problem_ = fmt::format("{}, expected a regular file", kind_of(st.st_mode));
    return f;
  }
  // Reads block again, as for any regular file.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  f.size_ = static_cast<std::int64_t>(st.st_size);
  return f;
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      size_(other.size_),
      problem_(std::move(other.problem_)) {}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    problem_ = std::move(other.problem_);
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string InputFile::too_large(std::int64_t max_bytes, std::string_view what) const {
  return fmt::format("{}: {} bytes, more than the {} bytes facetrain reads as {}", path_.string(),
                     size_, max_bytes, what);
}

std::size_t InputFile::read_at(std::int64_t offset, char* out, std::size_t n) const {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset) + done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      throw IoError(fmt::format("{}: read failed at byte {}: {}", path_.string(),
                                offset + static_cast<std::int64_t>(done), std::strerror(errno)));
    }
    if (got == 0) break;  // the end of the file
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::string InputFile::read_all_unchecked() const {
  std::string bytes(static_cast<std::size_t>(size_), '\0');
  // A file that shrank since it was opened: what is there is what is read.
  bytes.resize(read_at(0, bytes.data(), bytes.size()));
  return bytes;
}

}  // namespace facetrain
