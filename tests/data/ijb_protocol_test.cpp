// The IJB layout reader on a synthetic benchmark: what it reads, and bad meta files as errors
// naming the file and the line.
#include "data/verification/ijb_protocol.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "data/synth/synthetic_ijb.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace {

namespace fs = std::filesystem;

class IjbProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("facetrain_ijb_" + std::to_string(::getpid()));
    SynthIjbOptions o;
    o.identities = 4;
    o.templates = 3;
    o.media = 2;
    o.images = 1;
    o.impostors = 2;
    o.photo_size = 120;
    synthesize_ijb(root_ / "good", o);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // A copy of the good benchmark with one meta file's text changed by `edit`; the error of
  // reading it (empty when it reads).
  static std::string error_after(const std::string& file,
                                 const std::function<void(std::string&)>& edit) {
    const fs::path copy = root_ / "bad";
    fs::remove_all(copy);
    fs::copy(root_ / "good", copy, fs::copy_options::recursive);
    std::ifstream in(copy / "meta" / file);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    edit(s);
    std::ofstream(copy / "meta" / file, std::ios::trunc) << s;
    try {
      read_ijb_protocol(copy, "IJBC");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  static void replace_line(std::string& s, int line, const std::string& with) {
    std::size_t start = 0;
    for (int k = 1; k < line; ++k) start = s.find('\n', start) + 1;
    s.replace(start, s.find('\n', start) - start, with);
  }
  static fs::path root_;
};
fs::path IjbProtocolTest::root_;

TEST_F(IjbProtocolTest, ReadsTheLayout) {
  EXPECT_EQ(detect_ijb_name(root_ / "good"), "IJBC");
  const IjbProtocol p = read_ijb_protocol(root_ / "good", "ijbc");
  ASSERT_EQ(p.images.size(), 4u * 3 * 2);
  EXPECT_EQ(p.images[0].path, "1.jpg");
  EXPECT_GE(p.images[0].score, 0.5);
  EXPECT_EQ(p.templates[0], 1);
  EXPECT_EQ(p.medias[2], 3);  // one image per media
  // 3 genuine pairs per identity, 2 impostors per template.
  EXPECT_EQ(p.pair_label.size(), 4u * (3 + 3 * 2));
  ASSERT_EQ(p.galleries.size(), 2u);
  EXPECT_EQ(p.galleries[0].name, "G1");
  EXPECT_EQ(p.galleries[0].templates, (std::vector<std::int64_t>{1, 7}));
  EXPECT_EQ(p.galleries[1].subjects, (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(p.probes.templates.size(), 8u);
}

TEST_F(IjbProtocolTest, BadMetaFilesNameTheFileAndLine) {
  const std::string lmk = "ijbc_name_5pts_score.txt", tid = "ijbc_face_tid_mid.txt",
                    pairs = "ijbc_template_pair_label.txt", g1 = "ijbc_1N_gallery_G1.csv";
  struct Case {
    std::string file;
    std::function<void(std::string&)> edit;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {lmk, [](std::string& s) { replace_line(s, 2, "2.jpg 1 2 3"); }, lmk + ":2: 4 fields"},
      {lmk, [](std::string& s) { replace_line(s, 3, "missing.jpg 1 2 3 4 5 6 7 8 9 10 0.9"); },
       tid + ":3: image '3.jpg', but line 3 of"},
      {tid, [](std::string& s) { replace_line(s, 4, "4.jpg 1"); }, tid + ":4: 2 fields"},
      {tid, [](std::string& s) { replace_line(s, 5, "5.jpg x 3"); },
       tid + ":5: field 2 is 'x': expected a template id"},
      {pairs, [](std::string& s) { replace_line(s, 2, "1 999 0"); },
       pairs + ":2: template 999 has no images"},
      {pairs, [](std::string& s) { replace_line(s, 3, "1 2 2"); },
       pairs + ":3: label 2: expected 1 (genuine) or 0 (impostor)"},
      {pairs, [](std::string& s) { replace_line(s, 1, "1 2 1 7"); }, pairs + ":1: 4 fields"},
      {g1, [](std::string& s) { replace_line(s, 2, "555,1,1.jpg"); },
       g1 + ":2: template 555 has no images"},
      {g1, [](std::string& s) { replace_line(s, 3, "1,9,2.jpg"); },
       g1 + ":3: template 1 is subject 9, but line 2 says 1"},
      {g1, [](std::string& s) { s += "4,1,7.jpg\n"; }, "subject 1 has template"},
  };
  for (const auto& c : cases) {
    const std::string e = error_after(c.file, c.edit);
    EXPECT_NE(e.find(c.expected), std::string::npos) << c.file << ": " << e;
  }
  // A missing image file is named with its landmarks line.
  fs::remove_all(root_ / "bad");
  fs::copy(root_ / "good", root_ / "bad", fs::copy_options::recursive);
  fs::remove(root_ / "bad" / "loose_crop" / "6.jpg");
  try {
    read_ijb_protocol(root_ / "bad", "IJBC");
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(lmk + ":6: image '6.jpg': no such file"),
              std::string::npos)
        << e.what();
  }
  // Some but not all 1:N files.
  fs::remove(root_ / "bad" / "meta" / "ijbc_1N_probe_mixed.csv");
  fs::copy_file(root_ / "good" / "loose_crop" / "6.jpg", root_ / "bad" / "loose_crop" / "6.jpg");
  EXPECT_THROW(read_ijb_protocol(root_ / "bad", "IJBC"), DataError);
  EXPECT_THROW(read_ijb_protocol(root_ / "good", "IJBX"), UsageError);
  EXPECT_THROW(detect_ijb_name(root_), DataError);
}

}  // namespace
}  // namespace facetrain::data
