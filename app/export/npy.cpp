#include "app/export/npy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn.h>

#include <fstream>
#include <regex>

#include "framework/core/checked.h"
#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain::exporting {

void write_npy(const std::filesystem::path& file, const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  // Python's tuple syntax: "(3,)", "(2, 3)".
  std::string shape =
      t.dim() == 1 ? fmt::format("{},", t.size(0)) : fmt::format("{}", fmt::join(t.sizes(), ", "));
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", shape);
  // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
  const std::size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  std::ofstream out(file, std::ios::binary);
  const auto length = static_cast<std::uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  out.write(len, 2);
  out << header;
  out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (!out.flush()) throw Error(file.string() + ": cannot write the .npy file");
}

at::Tensor read_npy(const std::filesystem::path& file) {
  const InputFile in = InputFile::open_or_throw<Error>(file);
  char magic[10] = {};
  if (in.read_at(0, magic, 10) != 10 || std::string(magic, 6) != "\x93NUMPY" || magic[6] != 1) {
    throw Error(file.string() + ": not a version-1 .npy file");
  }
  const std::size_t length = static_cast<unsigned char>(magic[8]) |
                             (static_cast<std::size_t>(static_cast<unsigned char>(magic[9])) << 8);
  std::string header(length, '\0');
  const bool whole_header = in.read_at(10, header.data(), length) == length;
  std::smatch m;
  if (!whole_header || header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos ||
      !std::regex_search(header, m, std::regex(R"('shape': \(([0-9, ]*)\))"))) {
    throw Error(fmt::format("{}: expected a C-order float32 (<f4) .npy array, found header {}",
                            file.string(), header));
  }
  // The shape, bounded by the bytes the file holds before anything is allocated.
  std::vector<std::int64_t> shape;
  std::int64_t elements = 1;
  const std::string dims = m[1];
  const std::regex number("[0-9]+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    if (it->str().size() > 18) throw Error(fmt::format("{}: dimension {} is too large", file.string(), it->str()));
    shape.push_back(std::stoll(it->str()));
    elements = checked::mul<Error>(elements, shape.back(), file.string() + ": the array's size");
  }
  const std::int64_t data_bytes = in.size() - 10 - static_cast<std::int64_t>(length);
  if (elements > data_bytes / 4) {
    throw Error(fmt::format("{}: truncated: the shape promises {} float32 values, {} data bytes follow",
                            file.string(), elements, data_bytes));
  }
  at::Tensor t = at::empty(shape, at::kFloat);
  const std::size_t got =
      in.read_at(10 + static_cast<std::int64_t>(length), static_cast<char*>(t.data_ptr()), t.nbytes());
  if (got != t.nbytes()) {
    throw Error(fmt::format("{}: truncated: {} of {} data bytes", file.string(), got, t.nbytes()));
  }
  return t;
}

}  // namespace facetrain::exporting
