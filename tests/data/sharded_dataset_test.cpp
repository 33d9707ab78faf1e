// The dataset format: packing image folders written by Pillow, reading back the exact bytes,
// and every documented error — truncated shard, bad checksum, broken JPEG, label out of range,
// missing shard, empty folder, wrong image size — found by `data verify` or the packer.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "data/hdf5/h5_file.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/shards/class_names.h"
#include "data/shards/folder_packer.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/error.h"
#include "tests/support/process.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;
using test::env;

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class ShardedDatasetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("facetrain_shards_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    ASSERT_EQ(test::run_python("data/python_faces.py " + (root_ / "src").string()).code, 0);
    PackOptions options;
    options.shard_size = 4;
    pack_image_folder(root_ / "src" / "identities", root_ / "clean", options);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  // A fresh copy of the clean dataset to damage.
  static fs::path copy(const std::string& name) {
    const auto dir = root_ / name;
    fs::remove_all(dir);
    fs::copy(root_ / "clean", dir, fs::copy_options::recursive);
    return dir;
  }
  static fs::path root_;
};
fs::path ShardedDatasetTest::root_;

TEST_F(ShardedDatasetTest, PackedFolderReadsBackExactly) {
  const ShardedDataset ds(root_ / "clean");
  EXPECT_EQ(ds.size(), 15);
  EXPECT_EQ(ds.num_classes(), 5);
  EXPECT_EQ(ds.manifest().shards.size(), 4u);  // 4 + 4 + 4 + 3
  EXPECT_EQ(ds.manifest().shards.back().num_samples, 3);
  for (std::int64_t i = 0; i < 15; ++i) {
    const int ident = static_cast<int>(i / 3);
    EXPECT_EQ(ds.labels()[i].item<int>(), ident);
    const auto original =
        read_file_bytes(root_ / "src" / "identities" / ("id_" + std::to_string(ident)) /
                        (std::to_string(i % 3) + ".jpg"));
    EXPECT_EQ(ds.read(i), original) << ds.describe(i);
  }
  EXPECT_EQ(ds.describe(13), "shard-00003.h5: sample 1");
  std::ifstream classes(root_ / "clean" / "classes.tsv");
  std::string first;
  std::getline(classes, first);
  EXPECT_EQ(first, "0\tid_0");
  EXPECT_TRUE(verify_dataset(root_ / "clean").empty()) << joined(verify_dataset(root_ / "clean"));
  EXPECT_THROW(ds.read(15), DataError);
}

// classes.tsv holds names of any bytes a file system allows and reads them back exactly; text
// that is not a classes.tsv is refused naming the line.
TEST(ClassNamesTest, AnyBytesRoundTripAndBadLinesAreNamed) {
  const std::vector<std::string> names = {"plain", "with\ttab", "line\nbreak", "back\\slash",
                                          std::string("nul\0byte", 8), "\x01\x7f", "\xC3\xA9t\xC3\xA9",
                                          "not utf-8 \xff", "\\x41", ""};
  const std::string text = class_names_tsv(names);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), static_cast<long>(names.size()))
      << "one line per class";
  EXPECT_EQ(parse_class_names(text, "classes.tsv"), names);
  const auto refused = [](const std::string& t) {
    return test::thrown_message<DataError>([&] { parse_class_names(t, "classes.tsv"); });
  };
  EXPECT_NE(refused("0\ta\n2\tb\n").find("classes.tsv:2: expected \"1<TAB>name\""),
            std::string::npos);
  // Files written before names were escaped, or by an editor, read as they mean.
  EXPECT_EQ(parse_class_names("\xEF\xBB\xBF" "0\ta\\q\r\n1\tb\r\n", "classes.tsv"),
            (std::vector<std::string>{"a\\q", "b"}));
  EXPECT_NE(refused("0\ta").find("classes.tsv:1: the last line has no newline"), std::string::npos);
}

TEST_F(ShardedDatasetTest, TruncatedShard) {
  const auto dir = copy("truncated");
  fs::resize_file(dir / "shard-00001.h5", fs::file_size(dir / "shard-00001.h5") / 2);
  const auto problems = verify_dataset(dir);
  EXPECT_TRUE(any_contains(problems, "shard-00001.h5: ")) << joined(problems);
  EXPECT_TRUE(any_contains(problems, "bytes on disk, the manifest says")) << joined(problems);
}

