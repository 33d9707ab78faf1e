// JPEG decoding against Pillow's decoding of the same bytes, the encoder, HDF5 round trips, and
// `facetrain embed` end to end (its output read back by h5py, its embeddings recomputed here).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/nn.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/hdf5/h5_file.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/verification/verification_set.h"
#include "framework/config/config.h"
#include "framework/core/error.h"
#include "models/embedding.h"
#include "models/state_dict.h"
#include "tests/support/process.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;
using test::env;
using test::Exec;
using test::run;
using test::run_python;

class ImageFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("facetrain_images_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const Exec made = run_python("data/python_faces.py " + dir_.string());
    ASSERT_EQ(made.code, 0) << made.out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path face(int i) {
    return dir_ / "faces" / (i < 4 ? "a" : "b") / (std::to_string(i) + ".jpg");
  }
  // A freshly initialised mbf with `embedding_size`, its weights written to `weights`.
  static std::shared_ptr<models::BackboneImpl> mbf_with_weights(std::int64_t embedding_size,
                                                                const fs::path& weights) {
    auto net =
        models::make_backbone("mbf", models::BackboneOptions().embedding_size(embedding_size));
    models::write_state_dict(weights, models::state_dict(*net));
    return net;
  }
  static fs::path dir_;
};
fs::path ImageFixture::dir_;

TEST_F(ImageFixture, DecodingMatchesPillow) {
  JpegCodec codec;
  for (int i = 0; i < 5; ++i) {
    const auto bytes = read_file_bytes(face(i));
    EXPECT_EQ(codec.size(bytes.data(), bytes.size(), "x"), std::make_pair(112, 112));
    const at::Tensor ours = codec.decode(bytes, face(i).string());
    ASSERT_EQ(ours.sizes(), at::IntArrayRef({112, 112, 3}));
    const auto raw = read_file_bytes(dir_ / "raw" / (std::to_string(i) + ".rgb"));
    ASSERT_EQ(raw.size(), 112u * 112 * 3);
    const at::Tensor pillow =
        torch::from_blob(const_cast<std::uint8_t*>(raw.data()), {112, 112, 3}, torch::kByte);
    const auto diff = (ours.to(torch::kInt) - pillow.to(torch::kInt)).abs().max().item<int>();
    EXPECT_LE(diff, 1) << face(i);
  }
}

TEST_F(ImageFixture, PngDecodesLosslessly) {
  const auto png = read_file_bytes(dir_ / "png" / "face.png");
  EXPECT_FALSE(is_jpeg(png));
  EXPECT_TRUE(is_jpeg(read_file_bytes(face(0))));
  const at::Tensor image = decode_non_jpeg(png, "face.png");
  EXPECT_EQ(image.sizes(), at::IntArrayRef({112, 112, 3}));
  // The decoded pixels survive a q95 JPEG round trip within JPEG's loss on these noisy images.
  JpegCodec codec;
  const at::Tensor back = codec.decode(codec.encode(image, 95), "re-encoded");
  EXPECT_LT((back.to(torch::kDouble) - image.to(torch::kDouble)).abs().mean().item<double>(), 8.0);
  const std::vector<std::uint8_t> junk(50, 7);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              decode_non_jpeg(junk, "junk.png");
            }).find("junk.png: cannot decode the image"),
            std::string::npos);
}

TEST_F(ImageFixture, EncoderRoundTripAndBrokenFiles) {
  JpegCodec codec;
  const at::Tensor image = codec.decode(read_file_bytes(face(1)), "face");
  const auto bytes = codec.encode(image, 95);
  const at::Tensor back = codec.decode(bytes, "re-encoded");
  const double mse =
      (back.to(torch::kDouble) - image.to(torch::kDouble)).pow(2).mean().item<double>();
  EXPECT_GT(10 * std::log10(255.0 * 255.0 / mse), 35.0) << "PSNR of a q95 re-encode";
  const std::string broken = test::thrown_message<DataError>(
      [&] { codec.decode(read_file_bytes(dir_ / "broken" / "face.jpg"), "broken/face.jpg"); });
  EXPECT_NE(broken.find("broken/face.jpg: tjDecompress2 failed"), std::string::npos) << broken;
  const std::vector<std::uint8_t> garbage(64, 0x41);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              codec.decode(garbage, "garbage.jpg");
            }).find("garbage.jpg: tjDecompressHeader3 failed"),
            std::string::npos);
}

