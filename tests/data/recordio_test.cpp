// insightface RecordIO files written by an independent Python writer
// (tests/data/python_recordio.py, from the documented layout): multi-part records, the extra-label
// header form, files with and without the header record, label remapping, and garbage.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "data/image/image_files.h"
#include "data/recordio/recordio_packer.h"
#include "data/recordio/recordio_reader.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/error.h"
#include "tests/support/process.h"
#include "tests/support/thrown_message.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;

struct Expected {
  std::uint64_t key;
  std::int64_t label;
  std::string payload_file;
};

std::vector<Expected> read_expect(const fs::path& file) {
  std::vector<Expected> out;
  std::ifstream in(file);
  Expected e;
  while (in >> e.key >> e.label >> e.payload_file) out.push_back(e);
  return out;
}

class RecordIOTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("facetrain_recordio_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    ASSERT_EQ(test::run_python("data/python_faces.py " + (root_ / "src").string()).code, 0);
    const std::string faces = (root_ / "src" / "identities").string();
    ASSERT_EQ(
        test::run_python("data/python_recordio.py " + faces + " " + (root_ / "train").string())
            .code,
        0);
    ASSERT_EQ(test::run_python("data/python_recordio.py " + faces + " " +
                               (root_ / "plain").string() + " headerless")
                  .code,
              0);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Packs PREFIX and checks every sample against the writer's record of it.
  static void expect_packed(const std::string& prefix) {
    PackOptions options;
    options.shard_size = 6;
    const fs::path out = root_ / (prefix + "_ds");
    pack_recordio(root_ / (prefix + ".rec"), out, options);
    const ShardedDataset ds(out);
    const auto expected = read_expect(root_ / (prefix + ".expect"));
    ASSERT_EQ(ds.size(), static_cast<std::int64_t>(expected.size()));
    EXPECT_EQ(ds.num_classes(), 5);
    // Original labels 3, 7, 42, 100, 205 become 0 … 4 in that order.
    const std::map<std::int64_t, int> id = {{3, 0}, {7, 1}, {42, 2}, {100, 3}, {205, 4}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(ds.labels()[static_cast<std::int64_t>(i)].item<int>(), id.at(expected[i].label));
      EXPECT_EQ(ds.read(static_cast<std::int64_t>(i)), read_file_bytes(expected[i].payload_file))
          << "record " << expected[i].key;
    }
    std::ifstream map(out / "labels.tsv");
    std::stringstream text;
    text << map.rdbuf();
    EXPECT_EQ(text.str(), "0\t3\n1\t7\n2\t42\n3\t100\n4\t205\n");
    EXPECT_TRUE(verify_dataset(out).empty());
  }
  static fs::path root_;
};
fs::path RecordIOTest::root_;

TEST_F(RecordIOTest, MultiPartRecordsAndTheExtraLabelHeader) {
  RecordIOReader reader(root_ / "train");
  const ImageRecord first = reader.read_image(1);  // written in three parts
  EXPECT_EQ(first.flag, 0u);
  EXPECT_EQ(first.labels, std::vector<float>{100.0f});
  EXPECT_EQ(first.id, 1u);
  const auto expected = read_expect(root_ / "train.expect");
  EXPECT_EQ(first.payload, read_file_bytes(expected[0].payload_file));
  const ImageRecord second = reader.read_image(2);
  EXPECT_EQ(second.flag, 2u);
  EXPECT_EQ(second.labels, (std::vector<float>{100.0f, 0.5f}));
  EXPECT_EQ(second.payload, read_file_bytes(expected[1].payload_file));
  const ImageRecord header = reader.read_image(0);
  EXPECT_EQ(header.labels, (std::vector<float>{16.0f, 21.0f}));
  EXPECT_TRUE(header.payload.empty());
}

TEST_F(RecordIOTest, PacksWithTheHeaderRecord) {
  expect_packed("train");
}

TEST_F(RecordIOTest, PacksAHeaderlessFile) {
  expect_packed("plain");
}

TEST_F(RecordIOTest, GarbageAndBrokenIndexAreClearErrors) {
  std::ofstream(root_ / "junk.rec", std::ios::binary) << std::string(64, 'Q');
  std::ofstream(root_ / "junk.idx") << "1\t8\n";
  RecordIOReader junk(root_ / "junk.rec");
  const std::string magic = test::thrown_message<DataError>([&] { junk.read(1); });
  EXPECT_NE(magic.find("junk.rec: record 1 at offset 8: magic 0x51515151, expected 0xced7230a"),
            std::string::npos)
      << magic;
  EXPECT_NE(test::thrown_message<DataError>([&] {
              PackOptions options;
              pack_recordio(root_ / "junk", root_ / "junk_ds", options);
            }).find("magic"),
            std::string::npos);
  std::ofstream(root_ / "bad.rec", std::ios::binary) << std::string(16, '\0');
  std::ofstream(root_ / "bad.idx") << "0\t0\nnot a line\n";
  EXPECT_NE(test::thrown_message<DataError>([&] {
              RecordIOReader r(root_ / "bad");
            }).find("bad.idx:2: expected \"key<TAB>offset\""),
            std::string::npos);
  std::ofstream(root_ / "far.rec", std::ios::binary) << std::string(16, '\0');
  std::ofstream(root_ / "far.idx") << "0\t999\n";
  EXPECT_NE(test::thrown_message<DataError>([&] {
              RecordIOReader r(root_ / "far.idx");
            }).find("far.idx:1: offset 999 is past the end"),
            std::string::npos);
  // A record cut short by truncating the .rec file.
  fs::copy_file(root_ / "train.rec", root_ / "cut.rec");
  fs::copy_file(root_ / "train.idx", root_ / "cut.idx");
  fs::resize_file(root_ / "cut.rec", fs::file_size(root_ / "cut.rec") - 20);
  RecordIOReader cut(root_ / "cut.rec");
  std::string last_error;
  for (auto key : cut.keys()) {
    try {
      cut.read(key);
    } catch (const DataError& e) {
      last_error = e.what();
    }
  }
  EXPECT_NE(last_error.find("the file ends first"), std::string::npos) << last_error;
  // Keys sharing one offset would read one record once per key, more than the file holds.
  std::ofstream(root_ / "shared.idx") << "0\t0\n1\t0\n";
  fs::copy_file(root_ / "train.rec", root_ / "shared.rec");
  EXPECT_NE(test::thrown_message<DataError>([&] {
              RecordIOReader r(root_ / "shared.rec");
            }).find("shared.idx:2: key 1 has offset 0, which key 0 has already"),
            std::string::npos);
  // A record that runs into the next one indexed is refused, not read twice.
  std::ofstream(root_ / "overlap.idx") << "0\t0\n1\t8\n";
  fs::copy_file(root_ / "train.rec", root_ / "overlap.rec");
  RecordIOReader overlap(root_ / "overlap.rec");
  EXPECT_NE(test::thrown_message<DataError>([&] { overlap.read(0); })
                .find("the next record begins at 8"),
            std::string::npos);
}

}  // namespace
}  // namespace facetrain::data
