#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "app/cli/option_ranges.h"
#include "app/cli/commands.h"
#include "app/eval/evaluate.h"
#include "app/eval/report.h"
#include "data/hdf5/h5_file.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/ijb_protocol.h"
#include "framework/core/atomic_file.h"
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
  std::string ijb;
  std::string ijb_name;
  std::string ijb_features;
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

void print_ijb(const eval::IjbEntry& e) {
  const auto& r = e.result;
  fmt::print("{} ({}): {} images, {} templates, {} pairs ({} genuine); {:.1f} img/s\n", r.name,
             e.root.string(), r.images, r.templates, r.pairs, r.genuine_pairs,
             e.embed_seconds > 0 ? static_cast<double>(r.images) / e.embed_seconds : 0.0);
  for (const auto& t : r.tar) {
    fmt::print("  {:<14} {:.5f}   (at FAR <= target: {:.5f})\n",
               fmt::format("TAR@FAR={:.0e}", t.far), t.tar_closest, t.tar_at_most);
  }
  fmt::print("  {:<14} {:.5f}\n", "AUC", r.auc);
  for (const auto& g : r.identification) {
    std::string line = fmt::format("  1:N {:<10}", g.gallery);
    for (const auto& [k, rate] : g.rank) line += fmt::format(" rank-{} {:.5f}", k, rate);
    for (const auto& t : g.tpir) line += fmt::format("  TPIR@FPIR={:g} {:.5f}", t.fpir, t.tpir);
    fmt::print("{}\n", line);
  }
}

// The IJB benchmark at args.ijb: every image embedded (over the ranks), then scored by rank 0's
// arithmetic on every rank (it is cheap next to the embedding).
eval::IjbEntry evaluate_ijb(const EvalArgs& args, models::BackboneImpl& backbone,
                            dist::Communicator& comm) {
  const std::string name = args.ijb_name.empty() ? data::detect_ijb_name(args.ijb) : args.ijb_name;
  const data::IjbProtocol protocol = data::read_ijb_protocol(args.ijb, name);
  log::info("{}: {} images, {} pairs, {} 1:N galleries; embedding on {} rank(s)", protocol.name,
            protocol.images.size(), protocol.pair_label.size(), protocol.galleries.size(),
            comm.size());
  eval::IjbEntry entry;
  entry.root = args.ijb;
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor features = eval::embed_ijb_images(backbone, protocol, args.batch_size, &comm);
  entry.embed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  entry.result = eval::score_ijb(protocol, features);
  const bool lead = comm.rank() == 0;
  if (!args.roc_dir.empty()) {
    entry.roc_csv = fs::path(args.roc_dir) / (protocol.name + ".roc.csv");
    if (lead) eval::write_roc_csv(entry.roc_csv, entry.result.roc);
  }
  if (lead && !args.ijb_features.empty()) {
    std::vector<std::string> names;
    for (const auto& image : protocol.images) names.push_back(image.path);
    write_atomically(args.ijb_features, [&](const fs::path& tmp) {
      auto file = data::H5File::create(tmp);
      file.write("features", features.to(at::kFloat).contiguous());
      file.write_strings("names", names);
      file.close();
    });
    log::info("{} image features -> {}", protocol.name, args.ijb_features);
  }
  return entry;
}

int run_eval(const EvalArgs& args, Context& ctx) {
  if (args.bench.empty() && args.gallery.empty() && args.ijb.empty()) {
    throw UsageError("eval: give --bench FILE..., --gallery DIR --probe DIR and/or --ijb DIR");
  }
  if (!args.ijb_features.empty() && args.ijb.empty()) {
    throw UsageError("eval: --ijb-features needs --ijb");
  }
  if (args.gallery.empty() != args.probe.empty()) {
    throw UsageError("eval: --gallery and --probe go together");
  }
  const auto& env = ctx.start_mpi(args.timeout_s).env();
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
  if (!args.ijb.empty()) {
    report.ijb = evaluate_ijb(args, backbone, *comm);
    if (lead) print_ijb(*report.ijb);
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
      "accuracy, VAL@FAR=1e-3, ROC, AUC, EER, TAR@FAR), 1:N identification (rank-1, rank-5, "
      "mAP) and IJB-B/C (1:1 TAR@FAR over templates, 1:N TPIR@FPIR and rank-k); works alone or "
      "on several MPI ranks");
  auto args = std::make_shared<EvalArgs>();
  add_backbone_options(sub, args->checkpoint, args->weights, args->network);
  sub->add_option("--bench", args->bench,
                  "Verification sets (.h5, see `data pack --from bin`), one or more")
      ->check(CLI::ExistingFile);
  sub->add_option("--gallery", args->gallery, "Identification gallery: a dataset folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--probe", args->probe, "Identification probes: a dataset folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--ijb", args->ijb,
                  "An IJB-B or IJB-C benchmark in insightface's layout (loose_crop/ and meta/): "
                  "1:1 TAR@FAR from templates and, with the 1:N files, open-set identification")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--ijb-name", args->ijb_name,
                  "IJBB or IJBC (default: the one whose pair file is under meta/)")
      ->check(CLI::IsMember({"IJBB", "IJBC", "ijbb", "ijbc"}));
  sub->add_option("--ijb-features", args->ijb_features,
                  "Also write the IJB images' features (HDF5: /features [N, D] float32, each "
                  "image's and its mirror's embedding summed, not weighted; /names)");
  sub->add_option("--out", args->out, "JSON report (written by rank 0, atomically)");
  sub->add_option("--roc-dir", args->roc_dir, "Folder for one NAME.roc.csv per set");
  sub->add_option("--batch-size", args->batch_size, "Images per forward pass")
      ->check(batch_range());
  sub->add_option("--backend", args->backend, "auto, local or mpi")
      ->check(CLI::IsMember({"auto", "local", "mpi"}));
  sub->add_option("--timeout", args->timeout_s, "Deadline of each collective in seconds")
      ->check(seconds_range());
  out.emplace_back(sub, [&ctx, args] { return run_eval(*args, ctx); });
}

}  // namespace facetrain::cli
