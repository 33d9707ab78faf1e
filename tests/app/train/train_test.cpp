// The trainer end to end through the facetrain binary, under real mpirun processes, on
// synthetic faces: learning at 1 and 2 ranks, TensorBoard reading the event files, exact resume
// after kill -9, elastic resume at world 1 and 4 from a world-2 checkpoint, damaged
// checkpoints, NaN losses, and a failing, killed or stalled rank (timed from outside).

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "framework/core/compute_threads.h"
#include "framework/core/run_layout.h"
#include "models/backbone.h"
#include "models/state_dict.h"
#include "tests/support/process.h"

namespace facetrain {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const fs::path kWork = fs::absolute("train_test_work");

std::string facetrain(const std::string& args) {
  return test::env("FACETRAIN_BIN") + " " + args;
}
std::string mpirun(int np, const std::string& extra_env = "") {
  return test::env("FACETRAIN_MPIRUN") + " -np " + std::to_string(np) + " " + extra_env + " ";
}

// The trainer's report of its compute threads for `np` ranks on this host must follow its plan:
// the training thread gets the cores the process may run on shared by the ranks (mpirun may
// bind a rank to fewer cores than the host has), or OMP_NUM_THREADS when that is set.
void expect_thread_plan(const std::string& out, int np) {
  std::smatch m;
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (omp != nullptr && *omp != 0) {
    EXPECT_NE(
        out.find(fmt::format("intra-op threads: {} on the training thread (OMP_NUM_THREADS)", omp)),
        std::string::npos)
        << out;
    return;
  }
  ASSERT_TRUE(std::regex_search(out, m,
                                std::regex("intra-op threads: (\\d+) on the training thread "
                                           "\\((\\d+) cores? / (\\d+) ranks? on this host\\)")))
      << out;
  const int threads = std::stoi(m[1]), cores = std::stoi(m[2]), ranks = std::stoi(m[3]);
  EXPECT_EQ(ranks, np);
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, online_cores());
  EXPECT_EQ(threads, std::max(1, cores / ranks));
}

// A small recipe: mbf with a 128-d embedding on 24 synthetic identities.
std::string recipe(const std::string& output, const std::string& extra = "") {
  return fmt::format(R"([model]
network = "mbf"
embedding_size = 128
[loss]
margin_list = [1.0, 0.0, 0.35]
scale = 32.0
[data]
path = "{0}/train"
num_workers = 1
prefetch = 2
[optim]
lr = 0.1
warmup_epoch = 0
# A quadratic decay: the late steps' small rates keep the comparison of runs at different world
# sizes (per-rank BatchNorm batches of 4 to 16) within its tolerance.
poly_power = 2.0
[train]
batch_size = 8
num_epoch = 2
seed = 7
frequent = 1
verbose = 100000
checkpoint_every = 4
checkpoint_keep = 10
output = "{1}"
[eval]
val_targets = []
batch_size = 32
[dist]
timeout_s = 60.0
{2}
)",
                     kWork.string(), output, extra);
}

fs::path write_recipe(const std::string& name, const std::string& text) {
  const fs::path p = kWork / (name + ".toml");
  std::ofstream(p) << text;
  return p;
}

// step → the values logged at it (the last line wins: a resumed run logs some steps twice).
std::map<std::int64_t, nlohmann::json> metrics(const fs::path& run) {
  std::map<std::int64_t, nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    auto& slot = out[j.at("step").get<std::int64_t>()];
    for (const auto& [k, v] : j.items()) slot[k] = v;
  }
  return out;
}

std::map<std::string, at::Tensor> final_weights(const fs::path& run) {
  return models::read_state_dict(fs::canonical(run / "checkpoints" / "latest") / "backbone.pt");
}

