#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "app/cli/commands.h"
#include "app/eval/evaluate.h"
#include "app/eval/report.h"
#include "data/shards/sharded_dataset.h"
#include "framework/core/compute_threads.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "models/checkpoint_source.h"

namespace facetrain::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint;
  std::string weights;
  std::string network;
  std::vector<std::string> bench;
  std::string gallery;
  std::string probe;
  std::string out;
  std::string roc_dir;
  std::int64_t batch_size = 64;
  std::string backend = "auto";
  double timeout_s = 600.0;
};

void print_verification(const eval::VerificationEntry& e) {
  const auto& r = e.result;
  fmt::print("{} ({}): {} pairs ({} same)\n", e.name, e.file.string(), r.num_pairs, r.num_same);
  fmt::print("  {:<14} {:.5f} ± {:.5f}   (threshold {:.3f})\n", "accuracy", r.accuracy,
             r.accuracy_std, r.best_threshold);
  fmt::print("  {:<14} {:.5f} ± {:.5f}   (FAR {:.5f})\n", "VAL@FAR=1e-3", r.val_at_far_1e3,
             r.val_std, r.far_at_val);
  for (const auto& [far, tar] : r.tar_at_far) {
    fmt::print("  {:<14} {:.5f}\n", fmt::format("TAR@FAR={:.0e}", far), tar);
  }
  fmt::print("  {:<14} {:.5f}\n", "AUC", r.auc);
  fmt::print("  {:<14} {:.5f}\n", "EER", r.eer);
  fmt::print("  {:<14} {:.4f}\n", "XNorm", r.xnorm);
}

int run_eval(const EvalArgs& args, Context& ctx) {
  if (args.bench.empty() && args.gallery.empty()) {
    throw UsageError("eval: give --bench FILE... and/or --gallery DIR --probe DIR");
  }
  if (args.gallery.empty() != args.probe.empty()) {
    throw UsageError("eval: --gallery and --probe go together");
  }
  const auto& env = ctx.start_mpi().env();
  auto comm = dist::make_communicator(args.backend, env, args.timeout_s);
  // Ranks sharing a host share its cores.
  use_compute_threads(
      plan_compute_threads(0, std::getenv("OMP_NUM_THREADS"), available_cores(), env.local_size)
          .intra_op);
  const bool lead = comm->rank() == 0;
  auto loaded = models::load_backbone(args.checkpoint, args.weights, args.network);
  auto& backbone = *loaded.backbone;

  eval::EvalReport report;
  report.network = loaded.network;
  report.weights = loaded.weights.string();
  report.embedding_size = backbone.embedding_size();
  report.batch_size = args.batch_size;
  report.world_size = comm->size();
  if (lead && !args.roc_dir.empty()) fs::create_directories(args.roc_dir);
  for (const auto& file : args.bench) {
    eval::VerificationEntry entry;
    entry.file = file;
    entry.name = fs::path(file).stem().string();
    log::info("evaluating {} on {} rank(s)", file, comm->size());
    entry.result = eval::evaluate_verification_set(backbone, file, args.batch_size, comm.get());
    if (!args.roc_dir.empty()) {
      entry.roc_csv = fs::path(args.roc_dir) / (entry.name + ".roc.csv");
      if (lead) eval::write_roc_csv(entry.roc_csv, entry.result.roc);
    }
    if (lead) print_verification(entry);
    report.verification.push_back(std::move(entry));
  }
  if (!args.gallery.empty()) {
    const data::ShardedDataset gallery(args.gallery);
    const data::ShardedDataset probe(args.probe);
    log::info("identification: {} gallery and {} probe images", gallery.size(), probe.size());
    const at::Tensor g = eval::embed_dataset(backbone, gallery, args.batch_size, comm.get());
    const at::Tensor p = eval::embed_dataset(backbone, probe, args.batch_size, comm.get());
    eval::IdentificationEntry id{args.gallery, args.probe,
                                 eval::identify(g, gallery.labels(), p, probe.labels())};
    if (lead) {
      const auto& r = id.result;
      fmt::print("identification ({} gallery, {} probes, {} without a gallery match)\n",
                 r.num_gallery, r.num_probes, r.num_probes_without_match);
      fmt::print("  {:<14} {:.5f}\n  {:<14} {:.5f}\n  {:<14} {:.5f}\n", "rank-1", r.rank1, "rank-5",
                 r.rank5, "mAP", r.mean_average_precision);
    }
    report.identification = std::move(id);
  }
  if (lead && !args.out.empty()) {
    eval::write_report(args.out, report);
    log::info("report -> {}", args.out);
  }
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, Context& ctx, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "eval",
      "Evaluate a backbone: 1:1 verification on verification sets (insightface's 10-fold "
      "accuracy, VAL@FAR=1e-3, ROC, AUC, EER, TAR@FAR) and 1:N identification (rank-1, rank-5, "
      "mAP); works alone or on several MPI ranks");
  auto args = std::make_shared<EvalArgs>();
  add_backbone_options(sub, args->checkpoint, args->weights, args->network);
  sub->add_option("--bench", args->bench,
                  "Verification sets (.h5, see `data pack --from bin`), one or more")
      ->check(CLI::ExistingFile);
  sub->add_option("--gallery", args->gallery, "Identification gallery: a dataset folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--probe", args->probe, "Identification probes: a dataset folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--out", args->out, "JSON report (written by rank 0, atomically)");
  sub->add_option("--roc-dir", args->roc_dir, "Folder for one NAME.roc.csv per set");
  sub->add_option("--batch-size", args->batch_size, "Images per forward pass")
      ->check(CLI::PositiveNumber);
  sub->add_option("--backend", args->backend, "auto, local or mpi")
      ->check(CLI::IsMember({"auto", "local", "mpi"}));
  sub->add_option("--timeout", args->timeout_s, "Deadline of each collective in seconds")
      ->check(CLI::PositiveNumber);
  out.emplace_back(sub, [&ctx, args] { return run_eval(*args, ctx); });
}

}  // namespace facetrain::cli
