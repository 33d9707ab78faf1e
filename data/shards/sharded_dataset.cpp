#include "data/shards/sharded_dataset.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <functional>

#include "data/image/jpeg_codec.h"
#include "data/shards/class_names.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/checked.h"
#include "framework/core/checksum.h"
#include "framework/core/input_file.h"

namespace facetrain::data {
namespace {

std::string shard_name(std::size_t i) {
  return fmt::format("shard-{:05d}.h5", i);
}

}  // namespace

ShardedDatasetWriter::ShardedDatasetWriter(const std::filesystem::path& dir,
                                           std::int64_t image_height, std::int64_t image_width,
                                           std::int64_t shard_size)
    : dir_(dir), shard_size_(shard_size) {
  if (shard_size < 1) throw DataError(fmt::format("{}: shard size must be >= 1", dir.string()));
  if (std::filesystem::exists(dir / "manifest.json")) {
    throw DataError(
        fmt::format("{}: already holds a dataset (manifest.json); remove it or "
                    "choose another output folder",
                    dir.string()));
  }
  created_dir_ = std::filesystem::create_directories(dir);
  manifest_.image_height = image_height;
  manifest_.image_width = image_width;
}

ShardedDatasetWriter::~ShardedDatasetWriter() {
  if (finished_) return;
  std::error_code ignored;
  for (const auto& shard : manifest_.shards) std::filesystem::remove(dir_ / shard.file, ignored);
  if (created_dir_ && std::filesystem::is_empty(dir_, ignored)) {
    std::filesystem::remove(dir_, ignored);
  }
}

void ShardedDatasetWriter::add(std::int32_t label, const std::uint8_t* jpeg, std::size_t length) {
  if (label < 0) {
    throw DataError(
        fmt::format("{}: sample {}: negative label {}", dir_.string(), samples_written(), label));
  }
  bytes_.insert(bytes_.end(), jpeg, jpeg + length);
  offsets_.push_back(static_cast<std::int64_t>(bytes_.size()));
  labels_.push_back(label);
  if (static_cast<std::int64_t>(labels_.size()) == shard_size_) flush();
}

void ShardedDatasetWriter::flush() {
  if (labels_.empty()) return;
  const std::string name = shard_name(manifest_.shards.size());
  const auto final_path = dir_ / name;
  write_atomically(final_path, [&](const std::filesystem::path& tmp) {
    auto file = H5File::create(tmp);
    file.write("jpeg",
               at::from_blob(bytes_.data(), {static_cast<std::int64_t>(bytes_.size())}, at::kByte));
    file.write("offsets", at::from_blob(offsets_.data(),
                                        {static_cast<std::int64_t>(offsets_.size())}, at::kLong));
    file.write("labels", at::from_blob(labels_.data(), {static_cast<std::int64_t>(labels_.size())},
                                       at::kInt));
    file.write_attribute("format", Manifest::kFormat);
    file.close();
  });
  ShardInfo info;
  info.file = name;
  info.num_samples = static_cast<std::int64_t>(labels_.size());
  info.label_min = *std::min_element(labels_.begin(), labels_.end());
  info.label_max = *std::max_element(labels_.begin(), labels_.end());
  info.bytes = static_cast<std::int64_t>(std::filesystem::file_size(final_path));
  info.crc32 = file_crc32<DataError>(final_path);
  manifest_.shards.push_back(info);
  written_ += info.num_samples;
  bytes_.clear();
  offsets_.assign(1, 0);
  labels_.clear();
}

Manifest ShardedDatasetWriter::finish(std::int64_t num_classes) {
  flush();
  for (std::size_t i = 0; i < manifest_.shards.size(); ++i) {
    if (manifest_.shards[i].label_max >= num_classes) {
      throw DataError(fmt::format("{}: {}: label {} out of range [0, {})", dir_.string(),
                                  manifest_.shards[i].file, manifest_.shards[i].label_max,
                                  num_classes));
    }
  }
  if (written_ == 0) throw DataError(fmt::format("{}: no samples were written", dir_.string()));
  manifest_.num_classes = num_classes;
  manifest_.num_samples = written_;
  manifest_.write(dir_);
  finished_ = true;
  return manifest_;
}

namespace {

// Why a shard's /offsets and /labels do not have the shapes its manifest entry implies
// ([num_samples + 1] and [num_samples]), or empty. Shapes first: nothing is read yet, so a
// corrupt shape cannot drive an allocation.
std::string shard_shape_problem(const H5File& file, const ShardInfo& shard) {
  for (const auto& [name, length] :
       {std::pair<const char*, std::int64_t>{
            "offsets", checked::add<DataError>(shard.num_samples, std::int64_t{1}, shard.file)},
        {"labels", shard.num_samples}}) {
    const auto dims = file.shape(name);
    if (dims.size() != 1 || dims[0] != length) {
      return fmt::format("/{} has shape [{}], expected [{}] (num_samples = {} in the manifest)", name,
                         fmt::join(dims, ", "), length, shard.num_samples);
    }
  }
  return {};
}

// Labels as int32, each in [0, num_classes) (num_classes 0: [0, 2^31)); otherwise a DataError
// naming the shard and the first sample out of range, before anything is narrowed.
at::Tensor checked_labels(const at::Tensor& raw, std::int64_t num_classes,
                          const std::filesystem::path& path) {
  if (!at::isIntegralType(raw.scalar_type(), /*includeBool=*/false)) {
    throw DataError(fmt::format("{}: /labels is {}, expected integers", path.string(),
                                c10::toString(raw.scalar_type())));
  }
  const at::Tensor labels = raw.to(at::kLong).contiguous();
  const std::int64_t limit = num_classes > 0 ? num_classes : (std::int64_t{1} << 31);
  const auto* l = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    if (l[i] < 0 || l[i] >= limit) {
      throw DataError(
          fmt::format("{}: sample {}: label {} outside [0, {})", path.string(), i, l[i], limit));
    }
  }
  return labels.to(at::kInt);
}

}  // namespace

