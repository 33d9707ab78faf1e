#include "app/export/npy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn.h>

#include <fstream>
#include <regex>

#include "framework/core/error.h"

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
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open the .npy file");
  char magic[10] = {};
  in.read(magic, 10);
  if (!in || std::string(magic, 6) != "\x93NUMPY" || magic[6] != 1) {
    throw Error(file.string() + ": not a version-1 .npy file");
  }
  const std::size_t length = static_cast<unsigned char>(magic[8]) |
                             (static_cast<std::size_t>(static_cast<unsigned char>(magic[9])) << 8);
  std::string header(length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  std::smatch m;
  if (!in || header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos ||
      !std::regex_search(header, m, std::regex(R"('shape': \(([0-9, ]*)\))"))) {
    throw Error(fmt::format("{}: expected a C-order float32 (<f4) .npy array, found header {}",
                            file.string(), header));
  }
  std::vector<std::int64_t> shape;
  const std::string dims = m[1];
  const std::regex number("[0-9]+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    shape.push_back(std::stoll(it->str()));
  }
  at::Tensor t = at::empty(shape, at::kFloat);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (in.gcount() != static_cast<std::streamsize>(t.nbytes())) {
    throw Error(
        fmt::format("{}: truncated: {} of {} data bytes", file.string(), in.gcount(), t.nbytes()));
  }
  return t;
}

}  // namespace facetrain::exporting
