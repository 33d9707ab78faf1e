// InputFile: what is not a regular file is named, never waited on; the checked-arithmetic
// helpers: every overflow and out-of-range conversion is an exception naming what it was.
#include "framework/core/input_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cmath>
#include <limits>

#include "framework/core/checked.h"
#include "framework/core/checksum.h"
#include "framework/core/error.h"
#include "tests/support/thrown_message.h"

namespace facetrain {
namespace {

namespace fs = std::filesystem;

class InputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("facetrain_input_file_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(InputFileTest, NonRegularFilesAreNamedNotRead) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  // Opening a FIFO that has no writer must not block: the test would hang here otherwise.
  EXPECT_EQ(InputFile::open(dir_ / "fifo").problem(), "a FIFO (named pipe), expected a regular file");
  EXPECT_EQ(InputFile::open(dir_).problem(), "a folder, expected a regular file");
  EXPECT_EQ(InputFile::open("/dev/null").problem(), "a character device, expected a regular file");
  EXPECT_EQ(InputFile::open(dir_ / "missing").problem(), "no such file");
  EXPECT_EQ(InputFile::open(dir_ / "missing" / "below").problem(), "no such file");
  const std::string message =
      test::thrown_message<DataError>([&] { require_regular_file<DataError>(dir_ / "fifo"); });
  EXPECT_EQ(message, (dir_ / "fifo").string() + ": a FIFO (named pipe), expected a regular file");
}

TEST_F(InputFileTest, RegularFilesReadWholeWithinTheirLimit) {
  std::ofstream(dir_ / "a.txt") << "hello, world";
  const InputFile f = InputFile::open_or_throw<DataError>(dir_ / "a.txt");
  EXPECT_TRUE(f.problem().empty());
  EXPECT_EQ(f.size(), 12);
  EXPECT_EQ(f.read_all<DataError>(12, "a greeting"), "hello, world");
  char part[5] = {};
  EXPECT_EQ(f.read_at(7, part, 5), 5u);
  EXPECT_EQ(std::string(part, 5), "world");
  EXPECT_EQ(f.read_at(10, part, 5), 2u) << "short at the end of the file";
  EXPECT_NE(test::thrown_message<DataError>([&] { f.read_all<DataError>(11, "a greeting"); })
                .find("a.txt: 12 bytes, more than the 11 bytes facetrain reads as a greeting"),
            std::string::npos);
  EXPECT_EQ(crc32_of(f), crc32_of(std::string_view("hello, world")));
  EXPECT_EQ(crc32_of(std::string_view("123456789")), 0xCBF43926u);  // the CRC-32 check value
}

TEST(CheckedTest, OverflowsAndNarrowingsAreNamed) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(checked::mul<DataError>(std::int64_t{3}, std::int64_t{5}, "x"), 15);
  EXPECT_EQ(checked::add<DataError>(kMax - 1, std::int64_t{1}, "x"), kMax);
  EXPECT_EQ(test::thrown_message<DataError>([] {
              checked::mul<DataError>(kMax, std::int64_t{2}, "batch x ranks");
            }),
            "batch x ranks: 9223372036854775807 x 2 does not fit in 64 bits");
  EXPECT_THROW(checked::add<DataError>(kMax, std::int64_t{1}, "x"), DataError);
  EXPECT_THROW(checked::add<DataError>(std::numeric_limits<std::int64_t>::min(), std::int64_t{-1}, "x"),
               DataError);
  EXPECT_EQ((checked::narrow<int, ConfigError>(std::int64_t{2147483647}, "k")), 2147483647);
  EXPECT_EQ(test::thrown_message<ConfigError>([] {
              checked::narrow<int, ConfigError>(std::int64_t{2147483648}, "key \"n\"");
            }),
            "key \"n\": 2147483648 is out of range [-2147483648, 2147483647]");
  EXPECT_THROW((checked::narrow<std::uint32_t, DataError>(std::int64_t{-1}, "x")), DataError);
}

TEST(CheckedTest, SecondsBecomeDurationsOnlyWithinTheClock) {
  EXPECT_EQ(checked::seconds<DistError>(1.5, "t").count(), 1500000000);
  EXPECT_EQ(checked::seconds<DistError>(0, "t").count(), 0);
  // 1e12 s is 31,700 years: beyond the nanosecond clock's 292, so refused, never wrapped.
  EXPECT_NE(test::thrown_message<DistError>([] { checked::seconds<DistError>(1e12, "dist.timeout_s"); })
                .find("dist.timeout_s: 1e+12 s is not a duration in [0, "),
            std::string::npos);
  EXPECT_THROW(checked::seconds<DistError>(-1, "t"), DistError);
  EXPECT_THROW(checked::seconds<DistError>(std::numeric_limits<double>::infinity(), "t"), DistError);
  EXPECT_THROW(checked::seconds<DistError>(std::nan(""), "t"), DistError);
}

}  // namespace
}  // namespace facetrain
