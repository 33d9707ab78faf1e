#include "framework/config/config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "framework/core/error.h"
#include "framework/core/strings.h"
#include "tests/support/thrown_message.h"

namespace facetrain {
namespace {

template <typename F>
std::string config_error(F&& f) {
  return test::thrown_message<ConfigError>(std::forward<F>(f));
}

TEST(StringsTest, EditDistanceClosedForms) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("lr", ""), 2u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("batch_size", "batch_sise"), 1u);
  EXPECT_EQ(nearest_word("sdg", {"sgd", "adamw"}), "sgd");
  EXPECT_EQ(nearest_word("x", {}), "");
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
}

TEST(ConfigTest, DefaultsFollowArcfaceTorchBase) {
  const Config cfg;
  EXPECT_EQ(cfg.get_float_list("loss.margin_list"), (std::vector<double>{1.0, 0.5, 0.0}));
  EXPECT_EQ(cfg.get_int("model.embedding_size"), 512);
  EXPECT_DOUBLE_EQ(cfg.get_float("loss.sample_rate"), 1.0);
  EXPECT_EQ(cfg.get_int("train.batch_size"), 128);
  EXPECT_EQ(cfg.get_string("optim.optimizer"), "sgd");
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.lr"), 0.1);
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.momentum"), 0.9);
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.weight_decay"), 5e-4);
  EXPECT_EQ(cfg.get_int("train.verbose"), 2000);
  EXPECT_EQ(cfg.get_int("train.frequent"), 10);
  EXPECT_EQ(cfg.get_int("train.seed"), 2048);
  EXPECT_EQ(cfg.get_int("train.gradient_acc"), 1);
  EXPECT_EQ(cfg.get_string_list("eval.val_targets"),
            (std::vector<std::string>{"lfw", "cfp_fp", "agedb_30"}));
  EXPECT_EQ(cfg.origin("optim.lr"), "default");
}

TEST(ConfigTest, EveryArcfaceKeyNameAppearsOnce) {
  std::vector<std::string> seen;
  for (const auto& k : ConfigSchema::instance().keys()) {
    if (k.arcface_key.empty()) continue;
    EXPECT_EQ(std::count(seen.begin(), seen.end(), k.arcface_key), 0) << k.arcface_key;
    seen.push_back(k.arcface_key);
  }
  for (const char* name : {"margin_list",
                           "network",
                           "embedding_size",
                           "sample_rate",
                           "interclass_filtering_threshold",
                           "fp16",
                           "batch_size",
                           "optimizer",
                           "lr",
                           "momentum",
                           "weight_decay",
                           "verbose",
                           "frequent",
                           "gradient_acc",
                           "seed",
                           "num_workers",
                           "num_classes",
                           "num_epoch",
                           "warmup_epoch",
                           "val_targets",
                           "rec",
                           "num_image",
                           "output"}) {
    EXPECT_NE(std::find(seen.begin(), seen.end(), name), seen.end()) << name;
  }
}

TEST(ConfigTest, ReadsFileValuesWithOrigins) {
  const Config cfg = Config::from_string(R"(
[model]
network = "mbf"
embedding_size = 256

[optim]
lr = 1          # an integer where a float is expected is fine
[loss]
margin_list = [1.0, 0.0, 0.4]
[eval]
val_targets = ["lfw"]
[log]
tensorboard = false
)",
                                         "recipe.toml");
  EXPECT_EQ(cfg.get_string("model.network"), "mbf");
  EXPECT_EQ(cfg.get_int("model.embedding_size"), 256);
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.lr"), 1.0);
  EXPECT_EQ(cfg.get_float_list("loss.margin_list"), (std::vector<double>{1.0, 0.0, 0.4}));
  EXPECT_EQ(cfg.get_string_list("eval.val_targets"), std::vector<std::string>{"lfw"});
  EXPECT_FALSE(cfg.get_bool("log.tensorboard"));
  EXPECT_EQ(cfg.origin("optim.lr"), "recipe.toml:7:6");
  EXPECT_EQ(cfg.origin("train.batch_size"), "default");
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndNearestKey) {
  const std::string msg =
      config_error([] { Config::from_string("[optim]\nlr = 0.1\nmomentun = 0.9\n", "exp.toml"); });
  EXPECT_NE(msg.find("exp.toml:3:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'optim.momentun'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'optim.momentum'"), std::string::npos) << msg;
}