TEST_F(ImageFixture, ImageBombsAreRefusedFromTheirHeaders) {
  // A small JPEG whose frame header (SOF0) declares 65000 x 65000 pixels, and a PNG header of
  // 10000 x 10000: refused from the header, nothing allocated for 12 GB or 300 MB of pixels.
  JpegCodec codec;
  std::vector<std::uint8_t> jpeg = codec.encode(at::full({16, 16, 3}, 128, at::kByte), 90);
  std::size_t sof = 0;
  while (sof + 9 < jpeg.size() && !(jpeg[sof] == 0xff && jpeg[sof + 1] == 0xc0)) ++sof;
  ASSERT_LT(sof + 9, jpeg.size());
  for (std::size_t i : {sof + 5, sof + 7}) jpeg[i] = 0xfd, jpeg[i + 1] = 0xe8;  // 65000
  const std::string big_jpeg =
      test::thrown_message<DataError>([&] { codec.decode(jpeg, "bomb.jpg"); });
  EXPECT_NE(big_jpeg.find("bomb.jpg: the image declares 65000x65000 pixels"), std::string::npos)
      << big_jpeg;
  std::vector<std::uint8_t> png = {0x89, 'P',  'N', 'G', '\r', '\n', 0x1a, '\n', 0,    0, 0,
                                   13,   'I',  'H', 'D', 'R',  0,    0,    0x27, 0x10, 0, 0,
                                   0x27, 0x10, 8,   2,   0,    0,    0,    0,    0,    0, 0};
  const std::string big_png =
      test::thrown_message<DataError>([&] { decode_non_jpeg(png, "bomb.png"); });
  EXPECT_NE(big_png.find("bomb.png: the image declares 10000x10000 pixels"), std::string::npos)
      << big_png;
}

TEST_F(ImageFixture, ACorruptImageDoesNotSpoilTheNextOnes) {
  // A flat face with a stripe at q95: cut anywhere, the header or the data fails to decode;
  // the same codec must then decode good images as before (with data.skip_corrupt, one bad
  // file once cost the next few good ones).
  at::Tensor flat = at::full({112, 112, 3}, 90, at::kByte);
  flat.narrow(1, 0, 16).fill_(0);
  JpegCodec codec;
  const auto good = codec.encode(flat, 95);
  const at::Tensor expected = codec.decode(good, "good");
  for (const std::size_t cut :
       {good.size() / 8, good.size() / 4, good.size() / 2, good.size() * 3 / 4}) {
    SCOPED_TRACE(cut);
    const std::vector<std::uint8_t> truncated(good.begin(),
                                              good.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(codec.decode(truncated, "truncated"), DataError);
    for (int again = 0; again < 3; ++again) EXPECT_TRUE(codec.decode(good, "good").equal(expected));
  }
}

TEST_F(ImageFixture, ListingIsRecursiveSortedAndRejectsOtherFormats) {
  const auto files = list_image_files(dir_ / "faces");
  ASSERT_EQ(files.size(), 5u);
  EXPECT_EQ(files.front(), face(0));
  EXPECT_EQ(files.back(), face(4));
  EXPECT_EQ(list_image_files(face(2)).size(), 1u);
  EXPECT_EQ(list_image_files(dir_ / "png").size(), 1u);
  fs::create_directories(dir_ / "webp");
  std::ofstream(dir_ / "webp" / "face.webp") << "RIFF";
  EXPECT_NE(test::thrown_message<DataError>([&] {
              list_image_files(dir_ / "webp");
            }).find("face.webp: webp images are not supported"),
            std::string::npos);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              list_image_files(dir_ / "raw");
            }).find("no images found"),
            std::string::npos);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              list_image_files(dir_ / "nope");
            }).find("no such file or folder"),
            std::string::npos);
}

