#include "framework/log/logger.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "framework/core/error.h"

namespace facetrain {
namespace {

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(LoggerTest, FileGetsTimestampedRankTaggedLinesAtTheLevel) {
  const auto dir = std::filesystem::temp_directory_path() / "facetrain_logger_test";
  std::filesystem::remove_all(dir);
  log::LogOptions o;
  o.level = log::Level::kInfo;
  o.rank = 1;
  o.world_size = 4;
  o.console = false;
  log::configure(o);
  log::open_file(dir / "logs" / "rank-1.log");
  log::debug("hidden {}", 1);
  log::info("step {} loss {:.3f}", 10, 2.5);
  log::warn("slow");
  log::close_file();
  const std::string text = read_all(dir / "logs" / "rank-1.log");
  EXPECT_EQ(text.find("hidden"), std::string::npos);
  const std::regex line(
      R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} I \[rank 1/4\] step 10 loss 2\.500\n)");
  EXPECT_TRUE(std::regex_search(text, line)) << text;
  EXPECT_NE(text.find(" W [rank 1/4] slow\n"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
  log::configure(log::LogOptions{});
}

TEST(LoggerTest, LevelsParseAndFilter) {
  EXPECT_EQ(log::parse_level("debug"), log::Level::kDebug);
  EXPECT_EQ(log::parse_level("error"), log::Level::kError);
  EXPECT_THROW(log::parse_level("loud"), ConfigError);
  log::LogOptions o;
  o.level = log::Level::kWarn;
  log::configure(o);
  EXPECT_FALSE(log::enabled(log::Level::kInfo));
  EXPECT_TRUE(log::enabled(log::Level::kError));
  log::configure(log::LogOptions{});
}

TEST(LoggerTest, ConsoleIsRankZeroPlusOtherRanksErrors) {
  log::LogOptions o;
  o.rank = 2;
  o.world_size = 3;
  log::configure(o);
  ::testing::internal::CaptureStderr();
  log::info("not shown on rank 2");
  log::error("shown from rank 2");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("not shown"), std::string::npos) << err;
  EXPECT_NE(err.find("E [rank 2/3] shown from rank 2"), std::string::npos) << err;
  o.console_all_ranks = true;
  log::configure(o);
  ::testing::internal::CaptureStderr();
  log::info("now every rank");
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("now every rank"), std::string::npos);
  log::configure(log::LogOptions{});
}

}  // namespace
}  // namespace facetrain