TEST_F(ShardedDatasetTest, BadChecksum) {
  const auto dir = copy("flipped");
  {
    std::fstream f(dir / "shard-00002.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c = 0;
    f.read(&c, 1);
    f.seekp(-100, std::ios::end);
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  const auto problems = verify_dataset(dir);
  EXPECT_TRUE(any_contains(problems, "shard-00002.h5: checksum")) << joined(problems);
}

TEST_F(ShardedDatasetTest, BrokenJpegIsReportedWithShardAndIndex) {
  const auto dir = root_ / "broken_jpeg";
  ShardedDatasetWriter writer(dir, 112, 112, 10);
  writer.add(0, read_file_bytes(root_ / "src" / "faces" / "a" / "1.jpg"));
  writer.add(1, read_file_bytes(root_ / "src" / "broken" / "face.jpg"));
  writer.finish(2);
  const auto problems = verify_dataset(dir);
  ASSERT_EQ(problems.size(), 1u) << joined(problems);
  EXPECT_NE(problems[0].find("shard-00000.h5: sample 1: tjDecompress2 failed"), std::string::npos)
      << problems[0];
}

TEST_F(ShardedDatasetTest, LabelOutOfRange) {
  const auto dir = root_ / "bad_label";
  ShardedDatasetWriter writer(dir, 112, 112, 10);
  writer.add(7, read_file_bytes(root_ / "src" / "faces" / "a" / "1.jpg"));
  EXPECT_NE(test::thrown_message<DataError>([&] {
              writer.finish(5);
            }).find("shard-00000.h5: label 7 out of range [0, 5)"),
            std::string::npos);
  // A manifest that claims fewer classes than the shards use.
  const auto edited = copy("few_classes");
  auto manifest = Manifest::read(edited);
  manifest.num_classes = 3;
  manifest.write(edited);
  const auto problems = verify_dataset(edited);
  EXPECT_TRUE(any_contains(problems, "are not within [0, num_classes = 3)")) << joined(problems);
}

// A shard rewritten with foreign /labels: the opener refuses it, naming the shard, before any
// training could run on it.
TEST_F(ShardedDatasetTest, ForeignLabelShapesAndWideLabelsAreRefused) {
  const auto rewrite_labels = [&](const std::string& name, const at::Tensor& labels) {
    const auto dir = copy(name);
    const auto shard = dir / "shard-00000.h5";
    at::Tensor jpeg, offsets;
    {
      const H5File original = H5File::open(shard);
      jpeg = original.read("jpeg");
      offsets = original.read("offsets");
    }
    auto file = H5File::create(shard);
    file.write("jpeg", jpeg);
    file.write("offsets", offsets);
    file.write("labels", labels);
    file.write_attribute("format", Manifest::kFormat);
    file.close();
    return dir;
  };
  const auto two_d = rewrite_labels("labels_2d", at::zeros({4, 2}, at::kInt));
  EXPECT_NE(test::thrown_message<DataError>([&] {
              ShardedDataset d(two_d);
            }).find("shard-00000.h5: /labels has shape [4, 2], expected [4]"),
            std::string::npos);
  const auto wide =
      rewrite_labels("labels_wide", at::full({4}, (std::int64_t{1} << 32) + 1, at::kLong));
  EXPECT_NE(test::thrown_message<DataError>([&] {
              ShardedDataset d(wide);
            }).find("shard-00000.h5: sample 0: label 4294967297 outside [0, "),
            std::string::npos);
}

TEST_F(ShardedDatasetTest, MissingShardAndBadManifest) {
  const auto dir = copy("missing");
  fs::remove(dir / "shard-00002.h5");
  const auto problems = verify_dataset(dir);
  EXPECT_TRUE(any_contains(problems, "shard-00002.h5: no such file")) << joined(problems);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              ShardedDataset ds(dir);
            }).find("shard-00002.h5: no such file (listed in manifest.json)"),
            std::string::npos);
  std::ofstream(dir / "manifest.json") << "{ not json";
  EXPECT_TRUE(any_contains(verify_dataset(dir), "manifest.json: invalid JSON"));
  std::ofstream(dir / "manifest.json") << R"({"format": "other", "version": 1})";
  EXPECT_TRUE(any_contains(verify_dataset(dir), "format \"other\", expected \"facetrain-shards\""));
  EXPECT_TRUE(any_contains(verify_dataset(root_ / "src"), "no manifest"));
  // Numbers beyond their types are refused by key, never cast.
  const std::string head =
      R"({"format": "facetrain-shards", "version": 1, "num_classes": 2, "image_size": [112, 112],
          "channels": 3, "encoding": "jpeg", )";
  const auto shard = [](const char* file) {
    return fmt::format(R"({{"file": "{}", "label_min": 0, "label_max": 1, "bytes": 9, )", file);
  };
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"format": "facetrain-shards", "version": 1e300})",
            "key \"version\" has the wrong type (number, expected an integer)"},
           {head + R"("num_samples": 2, "shards": [)" + shard("a.h5") +
                R"("num_samples": 2, "crc32": -1}]})",
            "shards[0]: key \"crc32\" = -1 is out of range (expected 0 to 4294967295)"},
           {head + R"("num_samples": 2, "shards": [)" + shard("a.h5") +
                R"("num_samples": 9223372036854775807, "crc32": 0}, )" + shard("b.h5") +
                R"("num_samples": 9223372036854775807, "crc32": 0}]})",
            "shards[1]: num_samples, in all: 9223372036854775807 + 9223372036854775807 does not "
            "fit in 64 bits"},
           // The same shard twice, and more classes than images.
           {head + R"("num_samples": 2, "shards": [)" + shard("a.h5") +
                R"("num_samples": 1, "crc32": 0}, )" + shard("a.h5") +
                R"("num_samples": 1, "crc32": 0}]})",
            "shards[1]: file \"a.h5\" is listed already as shards[0]"},
           {R"({"format": "facetrain-shards", "version": 1, "num_classes": 1000000000000,
               "image_size": [112, 112], "channels": 3, "encoding": "jpeg", "num_samples": 2,
               "shards": []})",
            "num_classes is 1000000000000, more than the 2 images (num_samples) it can have"},
           {head + R"("num_samples": 18446744073709551615, "shards": []})",
            "key \"num_samples\" = 18446744073709551615 is out of range"}}) {
    std::ofstream(dir / "manifest.json") << text;
    EXPECT_TRUE(any_contains(verify_dataset(dir), message)) << joined(verify_dataset(dir));
  }
}