ShardedDataset::ShardedDataset(const std::filesystem::path& dir)
    : dir_(dir), manifest_(Manifest::read(dir)) {
  std::vector<at::Tensor> labels;
  std::int64_t start = 0;
  for (const auto& shard : manifest_.shards) {
    const auto path = dir / shard.file;
    // Opened once: checked here, kept below for plain reads of the images.
    auto plain = std::make_unique<InputFile>(InputFile::open(path));
    if (!plain->problem().empty()) {
      throw DataError(
          fmt::format("{}: {} (listed in manifest.json)", path.string(), plain->problem()));
    }
    auto file = std::make_unique<H5File>(H5File::open(path));
    if (const std::string problem = shard_shape_problem(*file, shard); !problem.empty()) {
      throw DataError(fmt::format("{}: {}", path.string(), problem));
    }
    at::Tensor offsets = file->read("offsets").to(at::kLong);
    at::Tensor shard_labels = checked_labels(file->read("labels"), manifest_.num_classes, path);
    starts_.push_back(start);
    start += shard.num_samples;
    offsets_.push_back(offsets);
    labels.push_back(shard_labels);
    jpeg_offsets_.push_back(file->contiguous_offset("jpeg"));
    plain_.push_back(jpeg_offsets_.back() >= 0 ? std::move(plain) : nullptr);
    files_.push_back(std::move(file));
  }
  starts_.push_back(start);
  labels_ = labels.empty() ? at::empty({0}, at::kInt) : at::cat(labels);
}

ShardedDataset::~ShardedDataset() = default;

std::pair<std::size_t, std::int64_t> ShardedDataset::locate(std::int64_t index) const {
  if (index < 0 || index >= size()) {
    throw DataError(
        fmt::format("{}: sample {} out of range [0, {})", dir_.string(), index, size()));
  }
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), index);
  const auto shard = static_cast<std::size_t>(it - starts_.begin() - 1);
  return {shard, index - starts_[shard]};
}

std::string ShardedDataset::describe(std::int64_t index) const {
  const auto [shard, local] = locate(index);
  return fmt::format("{}: sample {}", manifest_.shards[shard].file, local);
}