double max_abs_diff(const std::map<std::string, at::Tensor>& a,
                    const std::map<std::string, at::Tensor>& b) {
  double worst = 0;
  for (const auto& [k, t] : a) {
    if (!t.is_floating_point()) continue;
    worst = std::max(worst, (t - b.at(k)).abs().max().item<double>());
  }
  return worst;
}

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(kWork / "train" / "manifest.json")) return;
    fs::remove_all(kWork);
    fs::create_directories(kWork);
    const auto r = test::run(facetrain(fmt::format(
        "data synth --identities 24 --per-identity 8 --out {0}/train --pairs 200 --pairs-out "
        "{0}/heldout.h5 --heldout-identities 12 --seed 3",
        kWork.string())));
    ASSERT_EQ(r.code, 0) << r.out;
  }

  // Runs a training; returns (exit code, output, seconds).
  static std::tuple<int, std::string, double> train(int np, const fs::path& config,
                                                    const std::string& args = "",
                                                    const std::string& env = "") {
    const auto t0 = Clock::now();
    const auto r =
        test::run(mpirun(np, env) + facetrain("train --config " + config.string() + " " + args));
    return {r.code, r.out, std::chrono::duration<double>(Clock::now() - t0).count()};
  }
};

TEST_F(Train, RecipesValidate) {
  const fs::path dir = fs::path(test::env("FACETRAIN_SOURCE_DIR")) / "experiments";
  const std::map<std::string, std::string> expected = {
      {"ms1mv3_r50", "num_classes = 93431"},
      {"ms1mv3_r100", "num_classes = 93431"},
      {"ms1mv3_mbf", "network = \"mbf\""},
      {"glint360k_r100", "margin_list = [1.0, 0.0, 0.4]"},
      {"webface42m_r100", "sample_rate = 0.2"},
      {"synthetic_mbf", "network = \"mbf\""},
      {"wf42m_vit_t", "optimizer = \"adamw\""},
      {"wf42m_vit_b", "gradient_acc = 12"},
      {"synthetic_vit_t", "network = \"vit_t\""}};
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++seen;
    const auto r = test::run(facetrain("config show --config " + entry.path().string()), false);
    EXPECT_EQ(r.code, 0) << entry.path() << "\n" << r.out;
    const auto it = expected.find(entry.path().stem().string());
    ASSERT_NE(it, expected.end()) << "a recipe this test does not know: " << entry.path();
    EXPECT_NE(r.out.find(it->second), std::string::npos) << entry.path() << "\n" << r.out;
  }
  EXPECT_EQ(seen, static_cast<int>(expected.size()));
}