TEST_F(ImageFixture, H5RoundTripAndErrors) {
  const fs::path path = dir_ / "t.h5";
  const at::Tensor f = torch::randn({3, 4});
  const at::Tensor l = torch::arange(10, torch::kLong);
  const at::Tensor u = torch::randint(0, 255, {7}, torch::kByte);
  {
    auto file = H5File::create(path);
    file.write("f", f);
    file.write("l", l);
    file.write("u", u);
    file.write("empty", torch::zeros({0}, torch::kInt));
    file.write_strings("names", {"a/0.jpg", "b/ü.jpg", ""});
    file.write_attribute("network", "mbf");
  }
  auto file = H5File::open(path);
  EXPECT_TRUE(file.read("f").equal(f));
  EXPECT_TRUE(file.read("l").equal(l));
  EXPECT_TRUE(file.read("u").equal(u));
  EXPECT_EQ(file.read("empty").numel(), 0);
  EXPECT_EQ(file.read_strings("names"), (std::vector<std::string>{"a/0.jpg", "b/ü.jpg", ""}));
  EXPECT_EQ(file.read_attribute("network"), "mbf");
  EXPECT_NE(test::thrown_message<DataError>([&] {
              file.read("missing");
            }).find("t.h5: no dataset /missing"),
            std::string::npos);
  const std::string not_h5 =
      test::thrown_message<DataError>([&] { H5File::open(dir_ / "raw" / "0.rgb"); });
  EXPECT_NE(not_h5.find("0.rgb: H5Fopen"), std::string::npos) << not_h5;
}

// Files written by h5py itself: a verification set whose format attribute is a string of each
// kind h5py writes (variable or fixed length, ASCII or UTF-8) and whose /issame is a numpy bool
// array (an HDF5 enumeration) opens; string datasets of each kind read back their text.
TEST_F(ImageFixture, FilesH5pyWritesAreRead) {
  const fs::path out = dir_ / "h5py";
  ASSERT_EQ(test::run_python("data/python_h5_foreign.py " + out.string()).code, 0);
  for (const char* style : {"vlen_utf8", "vlen_ascii", "fixed_ascii", "fixed_utf8"}) {
    const fs::path path = out / (std::string("verification-") + style + ".h5");
    try {
      const VerificationSet set(path);
      EXPECT_EQ(set.num_pairs(), 2) << style;
      EXPECT_EQ(set.issame(), (std::vector<std::uint8_t>{1, 0})) << style;
    } catch (const std::exception& e) {
      ADD_FAILURE() << style << ": " << e.what();
    }
  }
  const auto file = H5File::open(out / "strings.h5");
  const std::vector<std::string> utf8 = {"alpha", "\xC3\xA9", ""};
  const std::vector<std::string> ascii = {"alpha", "beta", ""};
  EXPECT_EQ(file.read_strings("vlen_utf8"), utf8);
  EXPECT_EQ(file.read_strings("vlen_ascii"), ascii);
  EXPECT_EQ(file.read_strings("fixed_ascii"), ascii);
  EXPECT_EQ(file.read_strings("fixed_utf8"), utf8);
  // Data kept outside the file (links, external raw storage, virtual datasets) would make HDF5
  // open paths no check has seen: refused by name, while the ordinary dataset beside them reads.
  const auto elsewhere = H5File::open(out / "elsewhere.h5");
  EXPECT_EQ(elsewhere.read("here").numel(), 4);
  for (const auto& [name, message] : std::vector<std::pair<std::string, std::string>>{
           {"link", "/link is a link to elsewhere"},
           {"external", "/external keeps its data in other files"},
           {"virtual", "/virtual keeps its data in a virtual mapping"}}) {
    const std::string refused =
        test::thrown_message<DataError>([&, name = name] { elsewhere.read(name); });
    EXPECT_NE(refused.find(message), std::string::npos) << refused;
  }
}