void ShardedDataset::read(std::int64_t index, std::vector<std::uint8_t>& out) const {
  const auto [shard, local] = locate(index);
  const auto* offsets = offsets_[shard].data_ptr<std::int64_t>();
  const std::int64_t begin = offsets[local];
  const std::int64_t end = offsets[local + 1];
  if (begin < 0 || end < begin) {
    throw DataError(fmt::format("{}: bad offsets [{}, {})", describe(index), begin, end));
  }
  out.resize(static_cast<std::size_t>(end - begin));
  if (!plain_[shard]) {
    files_[shard]->read_bytes("jpeg", begin, end - begin, out.data());
    return;
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(plain_[shard]->fd(), out.data() + done, out.size() - done,
                static_cast<off_t>(jpeg_offsets_[shard] + begin) + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw DataError(fmt::format("{}: reading {} bytes at /jpeg[{}] failed: {}", describe(index),
                                  out.size(), begin,
                                  n == 0 ? "end of file" : std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
}

std::vector<std::uint8_t> ShardedDataset::read(std::int64_t index) const {
  std::vector<std::uint8_t> out;
  read(index, out);
  return out;
}

std::vector<std::string> verify_dataset(
    const std::filesystem::path& dir,
    const std::function<void(std::int64_t, std::int64_t)>& progress) {
  std::vector<std::string> problems;
  Manifest manifest;
  try {
    manifest = Manifest::read(dir);
  } catch (const DataError& e) {
    return {e.what()};
  }
  if (const auto names = dir / "classes.tsv"; std::filesystem::exists(names)) {
    try {
      const auto count = static_cast<std::int64_t>(read_class_names(names).size());
      if (count != manifest.num_classes) {
        problems.push_back(fmt::format("classes.tsv: {} names, the manifest says {} classes", count,
                                       manifest.num_classes));
      }
    } catch (const DataError& e) {
      problems.push_back(e.what());
    }
  }
  JpegCodec codec;
  at::Tensor image;
  std::vector<std::uint8_t> bytes;
  std::int64_t checked = 0;
  for (const auto& shard : manifest.shards) {
    const auto path = dir / shard.file;
    const std::string name = shard.file;
    const InputFile opened = InputFile::open(path);
    if (!opened.problem().empty()) {
      problems.push_back(fmt::format("{}: {} (listed in manifest.json)", name, opened.problem()));
      checked += shard.num_samples;
      continue;
    }
    const std::int64_t bytes_on_disk = opened.size();
    if (bytes_on_disk != shard.bytes) {
      problems.push_back(
          fmt::format("{}: {} bytes on disk, the manifest says {} (truncated or "
                      "replaced)",
                      name, bytes_on_disk, shard.bytes));
    } else if (const auto crc = crc32_of(opened); crc != shard.crc32) {
      problems.push_back(
          fmt::format("{}: checksum {:08x}, the manifest says {:08x}", name, crc, shard.crc32));
    }
    try {
      const auto file = H5File::open(path);
      if (const std::string problem = shard_shape_problem(file, shard); !problem.empty()) {
        problems.push_back(fmt::format("{}: {}", name, problem));
        continue;
      }
      const at::Tensor offsets = file.read("offsets").to(at::kLong);
      const at::Tensor labels = file.read("labels").to(at::kLong);
      const std::int64_t jpeg_bytes = file.length("jpeg");
      const auto* o = offsets.data_ptr<std::int64_t>();
      const auto* l = labels.data_ptr<std::int64_t>();
      if (o[0] != 0)
        problems.push_back(fmt::format("{}: offsets[0] is {}, expected 0", name, o[0]));
      if (o[shard.num_samples] != jpeg_bytes) {
        problems.push_back(fmt::format("{}: the last offset is {}, /jpeg holds {} bytes", name,
                                       o[shard.num_samples], jpeg_bytes));
      }
      for (std::int64_t i = 0; i < shard.num_samples; ++i) {
        const std::string where = fmt::format("{}: sample {}", name, i);
        if (l[i] < 0 || l[i] >= manifest.num_classes) {
          problems.push_back(
              fmt::format("{}: label {} out of range [0, {})", where, l[i], manifest.num_classes));
        } else if (l[i] < shard.label_min || l[i] > shard.label_max) {
          problems.push_back(
              fmt::format("{}: label {} outside the shard's range [{}, {}] in the "
                          "manifest",
                          where, l[i], shard.label_min, shard.label_max));
        }
        if (o[i + 1] < o[i] || o[i] < 0 || o[i + 1] > jpeg_bytes) {
          problems.push_back(fmt::format("{}: offsets [{}, {}) are not inside /jpeg ({} bytes)",
                                         where, o[i], o[i + 1], jpeg_bytes));
          continue;
        }
        bytes.resize(static_cast<std::size_t>(o[i + 1] - o[i]));
        file.read_bytes("jpeg", o[i], o[i + 1] - o[i], bytes.data());
        try {
          codec.decode(bytes.data(), bytes.size(), image, where);
          if (image.size(0) != manifest.image_height || image.size(1) != manifest.image_width) {
            problems.push_back(fmt::format("{}: image is {}x{}, the manifest says {}x{}", where,
                                           image.size(1), image.size(0), manifest.image_width,
                                           manifest.image_height));
          }
        } catch (const DataError& e) {
          problems.push_back(e.what());
        }
        if (progress && (++checked % 1024 == 0)) progress(checked, manifest.num_samples);
      }
    } catch (const DataError& e) {
      problems.push_back(e.what());
    }
  }
  if (progress) progress(manifest.num_samples, manifest.num_samples);
  return problems;
}

}  // namespace facetrain::data