// Two ranks learning (and beating the untrained model) is the end-to-end test's case.
TEST_F(Train, LearnsAtOneRankAndTensorBoardReadsTheEvents) {
  // The untrained model: the trainer's initialisation (seeded by train.seed).
  at::manual_seed(7);
  auto untrained = models::make_backbone("mbf", models::BackboneOptions().embedding_size(128));
  models::write_state_dict(kWork / "untrained.pt", models::state_dict(*untrained));
  const auto base =
      test::run(facetrain(fmt::format("eval --weights {0}/untrained.pt --network mbf --bench "
                                      "{0}/heldout.h5 --out {0}/untrained.json",
                                      kWork.string())));
  ASSERT_EQ(base.code, 0) << base.out;
  const double untrained_accuracy = nlohmann::json::parse(std::ifstream(kWork / "untrained.json"))
                                        .at("verification")
                                        .at(0)
                                        .at("accuracy")
                                        .get<double>();
  for (const int np : {1}) {
    const fs::path run = kWork / fmt::format("learn_np{}", np);
    fs::remove_all(run);
    std::string text =
        std::regex_replace(recipe(run.string()), std::regex("num_epoch = 2"), "num_epoch = 5");
    text = std::regex_replace(text, std::regex("val_targets = \\[\\]"),
                              "val_targets = [\"" + (kWork / "heldout.h5").string() + "\"]");
    const auto cfg = write_recipe(fmt::format("learn_np{}", np),
                                  std::regex_replace(text, std::regex("batch_size = 8\n"),
                                                     fmt::format("batch_size = {}\n", 16 / np)));
    const auto [code, out, secs] = train(np, cfg);
    ASSERT_EQ(code, 0) << out;
    expect_thread_plan(out, np);
    const auto m = metrics(run);
    ASSERT_EQ(m.rbegin()->first, 60);  // 192 images / 16 per step = 12 steps x 5 epochs
    double first = 0, last = 0;
    for (std::int64_t s = 1; s <= 6; ++s) first += m.at(s).at("last_loss").get<double>() / 6;
    for (std::int64_t s = 55; s <= 60; ++s) last += m.at(s).at("last_loss").get<double>() / 6;
    EXPECT_LT(last, 0.8 * first) << "np " << np << ": the loss did not fall";
    const double accuracy = m.at(60).at("val_heldout_accuracy").get<double>();
    EXPECT_GT(accuracy, untrained_accuracy + 0.05)
        << "np " << np << ": held-out accuracy " << accuracy << ", untrained "
        << untrained_accuracy;
    std::cout << "np " << np << ": loss " << first << " -> " << last << ", held-out accuracy "
              << untrained_accuracy << " -> " << accuracy << " (" << secs << " s)\n";
  }
  // TensorBoard's own reader sees the same losses as the JSONL file.
  const auto tb =
      test::run_python("app/train/python_tensorboard.py " + (kWork / "learn_np1").string());
  ASSERT_EQ(tb.code, 0) << tb.out;
  const auto m = metrics(kWork / "learn_np1");
  int checked = 0;
  std::istringstream lines(tb.out);
  for (std::string tag; lines >> tag;) {
    std::int64_t step;
    double value;
    lines >> step >> value;
    if (tag == "train/loss") {
      EXPECT_NEAR(value, m.at(step).at("loss").get<double>(), 1e-4) << step;
      ++checked;
    }
    if (tag == "val/heldout_accuracy") {
      EXPECT_NEAR(value, m.at(step).at("val_heldout_accuracy").get<double>(), 1e-6);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 61);
}

// The recipe with AdaFace, a head with running statistics (the embedding norms' mean and
// deviation, factor 0.2) that a checkpoint must carry for the resume to be exact.
std::string adaface_recipe(const std::string& output) {
  return std::regex_replace(recipe(output), std::regex("scale = 32.0\n"),
                            "scale = 32.0\nhead = \"adaface\"\nadaface_alpha = 0.2\n");
}

TEST_F(Train, ExactResumeAfterKillAndElasticResume) {
  // A: 24 steps straight at world 2. B: the same, killed (-9) by a rank at step 6, resumed.
  const fs::path a = kWork / "straight", b = kWork / "killed";
  fs::remove_all(a);
  fs::remove_all(b);
  const auto [code_a, out_a, secs_a] =
      train(2, write_recipe("straight", adaface_recipe(a.string())));
  ASSERT_EQ(code_a, 0) << out_a;
  expect_thread_plan(out_a, 2);
  const auto config_b = write_recipe("killed", adaface_recipe(b.string()));
  EXPECT_TRUE(fs::exists(a / "checkpoints" / "step-0000004" / "head.pt"));
  const auto [code_k, out_k, secs_k] = train(2, config_b, "", "-x FACETRAIN_FAULT=kill@1:6");
  ASSERT_NE(code_k, 0) << out_k;
  ASSERT_TRUE(fs::exists(b / "checkpoints" / "step-0000004"));
  ASSERT_FALSE(fs::exists(b / "checkpoints" / "step-0000008"));
  const auto [code_b, out_b, secs_b] = train(2, config_b, "--resume auto");
  ASSERT_EQ(code_b, 0) << out_b;
  EXPECT_NE(out_b.find("resumed from"), std::string::npos) << out_b;
  const auto ma = metrics(a), mb = metrics(b);
  ASSERT_EQ(ma.rbegin()->first, 24);
  ASSERT_EQ(mb.rbegin()->first, 24);
  for (std::int64_t s = 1; s <= 24; ++s) {
    EXPECT_NEAR(mb.at(s).at("last_loss").get<double>(), ma.at(s).at("last_loss").get<double>(),
                1e-7)
        << "step " << s;
  }
  EXPECT_LE(max_abs_diff(final_weights(a), final_weights(b)), 1e-7);

  // Elastic: A's step-8 checkpoint (world 2, 8 per rank) continued at world 1 (16 per rank) and
  // world 4 (4 per rank), the same global batch: the run continues at step 9 with the same
  // samples and ends with the same step count; the classifier is re-sliced into one file per
  // rank. The losses follow A's but are not equal: BatchNorm normalises over each rank's batch.
  for (const int np : {1, 4}) {
    const fs::path c = kWork / fmt::format("elastic_np{}", np);
    fs::remove_all(c);
    const auto config =
        write_recipe(fmt::format("elastic_np{}", np),
                     std::regex_replace(adaface_recipe(c.string()), std::regex("batch_size = 8\n"),
                                        fmt::format("batch_size = {}\n", 16 / np)));
    const auto [code, out, secs] =
        train(np, config, "--resume " + (a / "checkpoints" / "step-0000008").string());
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("(step 8, epoch 0, 128 samples of it done; written at world 2, now " +
                       std::to_string(np) + ")"),
              std::string::npos)
        << out;
    const auto mc = metrics(c);
    EXPECT_EQ(mc.begin()->first, 9) << "the run must continue at step 9";
    EXPECT_EQ(mc.rbegin()->first, 24);
    double mean_a = 0, mean_c = 0;
    for (std::int64_t s = 9; s <= 24; ++s) {
      mean_a += ma.at(s).at("last_loss").get<double>() / 16;
      mean_c += mc.at(s).at("last_loss").get<double>() / 16;
    }
    EXPECT_NEAR(mean_c, mean_a, 0.15 * mean_a) << "world " << np;
    int fc_files = 0;
    for (const auto& e : fs::directory_iterator(fs::canonical(c / "checkpoints" / "latest"))) {
      fc_files += e.path().filename().string().rfind("fc-", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(fc_files, np);
  }
}

TEST_F(Train, DamagedCheckpointsAndBadInput) {
  const fs::path run = kWork / "damaged";
  fs::remove_all(run);
  const auto config = write_recipe("damaged", recipe(run.string(), ""));
  const std::string short_run = "--set train.num_epoch=1";
  auto [code, out, secs] = train(1, config, short_run);
  ASSERT_EQ(code, 0) << out;
  // A fresh start over an existing run is refused.
  std::tie(code, out, secs) = train(1, config, short_run);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--resume auto"), std::string::npos) << out;
  // Truncate the newest checkpoint's backbone: auto skips it with a warning, a path is an error.
  const fs::path newest = fs::canonical(run / "checkpoints" / "latest");
  fs::resize_file(newest / "backbone.pt", 100);
  std::tie(code, out, secs) = train(1, config, short_run + " --resume auto");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("skipping damaged checkpoint " + newest.string()), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + (run / "checkpoints" / "step-0000020").string()),
            std::string::npos)
      << out;
  fs::resize_file(newest / "backbone.pt", 100);  // the resumed run rewrote it; damage it again
  std::tie(code, out, secs) = train(1, config, "--resume " + newest.string());
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("not a usable checkpoint"), std::string::npos) << out;
  // A state.json that is not an object, or holds a negative position, names the file and key.
  const fs::path older = run / "checkpoints" / "step-0000020";
  std::string state;
  {
    std::ifstream in(older / "state.json");
    state.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (const auto& [text, message] :
       {std::pair<std::string, std::string>{"[1]\n", "not a facetrain checkpoint state"},
        {std::regex_replace(state, std::regex("\"consumed\": [0-9]+"), "\"consumed\": -5"),
         "key \"consumed\" = -5 is out of range"},
        {std::regex_replace(state, std::regex("\"world_size\": [0-9]+"), "\"world_size\": 1e300"),
         "key \"world_size\" has the wrong type (number, expected an integer)"}}) {
    std::ofstream(older / "state.json") << text;
    std::tie(code, out, secs) = train(1, config, "--resume " + older.string());
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find((older / "state.json").string() + ": " + message), std::string::npos)
        << out;
  }
  std::ofstream(older / "state.json") << state;
  // Configuration and data errors.
  std::tie(code, out, secs) = train(1, config, "--set train.num_epochs=3");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("did you mean 'train.num_epoch'"), std::string::npos) << out;
  std::tie(code, out, secs) =
      train(1, config, "--output " + (kWork / "other").string() + " --set data.path=/nonexistent");
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("/nonexistent"), std::string::npos) << out;

  // 17 images at 8 per step: two full steps an epoch, the odd image sits each epoch out (no
  // one-image batch for BatchNorm). A batch of one, or a global batch larger than the data, is
  // a configuration error.
  const fs::path odd = kWork / "odd17";
  for (const char* dir : {"odd17", "odd_run", "odd_one", "odd_big"}) fs::remove_all(kWork / dir);
  ASSERT_EQ(test::run(facetrain("data synth --identities 17 --per-identity 1 --out " +
                                odd.string() + " --seed 4"))
                .code,
            0);
  const std::string odd_data = " --set data.path=" + odd.string() + " --set train.num_epoch=3";
  std::tie(code, out, secs) =
      train(1, config, "--output " + (kWork / "odd_run").string() + odd_data);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("6 steps (2 per epoch x 3)"), std::string::npos) << out;
  std::tie(code, out, secs) = train(
      1, config, "--output " + (kWork / "odd_one").string() + odd_data + " --set train.batch_size=1");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("train.batch_size"), std::string::npos) << out;
  std::tie(code, out, secs) = train(2, config,
                                    "--output " + (kWork / "odd_big").string() + odd_data +
                                        " --set train.batch_size=9");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("17 samples, fewer than one global batch of 18 (9 per rank x 2 ranks)"),
            std::string::npos)
      << out;
}

