// The training loader: disjoint full rank batches whose union is the epoch's permutation less its
// last partial global batch, determinism, exact and elastic resume, flips, worker errors
// re-raised on the caller, the skip policy, and datasets too small for a batch.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/loader/face_loader.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/error.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSamples = 23;

// Sample i is a flat colour with a dark left half-column stripe, so flips are visible.
at::Tensor face_of(std::int64_t i) {
  at::Tensor img = at::empty({112, 112, 3}, at::kByte);
  img.select(2, 0).fill_((i * 37) % 200 + 30);
  img.select(2, 1).fill_((i * 91) % 200 + 30);
  img.select(2, 2).fill_((i * 53) % 200 + 30);
  img.narrow(1, 0, 16).fill_(0);
  return img;
}

fs::path make_dataset(const std::string& name, std::int64_t broken_index = -1) {
  const fs::path dir =
      fs::temp_directory_path() / ("facetrain_loader_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ShardedDatasetWriter writer(dir, 112, 112, 7);
  JpegCodec codec;
  for (std::int64_t i = 0; i < kSamples; ++i) {
    auto bytes = codec.encode(face_of(i), 95);
    if (i == broken_index) bytes.resize(bytes.size() / 2);
    writer.add(static_cast<std::int32_t>(i % 5), bytes);
  }
  writer.finish(5);
  return dir;
}

std::vector<Batch> epoch_of(FaceLoader& loader, const LoaderState& from) {
  loader.start(from);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

at::Tensor all_indices(const std::vector<Batch>& batches) {
  std::vector<at::Tensor> parts;
  for (const auto& b : batches) parts.push_back(b.indices);
  return parts.empty() ? at::empty({0}, at::kLong) : at::cat(parts);
}

class FaceLoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dataset_ = std::make_shared<ShardedDataset>(make_dataset("clean"));
  }
  static LoaderOptions options(int rank, int world, int workers = 2) {
    LoaderOptions o;
    o.batch_size = 3;
    o.rank = rank;
    o.world_size = world;
    o.seed = 11;
    o.num_workers = workers;
    o.prefetch = 2;
    return o;
  }
  static std::shared_ptr<ShardedDataset> dataset_;
};
std::shared_ptr<ShardedDataset> FaceLoaderTest::dataset_;

TEST_F(FaceLoaderTest, RanksShareTheEpochInFullBatchesAndDropTheRest) {
  for (int world : {1, 2, 3, 4}) {
    SCOPED_TRACE(fmt::format("world {}", world));
    const std::int64_t steps = kSamples / (3 * world);  // 7, 3, 2, 1
    std::vector<at::Tensor> epochs;
    for (std::int64_t epoch : {0, 1}) {
      std::vector<at::Tensor> parts;
      for (int rank = 0; rank < world; ++rank) {
        FaceLoader loader(dataset_, options(rank, world));
        EXPECT_EQ(loader.steps_per_epoch(), steps);
        const auto batches = epoch_of(loader, {epoch, 0});
        EXPECT_EQ(static_cast<std::int64_t>(batches.size()), steps);
        for (const auto& b : batches) {
          EXPECT_EQ(b.images.size(0), 3);
          EXPECT_TRUE(b.labels.equal(b.indices % 5));
        }
        EXPECT_EQ(loader.state(), (LoaderState{epoch, steps * 3 * world}));
        parts.push_back(all_indices(batches));
      }
      const at::Tensor all = at::cat(parts);
      // Distinct samples, as many as the full global batches hold.
      EXPECT_EQ(std::get<0>(at::_unique(all)).size(0), steps * 3 * world);
      EXPECT_EQ(all.size(0), steps * 3 * world);
      epochs.push_back(std::get<0>(all.sort()));
    }
    // The dropped tail is another set of samples in another epoch.
    if (kSamples % (3 * world) != 0) {
      EXPECT_FALSE(epochs[0].equal(epochs[1]));
    }
  }
}

TEST_F(FaceLoaderTest, ADatasetSmallerThanAGlobalBatchIsAConfigError) {
  LoaderOptions o = options(0, 4);
  o.batch_size = 6;  // 24 > 23 samples
  const std::string message = test::thrown_message<ConfigError>([&] { FaceLoader(dataset_, o); });
  EXPECT_NE(message.find("23 samples, fewer than one global batch of 24 (6 per rank x 4 ranks)"),
            std::string::npos)
      << message;
}

TEST_F(FaceLoaderTest, ImagesAreTheSamplesAndFlipsAreDeterministic) {
  LoaderOptions o = options(0, 1);
  FaceLoader flipping(dataset_, o);
  o.flip = false;
  FaceLoader plain(dataset_, o);
  const auto a = epoch_of(flipping, {0, 0});
  const auto b = epoch_of(plain, {0, 0});
  ASSERT_EQ(a.size(), b.size());
  int flipped = 0;
  for (std::size_t s = 0; s < a.size(); ++s) {
    ASSERT_TRUE(a[s].indices.equal(b[s].indices));
    for (std::int64_t k = 0; k < b[s].images.size(0); ++k) {
      const at::Tensor want = face_of(b[s].indices[k].item<std::int64_t>()).to(at::kInt);
      // JPEG rings at the stripe's edge; on average the pixels are the sample's.
      EXPECT_LE((b[s].images[k].to(at::kInt) - want).abs().to(at::kDouble).mean().item<double>(),
                3.0);
      if (!a[s].images[k].equal(b[s].images[k])) {
        EXPECT_TRUE(a[s].images[k].equal(b[s].images[k].flip({1})));
        ++flipped;
      }
    }
  }
  EXPECT_GT(flipped, kSamples / 5);
  EXPECT_LT(flipped, kSamples * 4 / 5);
  // The same seed and epoch give the same batches, with any number of workers.
  FaceLoader again(dataset_, options(0, 1, 0));
  const auto c = epoch_of(again, {0, 0});
  for (std::size_t s = 0; s < a.size(); ++s) EXPECT_TRUE(c[s].images.equal(a[s].images));
  // Another epoch is another order.
  EXPECT_FALSE(all_indices(epoch_of(again, {1, 0})).equal(all_indices(a)));
}

