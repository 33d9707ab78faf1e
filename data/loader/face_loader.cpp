#include "data/loader/face_loader.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "data/image/face_images.h"
#include "framework/core/compute_threads.h"
#include "framework/core/error.h"
#include "framework/core/mix.h"

namespace facetrain::data {
namespace {

// One RGB pixel, so a row can be mirrored with std::reverse.
struct Pixel {
  std::uint8_t c[3];
};
static_assert(sizeof(Pixel) == 3);

bool draw_flip(std::uint64_t seed, std::int64_t epoch, std::int64_t position) {
  return (mix64(mix64(seed ^ 0x666c6970ull) ^ mix64(static_cast<std::uint64_t>(epoch)) ^
                static_cast<std::uint64_t>(position)) >>
          63) != 0;
}

at::Tensor epoch_permutation(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix64(seed) ^
                                                      mix64(static_cast<std::uint64_t>(epoch) + 1));
  return at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
}

}  // namespace

FaceLoader::FaceLoader(std::shared_ptr<const ShardedDataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (options_.batch_size < 1 || options_.world_size < 1 || options_.rank < 0 ||
      options_.rank >= options_.world_size || options_.prefetch < 1 || options_.num_workers < 0) {
    throw ConfigError(fmt::format(
        "loader: batch_size {} (>= 1), rank {} of world {}, prefetch {} (>= 1), num_workers {} "
        "(>= 0): out of range",
        options_.batch_size, options_.rank, options_.world_size, options_.prefetch,
        options_.num_workers));
  }
  const std::int64_t g = options_.world_size * options_.batch_size;
  if (dataset_->size() < g) {
    throw ConfigError(fmt::format(
        "{}: {} samples, fewer than one global batch of {} ({} per rank x {} ranks): lower "
        "train.batch_size",
        dataset_->dir().string(), dataset_->size(), g, options_.batch_size, options_.world_size));
  }
}

FaceLoader::~FaceLoader() {
  stop_workers();
}

std::int64_t FaceLoader::steps_per_epoch() const {
  return dataset_->size() / (options_.world_size * options_.batch_size);
}

std::int64_t FaceLoader::dataset_size() const { return dataset_->size(); }

std::int64_t FaceLoader::steps_before(const LoaderState& position) const {
  const std::int64_t left = std::max<std::int64_t>(0, dataset_->size() - position.consumed);
  return steps_per_epoch() - left / (options_.world_size * options_.batch_size);
}

void FaceLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void FaceLoader::start(const LoaderState& state) {
  stop_workers();
  const std::int64_t n = dataset_->size();
  if (state.epoch < 0 || state.consumed < 0 || state.consumed > n) {
    throw DataError(fmt::format("loader: cannot start at epoch {}, sample {} of {}", state.epoch,
                                state.consumed, n));
  }
  state_ = state;
  permutation_ = epoch_permutation(n, options_.seed, state.epoch);
  const std::int64_t g = options_.world_size * options_.batch_size;
  first_consumed_ = state.consumed;
  num_steps_ = (n - state.consumed) / g;  // the last partial global batch is dropped
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = false;
    next_to_claim_ = 0;
    next_to_return_ = 0;
    ready_.clear();
    failed_.clear();
  }
  for (int w = 0; w < options_.num_workers; ++w)
    workers_.push_back(helper_thread([this, w] { worker_loop(w); }));
}