// Alone (no launcher, no OMP_NUM_THREADS), the training thread takes every core the process may
// run on; train.cpu_threads overrides that.
TEST_F(Train, AloneTheTrainingThreadUsesEveryCore) {
  for (const int configured : {0, 1}) {
    const fs::path run = kWork / fmt::format("alone_{}", configured);
    fs::remove_all(run);
    const auto config = write_recipe(fmt::format("alone_{}", configured), recipe(run.string()));
    const auto r = test::run(fmt::format("env -u OMP_NUM_THREADS {}",
                                         facetrain(fmt::format("train --config {} --set "
                                                               "train.num_epoch=1 --set "
                                                               "train.cpu_threads={}",
                                                               config.string(), configured))));
    ASSERT_EQ(r.code, 0) << r.out;
    const int cores = available_cores();
    const std::string expected =
        configured == 0
            ? fmt::format(
                  "intra-op threads: {0} on the training thread ({0} core{1} / 1 rank on "
                  "this host)",
                  cores, cores == 1 ? "" : "s")
            : "intra-op threads: 1 on the training thread (train.cpu_threads)";
    EXPECT_NE(r.out.find(expected), std::string::npos) << r.out;
  }
}

TEST_F(Train, NonFiniteLossesStopTheRun) {
  const fs::path run = kWork / "nan";
  fs::remove_all(run);
  const auto config = write_recipe("nan", recipe(run.string(), ""));
  const auto [code, out, secs] =
      train(2, config, "--set train.max_nonfinite=3", "-x FACETRAIN_FAULT=nan@0:2");
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(
      out.find(
          "not finite for 3 steps in a row (train.max_nonfinite), the last at step 4 on rank 0"),
      std::string::npos)
      << out;
}