TEST_F(FaceLoaderTest, ResumeReproducesTheBatchesThatWouldHaveCome) {
  FaceLoader straight(dataset_, options(1, 2));
  const auto expected = epoch_of(straight, {3, 0});
  FaceLoader first(dataset_, options(1, 2));
  first.start({3, 0});
  first.next();
  first.next();
  const LoaderState saved = first.state();
  EXPECT_EQ(saved, (LoaderState{3, 12}));
  FaceLoader resumed(dataset_, options(1, 2));
  const auto rest = epoch_of(resumed, saved);
  ASSERT_EQ(rest.size() + 2, expected.size());
  for (std::size_t s = 0; s < rest.size(); ++s) {
    EXPECT_TRUE(rest[s].indices.equal(expected[s + 2].indices));
    EXPECT_TRUE(rest[s].images.equal(expected[s + 2].images));
    EXPECT_EQ(rest[s].step, expected[s + 2].step);
  }
}

TEST_F(FaceLoaderTest, ElasticResumeNeitherRepeatsNorSkips) {
  // Two steps at world 2 (12 samples), then the rest of the epoch at world 3.
  std::vector<at::Tensor> seen;
  LoaderState state;
  for (int rank = 0; rank < 2; ++rank) {
    FaceLoader loader(dataset_, options(rank, 2));
    loader.start({0, 0});
    seen.push_back(loader.next()->indices);
    seen.push_back(loader.next()->indices);
    state = loader.state();
  }
  for (int rank = 0; rank < 3; ++rank) {
    FaceLoader loader(dataset_, options(rank, 3));
    seen.push_back(all_indices(epoch_of(loader, state)));
  }
  // Where the epoch stands in world 3's steps (two an epoch): one done after 12 samples.
  FaceLoader world3(dataset_, options(0, 3));
  EXPECT_EQ(world3.steps_before(state), 1);
  EXPECT_EQ(world3.steps_before({0, 0}), 0);
  EXPECT_EQ(world3.steps_before({0, 18}), 2);  // an epoch ended at world 2 is ended here too
  // 12 samples at world 2, then one global batch of 9 at world 3 (the last 2 dropped), none
  // twice.
  const at::Tensor all = at::cat(seen);
  EXPECT_EQ(all.size(0), 12 + 9);
  EXPECT_EQ(std::get<0>(at::_unique(all)).size(0), 12 + 9);
}

TEST(FaceLoaderErrors, WorkerErrorsReachTheCallerOrAreSkipped) {
  auto dataset = std::make_shared<ShardedDataset>(make_dataset("broken", 9));
  LoaderOptions o;
  o.batch_size = kSamples;  // one step reads every sample
  o.num_workers = 2;
  o.seed = 5;
  o.flip = false;
  FaceLoader strict(dataset, o);
  strict.start({0, 0});
  const std::string message = test::thrown_message<DataError>([&] {
    while (strict.next()) {
    }
  });
  EXPECT_NE(message.find("shard-00001.h5: sample 2: tjDecompress"), std::string::npos) << message;
  o.skip_corrupt = true;
  FaceLoader lenient(dataset, o);
  const auto batches = epoch_of(lenient, {0, 0});
  EXPECT_EQ(lenient.skipped_total(), 1);
  EXPECT_EQ(all_indices(batches).size(0), kSamples - 1);
  o.batch_size = 0;
  EXPECT_THROW(FaceLoader(dataset, o), ConfigError);
}

TEST(FaceLoaderErrors, ABatchLeftWithOneDecodableSampleIsToppedUp) {
  // Batches of 2 with one corrupt sample: the batch holding it takes the next decodable sample
  // of the epoch's order, so every batch still holds two (BatchNorm needs them).
  auto dataset = std::make_shared<ShardedDataset>(make_dataset("one_left", 4));
  LoaderOptions o;
  o.batch_size = 2;
  o.num_workers = 0;
  o.skip_corrupt = true;
  FaceLoader loader(dataset, o);
  int epochs_with_the_corrupt_one = 0;
  for (std::int64_t epoch = 0; epoch < 4; ++epoch) {
    const std::int64_t skipped_before = loader.skipped_total();
    const auto batches = epoch_of(loader, {epoch, 0});
    ASSERT_EQ(batches.size(), 11u);  // 23 samples, 2 a step
    for (const auto& b : batches) {
      EXPECT_EQ(b.images.size(0), 2);
      EXPECT_FALSE((b.indices == 4).any().item<bool>());
    }
    const at::Tensor all = all_indices(batches);
    if (loader.skipped_total() > skipped_before) {
      ++epochs_with_the_corrupt_one;
      // The 21 others, and a stand-in: one of them again, or the sample the epoch dropped.
      const std::int64_t distinct = std::get<0>(at::_unique(all)).size(0);
      EXPECT_TRUE(distinct == 21 || distinct == 22) << distinct;
    }
  }
  EXPECT_GT(epochs_with_the_corrupt_one, 0);
}

}  // namespace
}  // namespace facetrain::data
