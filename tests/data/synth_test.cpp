// Synthetic faces: determinism, a sound dataset, a verification set over held-out identities,
// and identity that can be told from the pixels alone.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "data/synth/synthetic_faces.h"
#include "data/verification/verification_set.h"
#include "framework/core/error.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;

// A 28×28 grey thumbnail, mean-centred and unit-length: a crude pixel descriptor.
at::Tensor descriptor(JpegCodec& codec, const std::vector<std::uint8_t>& jpeg) {
  const at::Tensor img = codec.decode(jpeg, "synth").to(at::kFloat).mean(2);
  const at::Tensor small = at::avg_pool2d(img.unsqueeze(0).unsqueeze(0), {4, 4}).flatten();
  const at::Tensor centred = small - small.mean();
  return centred / centred.norm();
}

class SynthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("facetrain_synth_" + std::to_string(::getpid()));
    SynthOptions o;
    o.identities = 20;
    o.per_identity = 10;
    o.seed = 7;
    o.shard_size = 64;
    o.pairs = 40;
    o.heldout_identities = 8;
    synthesize_faces(root_ / "train", root_ / "pairs.h5", o);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static fs::path root_;
};
fs::path SynthTest::root_;

TEST_F(SynthTest, DeterministicForASeed) {
  EXPECT_EQ(synthetic_face_jpeg(7, 3, 4), synthetic_face_jpeg(7, 3, 4));
  EXPECT_NE(synthetic_face_jpeg(7, 3, 4), synthetic_face_jpeg(8, 3, 4));
  EXPECT_NE(synthetic_face_jpeg(7, 3, 4), synthetic_face_jpeg(7, 3, 5));
  const ShardedDataset ds(root_ / "train");
  EXPECT_EQ(ds.read(34), synthetic_face_jpeg(7, 3, 4));
}

TEST_F(SynthTest, DatasetIsSoundAndLabelled) {
  EXPECT_TRUE(verify_dataset(root_ / "train").empty());
  const ShardedDataset ds(root_ / "train");
  EXPECT_EQ(ds.size(), 200);
  EXPECT_EQ(ds.num_classes(), 20);
  EXPECT_TRUE(ds.labels().to(at::kLong).equal(at::arange(200, at::kLong).div(10, "floor")));
}

TEST_F(SynthTest, VerificationSetOverHeldOutIdentities) {
  const VerificationSet pairs(root_ / "pairs.h5");
  ASSERT_EQ(pairs.num_pairs(), 40);
  JpegCodec codec;
  double same = 0, different = 0;
  for (std::int64_t p = 0; p < 40; ++p) {
    EXPECT_EQ(pairs.issame()[static_cast<std::size_t>(p)], p % 2 == 0 ? 1 : 0);
    const auto a = pairs.image(2 * p);
    const auto b = pairs.image(2 * p + 1);
    EXPECT_NE(a, b);
    const double sim = (descriptor(codec, a) * descriptor(codec, b)).sum().item<double>();
    (p % 2 == 0 ? same : different) += sim / 20;
  }
  // Even raw pixels tell held-out identities apart on average.
  EXPECT_GT(same, different + 0.1) << "same " << same << " different " << different;
  EXPECT_THROW(pairs.image(80), DataError);
}

TEST_F(SynthTest, IdentityCanBeLearnedFromPixels) {
  // Nearest class mean over pixel thumbnails: 5 images per identity to fit, 5 to test.
  const ShardedDataset ds(root_ / "train");
  JpegCodec codec;
  std::vector<at::Tensor> means;
  for (int c = 0; c < 20; ++c) {
    at::Tensor sum = at::zeros({784});
    for (int k = 0; k < 5; ++k) sum += descriptor(codec, ds.read(c * 10 + k));
    means.push_back(sum / sum.norm());
  }
  const at::Tensor centres = at::stack(means);
  int correct = 0;
  for (int c = 0; c < 20; ++c) {
    for (int k = 5; k < 10; ++k) {
      const at::Tensor d = descriptor(codec, ds.read(c * 10 + k));
      correct += centres.matmul(d).argmax().item<std::int64_t>() == c ? 1 : 0;
    }
  }
  // Chance is 5 of 100.
  EXPECT_GT(correct, 50) << correct << " of 100";
}

TEST_F(SynthTest, BadOptionsAndForeignFiles) {
  SynthOptions o;
  o.identities = 0;
  EXPECT_THROW(synthesize_faces(root_ / "x", root_ / "x.h5", o), ConfigError);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              VerificationSet v(root_ / "train" / "shard-00000.h5");
            }).find("format attribute \"facetrain-shards\", expected \"facetrain-verification\""),
            std::string::npos);
  VerificationPairs uneven;
  uneven.images.resize(3);
  uneven.issame.resize(1);
  EXPECT_THROW(write_verification_set(root_ / "uneven.h5", uneven), DataError);
  EXPECT_FALSE(fs::exists(root_ / "uneven.h5"));
}

}  // namespace
}  // namespace facetrain::data