// Seconds since the epoch now, and at a file's last modification (the same clock).
double wall_seconds() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
double modification_seconds(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
}

// The checkpoint each rank's log says it resumed from ("" when it started from scratch).
std::string resumed_from(const fs::path& run, int rank) {
  std::ifstream in(RunLayout{run}.log(rank));
  std::string line, from;
  const std::regex re("resumed from (\\S+) \\(step");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, re)) from = m[1];
  }
  return from;
}

// The failure matrix: one rank of two throws, is killed (-9) or stops (SIGSTOP) at start-up,
// in the middle of a step (between its forward and its backward, whose gradient all-reduce the
// other rank waits in), while a checkpoint is half written, during verification and at
// shutdown. Each time the whole job ends within dist.timeout_s + 10 s (timed from outside), and
// a relaunch with --resume auto finishes the run from a complete checkpoint, the same on both
// ranks.
TEST_F(Train, FailureMatrixEndsTheJobAndLosesNothing) {
  const double timeout = 5.0;
  // 48 images and a small verification set, so that each of the 30 runs takes seconds.
  const fs::path data = kWork / "matrix_faces", pairs = kWork / "matrix_faces_pairs.h5";
  if (!fs::exists(pairs)) {
    const auto r = test::run(facetrain(
        fmt::format("data synth --identities 6 --per-identity 8 --out {0} --pairs 10 "
                    "--pairs-out {1} --heldout-identities 4 --seed 5",
                    data.string(), pairs.string())));
    ASSERT_EQ(r.code, 0) << r.out;
  }
  // 6 × 8 images at 4 per rank: 6 steps; checkpoints at 2, 4, 6; verification at 3 and 6.
  const std::string sets = fmt::format(
      "--set data.path={} --set train.batch_size=4 --set train.num_epoch=1 "
      "--set train.checkpoint_every=2 --set train.verbose=3 --set 'eval.val_targets=[\"{}\"]'",
      data.string(), pairs.string());
  const fs::path fired = kWork / "matrix_fired";
  for (const char* kind : {"throw", "kill", "stall"}) {
    for (const char* when : {"startup", "midstep", "checkpoint", "verification", "shutdown"}) {
      const std::string fault = fmt::format("{}@1:{}", kind, when);
      const fs::path run = kWork / "matrix";
      fs::remove_all(run);
      fs::remove(fired);
      const auto config = write_recipe("matrix", recipe(run.string(), ""));
      // FACETRAIN_FAULT_ONCE's file is created the moment the fault fires: the bound runs from
      // there to the end of the job.
      const auto [code, out, secs] = train(
          2, config, fmt::format("{} --set dist.timeout_s={}", sets, timeout),
          fmt::format("-x FACETRAIN_FAULT={} -x FACETRAIN_FAULT_ONCE={}", fault, fired.string()));
      const double ended = wall_seconds();
      EXPECT_NE(code, 0) << fault << "\n" << out;
      ASSERT_TRUE(fs::exists(fired)) << fault << ": the fault did not fire\n" << out;
      const double after_fault = ended - modification_seconds(fired);
      EXPECT_LT(after_fault, timeout + 10) << fault << "\n" << out;
      if (std::string(kind) == "throw") {
        EXPECT_NE(out.find(std::string("injected fault on rank 1 at ") + when), std::string::npos)
            << fault << "\n"
            << out;
      }
      // The relaunch (no fault: its file exists) ends the run; both ranks resumed from the same
      // checkpoint, which must have been complete (a damaged one would be skipped and named).
      const auto [code2, out2, secs2] =
          train(2, config, sets + " --resume auto",
                "-x FACETRAIN_FAULT=" + fault + " -x FACETRAIN_FAULT_ONCE=" + fired.string());
      ASSERT_EQ(code2, 0) << fault << " relaunch\n" << out2;
      EXPECT_EQ(out2.find("skipping damaged checkpoint"), std::string::npos) << fault << "\n"
                                                                             << out2;
      EXPECT_EQ(resumed_from(run, 0), resumed_from(run, 1)) << fault;
      EXPECT_EQ(metrics(run).rbegin()->first, 6) << fault;
      EXPECT_TRUE(fs::exists(fs::canonical(run / "checkpoints" / "latest") / "state.json"));
      std::cout << fault << ": the job ended with code " << code << ", " << after_fault
                << " s after the fault (" << secs << " s in all); the relaunch resumed from '"
                << resumed_from(run, 0) << "'\n";
    }
  }
}

}  // namespace
}  // namespace facetrain