Batch FaceLoader::build(std::int64_t epoch, std::int64_t step, std::int64_t first) const {
  const std::int64_t n = dataset_->size();
  const std::int64_t begin = std::min(n, first + options_.rank * options_.batch_size);
  const std::int64_t end = std::min(n, begin + options_.batch_size);
  const std::int64_t count = end - begin;
  const auto& manifest = dataset_->manifest();
  Batch batch;
  batch.epoch = epoch;
  batch.step = step;
  batch.images = at::empty({count, manifest.image_height, manifest.image_width, 3}, at::kByte);
  batch.labels = at::empty({count}, at::kLong);
  batch.indices = at::empty({count}, at::kLong);
  SampleDecoder decoder{FaceDecoder(manifest.image_height, manifest.image_width, true), {}};
  std::int64_t kept = 0;
  for (std::int64_t position = begin; position < end; ++position) {
    if (decode_sample(epoch, position, batch, kept, decoder)) {
      ++kept;
    } else {
      ++batch.skipped;
    }
  }
  // BatchNorm cannot train on one sample: a batch that skipping left with fewer than two takes
  // the next decodable samples of the epoch's order (seen twice this epoch), deterministically.
  const std::int64_t least = std::min<std::int64_t>(2, count);
  for (std::int64_t tried = 0; kept < least && tried < n; ++tried) {
    if (decode_sample(epoch, (end + tried) % n, batch, kept, decoder)) ++kept;
  }
  if (kept < least) {
    throw DataError(fmt::format("{}: fewer than two of its {} samples could be decoded",
                                dataset_->dir().string(), n));
  }
  if (kept < count) {
    batch.images = batch.images.narrow(0, 0, kept);
    batch.labels = batch.labels.narrow(0, 0, kept);
    batch.indices = batch.indices.narrow(0, 0, kept);
  }
  return batch;
}

bool FaceLoader::decode_sample(std::int64_t epoch, std::int64_t position, Batch& batch,
                               std::int64_t slot, SampleDecoder& decoder) const {
  const std::int64_t index = permutation_.data_ptr<std::int64_t>()[position];
  const auto& manifest = dataset_->manifest();
  const std::int64_t image_bytes = manifest.image_height * manifest.image_width * 3;
  std::uint8_t* pixels = batch.images.data_ptr<std::uint8_t>() + slot * image_bytes;
  try {
    dataset_->read(index, decoder.bytes);
    // The sample is described only when it fails: formatting it for every image costs.
    decoder.faces.decode_into(decoder.bytes, pixels, "");
  } catch (const DataError& e) {
    if (!options_.skip_corrupt) {
      throw DataError(fmt::format("{}{}", dataset_->describe(index), e.what()));
    }
    return false;
  }
  if (options_.flip && draw_flip(options_.seed, epoch, position)) {
    const auto height = static_cast<int>(manifest.image_height);
    const auto width = static_cast<int>(manifest.image_width);
    auto* px = reinterpret_cast<Pixel*>(pixels);
    for (int y = 0; y < height; ++y) std::reverse(px + y * width, px + (y + 1) * width);
  }
  batch.labels.data_ptr<std::int64_t>()[slot] = dataset_->labels().data_ptr<std::int32_t>()[index];
  batch.indices.data_ptr<std::int64_t>()[slot] = index;
  return true;
}

void FaceLoader::worker_loop(int) {
  const std::int64_t g = options_.world_size * options_.batch_size;
  for (;;) {
    std::int64_t rel = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || (next_to_claim_ < num_steps_ &&
                             next_to_claim_ < next_to_return_ + options_.prefetch);
      });
      if (stopping_) return;
      rel = next_to_claim_++;
    }
    const std::int64_t first = first_consumed_ + rel * g;
    try {
      Batch b = build(state_.epoch, rel, first);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(rel, std::move(b));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(rel, std::current_exception());
    }
    changed_.notify_all();
  }
}

std::optional<Batch> FaceLoader::next() {
  const std::int64_t g = options_.world_size * options_.batch_size;
  std::int64_t rel = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rel = next_to_return_;
  }
  if (rel >= num_steps_) return std::nullopt;
  Batch batch;
  if (options_.num_workers == 0) {
    batch = build(state_.epoch, rel, first_consumed_ + rel * g);
  } else {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.count(rel) > 0 || failed_.count(rel) > 0; });
    if (const auto f = failed_.find(rel); f != failed_.end()) {
      const std::exception_ptr error = f->second;
      failed_.erase(f);
      std::rethrow_exception(error);
    }
    batch = std::move(ready_.at(rel));
    ready_.erase(rel);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++next_to_return_;
  }
  changed_.notify_all();
  // Steps count from the epoch's start, whatever position this run started at.
  batch.step = steps_before({state_.epoch, first_consumed_}) + rel;
  state_.consumed = first_consumed_ + (rel + 1) * g;
  skipped_total_ += batch.skipped;
  return batch;
}

}  // namespace facetrain::data
