// The run layout: names, parsing back, and following `latest` as a link or a file.
#include "framework/core/run_layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace facetrain {
namespace {

namespace fs = std::filesystem;

TEST(RunLayoutTest, NamesAndTheirParsing) {
  const RunLayout run{"/runs/r50"};
  EXPECT_EQ(run.step(42).dir, fs::path("/runs/r50/checkpoints/step-0000042"));
  EXPECT_EQ(run.step(42).fc(0, 93431),
            fs::path("/runs/r50/checkpoints/step-0000042/fc-0-93431.pt"));
  EXPECT_EQ(run.log(3), fs::path("/runs/r50/logs/rank-3.log"));
  EXPECT_EQ(RunLayout::step_number("step-0000042"), 42);
  EXPECT_EQ(RunLayout::step_number(RunLayout::step_name(123456789)), 123456789);
  EXPECT_FALSE(RunLayout::step_number("step-42"));
  EXPECT_FALSE(RunLayout::step_number(".step-0000042.tmp"));
  EXPECT_FALSE(RunLayout::step_number("step-0000042x"));
  const auto range = CheckpointLayout::fc_range("fc-100-200.pt");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first, 100);
  EXPECT_EQ(range->second, 200);
  EXPECT_FALSE(CheckpointLayout::fc_range("fc-100.pt"));
  EXPECT_FALSE(CheckpointLayout::fc_range("fc-1-2.pt.tmp"));
}

TEST(RunLayoutTest, LatestAsALinkOrAFileAndFindingACheckpoint) {
  const fs::path root = fs::temp_directory_path() / "facetrain_run_layout_test";
  fs::remove_all(root);
  const RunLayout run{root};
  fs::create_directories(run.step(8).dir);
  fs::create_directories(run.step(16).dir);
  std::ofstream(run.step(16).backbone()) << "weights";
  EXPECT_FALSE(run.latest_checkpoint());
  EXPECT_FALSE(find_checkpoint(root));

  fs::create_directory_symlink("step-0000016", run.latest());
  EXPECT_EQ(run.latest_checkpoint(), run.step(16).dir);
  ASSERT_TRUE(find_checkpoint(root));
  EXPECT_EQ(find_checkpoint(root)->dir, run.step(16).dir);
  EXPECT_EQ(find_checkpoint(run.step(16).dir)->dir, run.step(16).dir);  // itself

  fs::remove(run.latest());
  std::ofstream(run.latest()) << "step-0000008\n";
  EXPECT_EQ(run.latest_checkpoint(), run.step(8).dir);
  std::ofstream(run.latest()) << "../../etc\n";  // names no step folder
  EXPECT_FALSE(run.latest_checkpoint());
  fs::remove_all(root);
}

}  // namespace
}  // namespace facetrain