TEST(ConfigTest, ArcfaceStyleTopLevelKeySuggestsItsSection) {
  const std::string msg = config_error([] { Config::from_string("lr = 0.1\n", "base.toml"); });
  EXPECT_NE(msg.find("base.toml:1:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'optim.lr'"), std::string::npos) << msg;
  const std::string section =
      config_error([] { Config::from_string("[optimm]\nlr = 0.1\n", "base.toml"); });
  EXPECT_NE(section.find("did you mean 'optim.lr'"), std::string::npos) << section;
}

TEST(ConfigTest, WrongTypeNamesKeyExpectedAndFound) {
  const std::string msg =
      config_error([] { Config::from_string("[train]\nbatch_size = \"128\"\n", "exp.toml"); });
  EXPECT_NE(msg.find("exp.toml:2:14"), std::string::npos) << msg;
  EXPECT_NE(msg.find("key 'train.batch_size': expected integer, found string"), std::string::npos)
      << msg;
  const std::string fl =
      config_error([] { Config::from_string("[train]\nbatch_size = 12.5\n", "exp.toml"); });
  EXPECT_NE(fl.find("expected integer, found float"), std::string::npos) << fl;
  const std::string list =
      config_error([] { Config::from_string("[loss]\nmargin_list = [\"a\"]\n", "exp.toml"); });
  EXPECT_NE(list.find("expected array of floats, found array of strings"), std::string::npos)
      << list;
}

TEST(ConfigTest, RangesChoicesAndLengthsAreChecked) {
  EXPECT_NE(config_error([] { Config::from_string("[optim]\nlr = 0\n", "x"); }).find("must be > 0"),
            std::string::npos);
  EXPECT_NE(config_error([] {
              Config::from_string("[optim]\nmomentum = 1.0\n", "x");
            }).find("must be < 1"),
            std::string::npos);
  const std::string choice =
      config_error([] { Config::from_string("[optim]\noptimizer = \"sdg\"\n", "x"); });
  EXPECT_NE(choice.find("must be one of sgd, adamw (did you mean \"sgd\"?)"), std::string::npos)
      << choice;
  EXPECT_NE(config_error([] {
              Config::from_string("[loss]\nmargin_list = [1.0, 0.5]\n", "x");
            }).find("must have 3 elements, found 2"),
            std::string::npos);
  EXPECT_NE(config_error([] {
              Config::from_string("[loss]\nsample_rate = 1.5\n", "x");
            }).find("must be <= 1"),
            std::string::npos);
}

TEST(ConfigTest, InvalidTomlReportsPosition) {
  const std::string msg = config_error([] { Config::from_string("[optim\nlr = 1\n", "bad.toml"); });
  EXPECT_NE(msg.find("bad.toml:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid TOML"), std::string::npos) << msg;
}

// `cp` in UTF-8 (the test's own encoder, independent of the code under test).
std::string utf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// Property: a string of any Unicode scalar values (control characters, DEL, quotes, backslashes,
// astral planes) set in a configuration survives to_toml() and reading back, unchanged. The
// strings enter through TOML's \UXXXXXXXX escapes, so no encoder of the project's is trusted.
TEST(ConfigTest, StringsOfEveryCodePointRoundTrip) {
  std::mt19937 rng(20261205);
  std::uniform_int_distribution<int> length(0, 24), kind(0, 3);
  std::uniform_int_distribution<std::uint32_t> control(0, 0x20), bmp(0x21, 0xFFFF),
      any(0, 0x10FFFF);
  for (int trial = 0; trial < 500; ++trial) {
    std::string expected, escaped;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) {
      const int k = kind(rng);
      char32_t cp = k == 0 ? control(rng) : k == 1 ? (i % 2 ? 0x7F : U'"') : k == 2 ? bmp(rng) : any(rng);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = U'\\';  // surrogates are no scalar values
      expected += utf8(cp);
      escaped += fmt::format("\\U{:08X}", static_cast<std::uint32_t>(cp));
    }
    const Config first =
        Config::from_string("[train]\noutput = \"" + escaped + "\"\n", "property");
    ASSERT_EQ(first.get_string("train.output"), expected) << "trial " << trial;
    const std::string toml = first.to_toml();
    const Config again = Config::from_string(toml, "to_toml()");
    EXPECT_EQ(again.get_string("train.output"), expected) << "trial " << trial << "\n" << toml;
    EXPECT_TRUE(again == first) << "trial " << trial;
  }
}

