#include "data/verification/verification_set.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace facetrain::data {

namespace {
constexpr const char* kFormat = "facetrain-verification";
}  // namespace

void write_verification_set(const std::filesystem::path& path, const VerificationPairs& pairs) {
  if (pairs.images.size() != 2 * pairs.issame.size()) {
    throw DataError(fmt::format("{}: {} images for {} pairs (expected twice as many images)",
                                path.string(), pairs.images.size(), pairs.issame.size()));
  }
  std::vector<std::uint8_t> bytes;
  std::vector<std::int64_t> offsets{0};
  for (const auto& img : pairs.images) {
    bytes.insert(bytes.end(), img.begin(), img.end());
    offsets.push_back(static_cast<std::int64_t>(bytes.size()));
  }
  std::vector<std::uint8_t> issame = pairs.issame;
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    auto file = H5File::create(tmp);
    file.write("jpeg",
               at::from_blob(bytes.data(), {static_cast<std::int64_t>(bytes.size())}, at::kByte));
    file.write("offsets", at::from_blob(offsets.data(), {static_cast<std::int64_t>(offsets.size())},
                                        at::kLong));
    file.write("issame",
               at::from_blob(issame.data(), {static_cast<std::int64_t>(issame.size())}, at::kByte));
    file.write_attribute("format", kFormat);
    file.close();
  });
}

VerificationSet::VerificationSet(const std::filesystem::path& path)
    : file_(std::make_unique<H5File>(H5File::open(path))) {
  std::string format;
  try {
    format = file_->read_attribute("format");
  } catch (const DataError&) {
    format = "(none)";
  }
  if (format != kFormat) {
    throw DataError(fmt::format("{}: format attribute \"{}\", expected \"{}\"", path.string(),
                                format, kFormat));
  }
  const at::Tensor offsets = file_->read("offsets").to(at::kLong).contiguous();
  const at::Tensor issame = file_->read("issame").to(at::kByte).contiguous();
  const std::int64_t n = issame.numel();
  const std::int64_t bytes = file_->length("jpeg");
  if (offsets.numel() != 2 * n + 1) {
    throw DataError(fmt::format("{}: {} offsets for {} pairs, expected {}", path.string(),
                                offsets.numel(), n, 2 * n + 1));
  }
  offsets_.assign(offsets.data_ptr<std::int64_t>(),
                  offsets.data_ptr<std::int64_t>() + offsets.numel());
  issame_.assign(issame.data_ptr<std::uint8_t>(), issame.data_ptr<std::uint8_t>() + n);
  for (std::size_t i = 0; i + 1 < offsets_.size(); ++i) {
    if (offsets_[i] < 0 || offsets_[i + 1] < offsets_[i] || offsets_[i + 1] > bytes) {
      throw DataError(fmt::format("{}: image {}: offsets [{}, {}) are not inside /jpeg ({} bytes)",
                                  path.string(), i, offsets_[i], offsets_[i + 1], bytes));
    }
  }
}

std::vector<std::uint8_t> VerificationSet::image(std::int64_t i) const {
  if (i < 0 || i + 1 >= static_cast<std::int64_t>(offsets_.size())) {
    throw DataError(
        fmt::format("{}: image {} out of range [0, {})", file_->path(), i, offsets_.size() - 1));
  }
  std::vector<std::uint8_t> out(static_cast<std::size_t>(offsets_[i + 1] - offsets_[i]));
  file_->read_bytes("jpeg", offsets_[i], offsets_[i + 1] - offsets_[i], out.data());
  return out;
}

}  // namespace facetrain::data
