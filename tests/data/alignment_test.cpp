// Five-point alignment: the similarity estimate against its closed form, the warp against a
// known transform of a rendered face, degenerate landmarks, landmarks files and `data align`.
#include "data/image/alignment.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/image/align_folder.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "data/synth/face_renderer.h"
#include "framework/core/error.h"
#include "tests/support/process.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;

FivePoints transformed(const FivePoints& p, const Similarity& s) {
  FivePoints out;
  for (std::size_t i = 0; i < p.size(); ++i) out[i] = s.apply(p[i]);
  return out;
}

// A similarity of scale 1.7, rotation 0.3 rad and a shift: the template into a 240x200 photo.
Similarity photo_transform() {
  Similarity s;
  s.a = 1.7 * std::cos(0.3);
  s.b = 1.7 * std::sin(0.3);
  s.tx = 40;
  s.ty = 15;
  return s;
}

TEST(AlignmentTest, EstimateRecoversAKnownSimilarityExactly) {
  const Similarity truth = photo_transform();
  const Similarity s =
      estimate_similarity(kArcFaceTemplate, transformed(kArcFaceTemplate, truth), "t");
  EXPECT_NEAR(s.a, truth.a, 1e-12);
  EXPECT_NEAR(s.b, truth.b, 1e-12);
  EXPECT_NEAR(s.tx, truth.tx, 1e-10);
  EXPECT_NEAR(s.ty, truth.ty, 1e-10);
  const Similarity round = s.inverse();
  const Point back = round.apply(s.apply({10, -3}));
  EXPECT_NEAR(back.x, 10, 1e-12);
  EXPECT_NEAR(back.y, -3, 1e-12);
}

TEST(AlignmentTest, EstimateIsTheLeastSquaresOptimum) {
  // With noisy targets, no nearby similarity has a smaller squared error (the closed form is the
  // optimum of a quadratic, so every perturbation must increase it).
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 2.0);
  FivePoints to = transformed(kArcFaceTemplate, photo_transform());
  for (auto& p : to) p = {p.x + noise(rng), p.y + noise(rng)};
  const Similarity best = estimate_similarity(kArcFaceTemplate, to, "t");
  const auto error = [&](const Similarity& s) {
    double e = 0;
    for (std::size_t i = 0; i < to.size(); ++i) {
      const Point q = s.apply(kArcFaceTemplate[i]);
      e += (q.x - to[i].x) * (q.x - to[i].x) + (q.y - to[i].y) * (q.y - to[i].y);
    }
    return e;
  };
  const double e0 = error(best);
  for (int k = 0; k < 4; ++k) {
    for (const double d : {-1e-3, 1e-3}) {
      Similarity s = best;
      (k == 0 ? s.a : k == 1 ? s.b : k == 2 ? s.tx : s.ty) += d;
      EXPECT_GT(error(s), e0) << "parameter " << k << " moved by " << d;
    }
  }
}

TEST(AlignmentTest, ARenderedFaceComesBackWithinHalfAPixel) {
  // An aligned 112x112 face, placed into a 240x200 photo by a known similarity; aligning the
  // photo from the transformed template must give the face back.
  const at::Tensor face = render_face(make_identity(7, 1), make_variation(7, 1, 0), 1).contiguous();
  ASSERT_EQ(face.size(0), 112);
  const Similarity into_photo = photo_transform();
  const auto photo = warp_similarity(face.data_ptr<std::uint8_t>(), 112, 112, into_photo, 240);
  const FivePoints landmarks = transformed(kArcFaceTemplate, into_photo);
  const auto aligned = align_face(photo.data(), 240, 240, landmarks, 112, "photo");
  // The transform the alignment used maps the landmarks onto the template within 0.5 px.
  const Similarity used = estimate_similarity(landmarks, kArcFaceTemplate, "photo");
  for (std::size_t i = 0; i < 5; ++i) {
    const Point p = used.apply(landmarks[i]);
    EXPECT_LT(std::hypot(p.x - kArcFaceTemplate[i].x, p.y - kArcFaceTemplate[i].y), 0.5) << i;
  }
  // And the pixels agree away from the border (two bilinear resamplings blur a little).
  const auto* original = face.data_ptr<std::uint8_t>();
  double diff = 0;
  std::int64_t n = 0;
  for (int y = 8; y < 104; ++y) {
    for (int x = 8; x < 104; ++x) {
      for (int c = 0; c < 3; ++c) {
        const std::size_t i = (static_cast<std::size_t>(y) * 112 + x) * 3 + c;
        diff += std::abs(static_cast<double>(aligned[i]) - original[i]);
        ++n;
      }
    }
  }
  EXPECT_LT(diff / static_cast<double>(n), 6.0);
  // The warp's zero border: a face shifted far off the canvas leaves black pixels.
  Similarity off;
  off.tx = 500;
  const auto empty = warp_similarity(face.data_ptr<std::uint8_t>(), 112, 112, off, 32);
  EXPECT_EQ(std::count(empty.begin(), empty.end(), 0), static_cast<long>(empty.size()));
}

TEST(AlignmentTest, DegenerateLandmarksAreErrorsNamingTheSource) {
  FivePoints line;
  for (int i = 0; i < 5; ++i) line[i] = {10.0 + i, 20.0 + 2 * i};
  EXPECT_NE(test::thrown_message<DataError>([&] {
              estimate_similarity(line, kArcFaceTemplate, "a.jpg");
            }).find("a.jpg: the five landmarks are collinear"),
            std::string::npos);
  FivePoints same;
  same.fill({5, 5});
  EXPECT_THROW(estimate_similarity(same, kArcFaceTemplate, "a.jpg"), DataError);
  FivePoints nan = kArcFaceTemplate;
  nan[2].x = std::nan("");
  EXPECT_NE(test::thrown_message<DataError>([&] {
              estimate_similarity(nan, kArcFaceTemplate, "b.jpg");
            }).find("b.jpg: landmark 3"),
            std::string::npos);
}