TEST(ConfigTest, MissingFileIsAConfigError) {
  const std::string msg = config_error([] { Config::from_file("/nonexistent/x.toml"); });
  EXPECT_NE(msg.find("/nonexistent/x.toml: cannot open"), std::string::npos) << msg;
}

TEST(ConfigTest, OverridesParseTomlValuesBareWordsAndLists) {
  Config cfg;
  cfg.apply_overrides({"optim.lr=0.2", "model.network=mbf", "train.batch_size = 64",
                       "eval.val_targets=lfw,cfp_fp", "loss.margin_list=1.0,0.0,0.35",
                       "log.tensorboard=false", "data.path=\"/data/ms1m\""});
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.lr"), 0.2);
  EXPECT_EQ(cfg.get_string("model.network"), "mbf");
  EXPECT_EQ(cfg.get_int("train.batch_size"), 64);
  EXPECT_EQ(cfg.get_string_list("eval.val_targets"), (std::vector<std::string>{"lfw", "cfp_fp"}));
  EXPECT_EQ(cfg.get_float_list("loss.margin_list"), (std::vector<double>{1.0, 0.0, 0.35}));
  EXPECT_FALSE(cfg.get_bool("log.tensorboard"));
  EXPECT_EQ(cfg.get_string("data.path"), "/data/ms1m");
  EXPECT_EQ(cfg.origin("optim.lr"), "--set");
}

TEST(ConfigTest, BadOverridesAreConfigErrors) {
  Config cfg;
  EXPECT_NE(config_error([&] {
              cfg.apply_override("optim.lrr=0.2");
            }).find("unknown key 'optim.lrr'; did you mean 'optim.lr'"),
            std::string::npos);
  EXPECT_NE(config_error([&] {
              cfg.apply_override("train.batch_size=big");
            }).find("expected integer, found a bare word"),
            std::string::npos);
  EXPECT_NE(
      config_error([&] { cfg.apply_override("optim.lr"); }).find("expected section.key=value"),
      std::string::npos);
  EXPECT_NE(config_error([&] {
              cfg.apply_override("loss.margin_list=1,x,2");
            }).find("expected array of floats"),
            std::string::npos);
  // A rejected override leaves the value as it was.
  EXPECT_DOUBLE_EQ(cfg.get_float("optim.lr"), 0.1);
}

TEST(ConfigTest, ResolvedTomlRoundTrips) {
  Config cfg;
  cfg.apply_overrides({"optim.lr=0.123456789012345", "model.network=mbf", "loss.scale=30",
                       "eval.val_targets=a\"b,c", "data.path=C:\\data"});
  const Config back = Config::from_string(cfg.to_toml(), "resolved.toml");
  EXPECT_TRUE(back == cfg) << cfg.to_toml();
  EXPECT_NE(cfg.to_toml().find("scale = 30.0"), std::string::npos);
}

TEST(ConfigTest, SaveWritesAtomically) {
  const auto dir = std::filesystem::temp_directory_path() / "facetrain_config_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "config.toml";
  Config cfg;
  cfg.apply_override("train.seed=7");
  cfg.save(path);
  EXPECT_TRUE(Config::from_file(path) == cfg);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename(), "config.toml") << "left behind: " << entry.path();
  }
  std::filesystem::remove_all(dir);
}

TEST(ConfigTest, ProgrammingErrorsOnWrongAccessor) {
  const Config cfg;
  EXPECT_THROW(cfg.get_int("optim.lr"), ConfigError);
  EXPECT_THROW(cfg.get_float("optim.nope"), ConfigError);
}

}  // namespace
}  // namespace facetrain