TEST_F(ShardedDatasetTest, FolderErrorsAndResize) {
  PackOptions options;
  EXPECT_NE(test::thrown_message<DataError>([&] {
              pack_image_folder(root_ / "src" / "empty", root_ / "out_empty", options);
            }).find("no identity sub-folders"),
            std::string::npos);
  EXPECT_NE(test::thrown_message<DataError>([&] {
              pack_image_folder(root_ / "src" / "hollow", root_ / "out_hollow", options);
            }).find("id_0: no images found"),
            std::string::npos);
  const std::string size = test::thrown_message<DataError>(
      [&] { pack_image_folder(root_ / "src" / "identities_mixed", root_ / "out_mixed", options); });
  EXPECT_NE(size.find("1.jpg: image is 128x128, expected 112x112 aligned faces (pass --resize"),
            std::string::npos)
      << size;
  // The failed pack leaves nothing behind: no manifest, no shard, no folder it created.
  EXPECT_FALSE(fs::exists(root_ / "out_mixed"));
  options.resize = true;
  pack_image_folder(root_ / "src" / "identities_mixed", root_ / "out_resized", options);
  EXPECT_TRUE(verify_dataset(root_ / "out_resized").empty());
  const ShardedDataset ds(root_ / "out_resized");
  JpegCodec codec;
  EXPECT_EQ(codec.decode(ds.read(1), "resized").sizes(), at::IntArrayRef({112, 112, 3}));
  // PNG faces are stored as JPEG.
  pack_image_folder(root_ / "src" / "identities_png", root_ / "out_png", PackOptions{});
  EXPECT_TRUE(verify_dataset(root_ / "out_png").empty());
  const ShardedDataset png_ds(root_ / "out_png");
  const auto stored = png_ds.read(0);
  EXPECT_TRUE(is_jpeg(stored));
  const at::Tensor original =
      decode_non_jpeg(read_file_bytes(root_ / "src" / "identities_png" / "id_0" / "0.png"), "png");
  EXPECT_LT((codec.decode(stored, "stored").to(at::kDouble) - original.to(at::kDouble))
                .abs()
                .mean()
                .item<double>(),
            8.0);
  // A folder that already holds a dataset is not overwritten.
  EXPECT_NE(test::thrown_message<DataError>([&] {
              pack_image_folder(root_ / "src" / "identities", root_ / "clean", options);
            }).find("already holds a dataset"),
            std::string::npos);
}

TEST_F(ShardedDatasetTest, VerifyCommandExitCodes) {
  const std::string bin = env("FACETRAIN_BIN");
  EXPECT_EQ(test::run(bin + " data verify " + (root_ / "clean").string() + " >/dev/null 2>&1").code,
            0);
  const auto dir = copy("cli_damaged");
  fs::remove(dir / "shard-00000.h5");
  EXPECT_EQ(test::run(bin + " data verify " + dir.string() + " >/dev/null 2>&1").code, 1);
  EXPECT_EQ(test::run(bin + " data info " + (root_ / "clean").string() + " >/dev/null 2>&1").code,
            0);
  EXPECT_EQ(test::run(bin + " data pack --input " + (root_ / "src" / "empty").string() + " --out " +
                      (root_ / "cli_out").string() + " >/dev/null 2>&1")
                .code,
            1);
}

}  // namespace
}  // namespace facetrain::data