TEST_F(ImageFixture, AttributesAsH5pyWritesThem) {
  // A variable-length string (h5py's str) reads as its text; an array of strings and a number
  // are errors naming the attribute, not a buffer overrun or garbage; datasets that declare far
  // more than they store are errors naming them, not an allocator's failure.
  const fs::path path = dir_ / "h5py_attrs.h5";
  ASSERT_EQ(test::run_python("data/python_h5_attributes.py " + path.string()).code, 0);
  const auto file = H5File::open(path);
  EXPECT_EQ(file.read_attribute("vlen"), "facetrain-verification-v1");
  EXPECT_NE(test::thrown_message<DataError>([&] {
              file.read_attribute("many");
            }).find("attribute 'many' holds 2000 values, expected one string"),
            std::string::npos);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              file.read_attribute("number");
            }).find("attribute 'number' is not a string"),
            std::string::npos);
  // A dataset declaring 10^11 elements it does not store is refused before any allocation.
  const std::string declared = test::thrown_message<DataError>([&] { file.read("declared"); });
  EXPECT_NE(declared.find("/declared declares 100000000000 elements of 8 bytes but the file "
                          "stores 0 bytes of it"),
            std::string::npos)
      << declared;
  const std::string names = test::thrown_message<DataError>([&] { file.read_strings("names"); });
  EXPECT_NE(names.find("/names declares 10000000000 elements"), std::string::npos) << names;
}

TEST_F(ImageFixture, EmbedCommandWritesWhatTheLibraryComputes) {
  torch::manual_seed(3);
  const fs::path weights = dir_ / "mbf.pt";
  auto net = mbf_with_weights(32, weights);
  const fs::path out = dir_ / "emb.h5";
  const std::string bin = env("FACETRAIN_BIN");
  const Exec r = run(bin + " embed --weights " + weights.string() + " --network mbf --input " +
                     (dir_ / "faces").string() + " --out " + out.string() +
                     " --flip --normalize --batch-size 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("embedded 5 images with mbf"), std::string::npos) << r.out;

  const Exec py = run_python("data/python_read_embeddings.py " + out.string() + " 5 32");
  EXPECT_EQ(py.code, 0) << py.out;

  auto file = H5File::open(out);
  EXPECT_EQ(file.read_strings("names"),
            (std::vector<std::string>{"a/0.jpg", "a/1.jpg", "a/2.jpg", "a/3.jpg", "b/4.jpg"}));
  const at::Tensor got = file.read("embeddings");
  JpegCodec codec;
  std::vector<at::Tensor> images;
  for (int i = 0; i < 5; ++i) images.push_back(codec.decode(read_file_bytes(face(i)), "face"));
  const at::Tensor batch = torch::stack(images);
  const at::Tensor want = models::embed_images(*net, batch, true, true);
  EXPECT_TRUE(got.allclose(want, 1e-5, 1e-5));
  // Flip-summed embeddings do not change when the faces are mirrored.
  EXPECT_TRUE(models::embed_images(*net, batch.flip({2}), true, true).allclose(want, 1e-5, 1e-5));
  // Without --flip they do.
  EXPECT_FALSE(models::embed_images(*net, batch.flip({2}), false, true)
                   .allclose(models::embed_images(*net, batch, false, true), 1e-3, 1e-3));
}

TEST_F(ImageFixture, EmbedCommandReadsDatasetsAndVerificationSets) {
  torch::manual_seed(4);
  const fs::path weights = dir_ / "mbf16.pt";
  auto net = mbf_with_weights(16, weights);
  const std::string bin = env("FACETRAIN_BIN");
  const Exec synth =
      run(bin + " data synth --identities 3 --per-identity 2 --out " + (dir_ / "synth").string() +
          " --pairs 4 --pairs-out " + (dir_ / "pairs.h5").string() + " --seed 3");
  ASSERT_EQ(synth.code, 0) << synth.out;
  const Exec on_dataset =
      run(bin + " embed --weights " + weights.string() + " --network mbf --input " +
          (dir_ / "synth").string() + " --out " + (dir_ / "ds.h5").string());
  ASSERT_EQ(on_dataset.code, 0) << on_dataset.out;
  auto ds = H5File::open(dir_ / "ds.h5");
  EXPECT_EQ(ds.read("embeddings").sizes(), at::IntArrayRef({6, 16}));
  EXPECT_TRUE(ds.read("labels").equal(torch::tensor({0L, 0L, 1L, 1L, 2L, 2L})));
  EXPECT_EQ(ds.read_strings("names")[3], "shard-00000.h5: sample 3");
  const Exec on_pairs = run(bin + " embed --weights " + weights.string() +
                            " --network mbf --input " + (dir_ / "pairs.h5").string() + " --out " +
                            (dir_ / "pe.h5").string() + " --flip --normalize");
  ASSERT_EQ(on_pairs.code, 0) << on_pairs.out;
  auto pe = H5File::open(dir_ / "pe.h5");
  EXPECT_EQ(pe.read("embeddings").sizes(), at::IntArrayRef({8, 16}));
  EXPECT_TRUE(pe.read("issame").equal(torch::tensor({1, 0, 1, 0}, torch::kByte)));
  EXPECT_EQ(pe.read_strings("names")[5], "pair 2 image 1");
}

TEST_F(ImageFixture, EmbedFromACheckpointOrARunFolder) {
  torch::manual_seed(5);
  const fs::path step = dir_ / "run" / "checkpoints" / "step-0000010";
  fs::create_directories(step);
  auto net = mbf_with_weights(8, step / "backbone.pt");
  Config config;
  config.apply_overrides({"model.network=mbf", "model.embedding_size=8"});
  config.save(step / "config.toml");
  std::ofstream(dir_ / "run" / "checkpoints" / "latest") << "step-0000010\n";
  const std::string bin = env("FACETRAIN_BIN");
  for (const fs::path& from : {step, dir_ / "run"}) {
    const Exec r = run(bin + " embed --checkpoint " + from.string() + " --input " +
                       face(0).string() + " --out " + (dir_ / "ck.h5").string());
    ASSERT_EQ(r.code, 0) << r.out;
    JpegCodec codec;
    const at::Tensor want = models::embed_images(
        *net, codec.decode(read_file_bytes(face(0)), "face").unsqueeze(0), false, false);
    EXPECT_TRUE(H5File::open(dir_ / "ck.h5").read("embeddings").allclose(want, 1e-5, 1e-5));
    fs::remove(dir_ / "ck.h5");
  }
  const Exec none = run(bin + " embed --checkpoint " + dir_.string() + " --input " +
                        face(0).string() + " --out " + (dir_ / "x.h5").string());
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.out.find("not a checkpoint (no backbone.pt) nor a run folder"), std::string::npos)
      << none.out;
  EXPECT_EQ(
      run(bin + " embed --checkpoint " + step.string() + " --network mbf --input x --out y").code,
      2);
  EXPECT_EQ(run(bin + " embed --input " + face(0).string() + " --out y.h5").code, 2);
}