// A landmark outside the image is warped with the zero border, as insightface's IJB evaluation
// does: the part of the face inside the image keeps its pixels.
TEST(AlignmentTest, LandmarksOutsideTheImageWarpWithAZeroBorder) {
  std::vector<std::uint8_t> image(50 * 40 * 3, 200);
  const auto face = align_face(image.data(), 40, 50, kArcFaceTemplate, 112, "c.jpg");
  ASSERT_EQ(face.size(), 112u * 112 * 3);
  EXPECT_EQ(face[(10 * 112 + 10) * 3], 200) << "inside the image";
  EXPECT_EQ(face[(100 * 112 + 100) * 3], 0) << "outside: the zero border";
}

class AlignFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("facetrain_align_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "photos" / "p1");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(AlignFolderTest, LandmarksFilesAndTheAlignCommand) {
  const at::Tensor face = render_face(make_identity(9, 2), make_variation(9, 2, 1), 2).contiguous();
  const Similarity into_photo = photo_transform();
  const auto photo = warp_similarity(face.data_ptr<std::uint8_t>(), 112, 112, into_photo, 240);
  JpegCodec codec;
  const auto jpeg = codec.encode(
      at::from_blob(const_cast<std::uint8_t*>(photo.data()), {240, 240, 3}, at::kByte), 95);
  std::ofstream(dir_ / "photos" / "p1" / "a.jpg", std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
  const FivePoints lm = transformed(kArcFaceTemplate, into_photo);
  {
    std::ofstream f(dir_ / "lm.txt");
    f.precision(10);
    f << "\xEF\xBB\xBF# insightface style, after the byte-order mark a Windows editor writes\n";
    f << "p1/a.jpg";
    for (const auto& p : lm) f << " " << p.x << " " << p.y;
    f << " 0.98\n\n";
    f << "p1/a.jpg";  // CSV, no score
    for (const auto& p : lm) f << "," << p.x << "," << p.y;
    f << "\n";
  }
  const auto entries = read_landmarks((dir_ / "lm.txt").string());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].line, 2);
  EXPECT_DOUBLE_EQ(entries[0].score, 0.98);
  EXPECT_EQ(entries[1].score, 1.0);
  EXPECT_NEAR(entries[1].points[4].y, lm[4].y, 1e-4);

  const auto r = test::run(test::env("FACETRAIN_BIN") + " data align --input " +
                           (dir_ / "photos").string() + " --landmarks " +
                           (dir_ / "lm.txt").string() + " --out " + (dir_ / "aligned").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("aligned 2 faces to 112x112"), std::string::npos) << r.out;
  const at::Tensor out = codec.decode(read_file_bytes(dir_ / "aligned" / "p1" / "a.jpg"), "out");
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{112, 112, 3}));
  const double mad = (out.to(at::kFloat) - face.to(at::kFloat))
                         .abs()
                         .slice(0, 8, 104)
                         .slice(1, 8, 104)
                         .mean()
                         .item<double>();
  EXPECT_LT(mad, 8.0);

  // Packing the folder aligns on the way in.
  const std::string pack = test::env("FACETRAIN_BIN") + " data pack --from folder --input " +
                           (dir_ / "photos").string() + " --landmarks " +
                           (dir_ / "lm.txt").string() + " --out ";
  const auto packed = test::run(pack + (dir_ / "shards").string());
  ASSERT_EQ(packed.code, 0) << packed.out;
  const ShardedDataset dataset(dir_ / "shards");
  ASSERT_EQ(dataset.size(), 1);
  const at::Tensor stored = codec.decode(dataset.read(0), "stored");
  EXPECT_LT((stored.to(at::kFloat) - out.to(at::kFloat)).abs().mean().item<double>(), 2.0);
  std::ofstream(dir_ / "photos" / "p1" / "b.jpg", std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
  const auto missing = test::run(pack + (dir_ / "shards2").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("b.jpg: no landmarks for it in"), std::string::npos) << missing.out;
  fs::remove(dir_ / "photos" / "p1" / "b.jpg");

  // Bad lines name the file and the line; a path leaving the folder is refused.
  std::ofstream(dir_ / "bad.txt") << "p1/a.jpg 1 2 3\n";
  const auto bad =
      test::run(test::env("FACETRAIN_BIN") + " data align --input " + (dir_ / "photos").string() +
                " --landmarks " + (dir_ / "bad.txt").string() + " --out " + (dir_ / "x").string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("bad.txt:1: 4 fields"), std::string::npos) << bad.out;
  std::ofstream(dir_ / "nan.txt") << "p1/a.jpg 1 2 3 4 5 6 7 8 9 nan\n";
  EXPECT_NE(test::thrown_message<DataError>([&] {
              read_landmarks((dir_ / "nan.txt").string());
            }).find("nan.txt:1: field 11 is 'nan'"),
            std::string::npos);
  std::ofstream(dir_ / "escape.txt") << "../lm.txt 1 2 3 4 5 6 7 8 9 10\n";
  EXPECT_NE(test::thrown_message<DataError>([&] {
              align_folder(dir_ / "photos", dir_ / "escape.txt", dir_ / "y");
            }).find("must be relative"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

}  // namespace
}  // namespace facetrain::data
