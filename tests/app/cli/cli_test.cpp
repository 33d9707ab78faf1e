// The facetrain executable as a user runs it: real processes, real files, exit codes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/process.h"

namespace {

using facetrain::test::Exec;

// Runs the facetrain executable under test with `args`.
Exec run(const std::string& args, bool with_stderr = true) {
  return facetrain::test::run(facetrain::test::env("FACETRAIN_BIN") + " " + args, with_stderr);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("facetrain_cli_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

TEST_F(CliTest, VersionAndHelp) {
  const Exec v = run("version");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find("facetrain 0."), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("torch 2."), std::string::npos) << v.out;
  const Exec h = run("--help");
  EXPECT_EQ(h.code, 0);
  for (const char* sub : {"version", "config", "env"}) {
    EXPECT_NE(h.out.find(sub), std::string::npos) << sub;
  }
  EXPECT_EQ(run("config show --help").code, 0);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("config show --no-such-flag").code, 2);
  const Exec missing = run("config show --config /nonexistent.toml");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.out.find("/nonexistent.toml"), std::string::npos) << missing.out;
}

TEST_F(CliTest, MisspeltKeyExitsTwoWithSuggestion) {
  const std::string cfg = write("exp.toml", "[train]\nbatch_size = 64\nnum_epochs = 3\n");
  const Exec r = run("config show --config " + cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find(cfg + ":3:1: unknown key 'train.num_epochs'; did you mean "
                             "'train.num_epoch'?"),
            std::string::npos)
      << r.out;
  // One line, no backtrace.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

TEST_F(CliTest, ConfigShowPrintsResolvedConfigThatReadsBack) {
  const std::string cfg = write("exp.toml", "[model]\nnetwork = \"mbf\"\n[optim]\nlr = 0.02\n");
  const Exec r =
      run("config show --config " + cfg + " --set optim.lr=0.2 --set train.batch_size=32", false);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[model]\nnetwork = \"mbf\"\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lr = 0.2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch_size = 32\n"), std::string::npos) << r.out;
  // The printed config is itself a valid config that resolves to the same text.
  const std::string resolved = write("resolved.toml", r.out);
  const Exec again = run("config show --config " + resolved, false);
  EXPECT_EQ(again.code, 0);
  EXPECT_EQ(again.out, r.out);

  const Exec origins = run("config show --origins --config " + cfg + " --set optim.lr=0.2", false);
  EXPECT_NE(origins.out.find("# --set"), std::string::npos) << origins.out;
  EXPECT_NE(origins.out.find("# " + cfg + ":2:11"), std::string::npos) << origins.out;
  EXPECT_NE(origins.out.find("# default"), std::string::npos) << origins.out;
}

TEST_F(CliTest, BadOverrideExitsTwo) {
  const Exec r = run("config show --set optim.momentum=2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("optim.momentum = 2.0: must be < 1"), std::string::npos) << r.out;
}

TEST_F(CliTest, ConfigKeysListsEveryKeyAndDocsCarryTheSameTable) {
  const Exec keys = run("config keys", false);
  ASSERT_EQ(keys.code, 0);
  for (const char* key : {"`model.network`", "`loss.margin_list`", "`optim.lr`",
                          "`train.batch_size`", "`dist.timeout_s`", "`log.level`"}) {
    EXPECT_NE(keys.out.find(key), std::string::npos) << key;
  }
  EXPECT_NE(keys.out.find("| `optim.lr` | float | `0.1` | > 0 | `lr` |"), std::string::npos)
      << keys.out;
  const std::string src = facetrain::test::env("FACETRAIN_SOURCE_DIR");
  ASSERT_FALSE(src.empty());
  std::ifstream doc(std::filesystem::path(src) / "docs" / "config.md");
  ASSERT_TRUE(doc.good());
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(keys.out), std::string::npos)
      << "docs/config.md is out of date: paste the output of `facetrain config keys` into it";
}

TEST_F(CliTest, EnvAloneIsAWorldOfOne) {
  const Exec r = run("env --check --check-mb 1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("world size 1 (local back end)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("correct on 1 rank(s)"), std::string::npos) << r.out;
}

}  // namespace