TEST_F(ImageFixture, EmbedCommandErrors) {
  torch::manual_seed(3);
  const fs::path weights = dir_ / "mbf_errors.pt";
  auto net = mbf_with_weights(32, weights);
  const std::string bin = env("FACETRAIN_BIN");
  const fs::path out = dir_ / "never.h5";
  auto embed = [&](const std::string& input, const std::string& network) {
    return run(bin + " embed --weights " + weights.string() + " --network " + network +
               " --input " + input + " --out " + out.string());
  };
  const Exec size = embed((dir_ / "wrong_size").string(), "mbf");
  EXPECT_EQ(size.code, 1);
  EXPECT_NE(size.out.find("face.jpg: image is 100x90, expected 112x112"), std::string::npos)
      << size.out;
  fs::create_directories(dir_ / "webp_only");
  std::ofstream(dir_ / "webp_only" / "face.webp") << "RIFF";
  const Exec webp = embed((dir_ / "webp_only").string(), "mbf");
  EXPECT_EQ(webp.code, 1);
  EXPECT_NE(webp.out.find("webp images are not supported"), std::string::npos) << webp.out;
  const Exec wrong_net = embed((dir_ / "faces").string(), "iresnet18");
  EXPECT_EQ(wrong_net.code, 1);
  EXPECT_NE(wrong_net.out.find("no 2-D fc.weight in the weights"), std::string::npos)
      << wrong_net.out;
  const Exec unknown = embed((dir_ / "faces").string(), "resnet");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.out.find("unknown network 'resnet'"), std::string::npos) << unknown.out;
  EXPECT_EQ(run(bin + " embed --network mbf --input x --out y").code, 2);
  // A failed run leaves no output, partial or whole.
  EXPECT_FALSE(fs::exists(out));
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find("never.h5"), std::string::npos) << entry.path();
  }
}

}  // namespace
}  // namespace facetrain::data
