#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "app/cli/option_ranges.h"
#include "app/cli/commands.h"
#include "data/image/align_folder.h"
#include "data/recordio/recordio_packer.h"
#include "data/shards/folder_packer.h"
#include "data/shards/sharded_dataset.h"
#include "data/synth/synthetic_faces.h"
#include "data/synth/synthetic_ijb.h"
#include "data/verification/bin_pack.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "framework/log/progress.h"
#include "models/preprocessing.h"

namespace facetrain::cli {
namespace {

struct PackArgs {
  std::string from = "folder";
  std::string input;
  std::string out;
  std::int64_t shard_size = 100000;
  std::int64_t image_size = models::kPreprocessing.size;
  bool resize = false;
  std::string landmarks;
};

// An insightface .bin verification pack to a verification-set file.
int run_pack_bin(const PackArgs& args) {
  log::ProgressBar bar("pack", "img");
  const auto pairs = data::read_bin_pack(args.input);
  data::write_verification_set(args.out, pairs);
  std::size_t bytes = 0;
  for (const auto& image : pairs.images) bytes += image.size();
  const auto same = std::count(pairs.issame.begin(), pairs.issame.end(), 1);
  fmt::print("packed {} pairs ({} same, {} different; {} images, {:.1f} MB) in {:.1f} s -> {}\n",
             pairs.issame.size(), same, pairs.issame.size() - same, pairs.images.size(),
             bytes / 1e6, bar.elapsed(), args.out);
  return 0;
}

int run_pack(const PackArgs& args) {
  if (args.from == "bin") return run_pack_bin(args);
  data::PackOptions options;
  options.shard_size = args.shard_size;
  options.image_size = args.image_size;
  options.resize = args.resize;
  if (!args.landmarks.empty() && args.from != "folder") {
    throw UsageError("--landmarks: only with --from folder");
  }
  options.landmarks = args.landmarks;
  log::ProgressBar bar("pack", "img");
  const auto progress = [&](std::int64_t done, std::int64_t total) { bar.update(done, total); };
  const auto manifest = args.from == "recordio"
                            ? data::pack_recordio(args.input, args.out, options, progress)
                            : data::pack_image_folder(args.input, args.out, options, progress);
  std::int64_t bytes = 0;
  for (const auto& s : manifest.shards) bytes += s.bytes;
  fmt::print(
      "packed {} images of {} identities into {} shard(s), {:.1f} MB, in {:.1f} s "
      "({:.0f} img/s) -> {}\n",
      manifest.num_samples, manifest.num_classes, manifest.shards.size(), bytes / 1e6,
      bar.elapsed(), manifest.num_samples / std::max(1e-9, bar.elapsed()), args.out);
  return 0;
}

struct SynthArgs {
  data::SynthOptions options;
  std::string out;
  std::string pairs_out;
};

int run_synth(const SynthArgs& args) {
  if (args.options.pairs > 0 && args.pairs_out.empty()) {
    throw UsageError("data synth: --pairs needs --pairs-out FILE.h5");
  }
  log::ProgressBar bar("synth", "img");
  const auto manifest = data::synthesize_faces(
      args.out, args.pairs_out, args.options,
      [&](std::int64_t done, std::int64_t total) { bar.update(done, total); });
  const double secs = std::max(1e-9, bar.elapsed());
  const std::int64_t images = manifest.num_samples + 2 * args.options.pairs;
  fmt::print("synthesized {} images of {} identities -> {}", manifest.num_samples,
             manifest.num_classes, args.out);
  if (args.options.pairs > 0) {
    fmt::print("; {} verification pairs over held-out identities -> {}", args.options.pairs,
               args.pairs_out);
  }
  fmt::print(" ({} images in {:.1f} s, {:.0f} img/s)\n", images, secs, images / secs);
  return 0;
}

int run_verify(const std::string& dir) {
  log::ProgressBar bar("verify", "img");
  const auto problems = data::verify_dataset(
      dir, [&](std::int64_t done, std::int64_t total) { bar.update(done, total); });
  for (const auto& p : problems) fmt::print("{}\n", p);
  if (!problems.empty()) {
    fmt::print("{}: {} problem(s)\n", dir, problems.size());
    return 1;
  }
  const auto manifest = data::Manifest::read(dir);
  fmt::print(
      "{}: ok: {} samples in {} shard(s) verified (checksums, offsets, labels, every image "
      "decodes at {}x{})\n",
      dir, manifest.num_samples, manifest.shards.size(), manifest.image_width,
      manifest.image_height);
  return 0;
}

int run_info(const std::string& dir) {
  const data::ShardedDataset dataset(dir);
  const auto& m = dataset.manifest();
  std::int64_t bytes = 0;
  for (const auto& s : m.shards) bytes += s.bytes;
  const at::Tensor counts = at::bincount(dataset.labels().to(at::kLong), {}, m.num_classes);
  fmt::print("dataset     {}\n", dir);
  fmt::print("format      {} v{}, {} {}x{}x{}\n", data::Manifest::kFormat, data::Manifest::kVersion,
             m.encoding, m.image_height, m.image_width, m.channels);
  fmt::print("identities  {}\n", m.num_classes);
  fmt::print("images      {} ({:.1f} MB in {} shard(s))\n", m.num_samples, bytes / 1e6,
             m.shards.size());
  fmt::print("per identity min {} / mean {:.1f} / max {}\n", counts.min().item<std::int64_t>(),
             counts.to(at::kDouble).mean().item<double>(), counts.max().item<std::int64_t>());
  return 0;
}

using Actions = std::vector<std::pair<CLI::App*, Action>>;

// data pack: image folders, RecordIO and .bin packs into datasets.
void add_pack(CLI::App* data, Actions& out) {
  auto* pack = data->add_subcommand(
      "pack", "Pack face images into a dataset folder (manifest.json + shard-NNNNN.h5)");
  auto pack_args = std::make_shared<PackArgs>();
  pack->add_option("--from", pack_args->from,
                   "Source kind: folder (one sub-folder of aligned JPEG faces per identity) or "
                   "recordio (insightface train.rec + train.idx; --input names either or the "
                   "common prefix) or bin (an insightface verification pack such as lfw.bin; "
                   "--out is then a verification-set file .h5)")
      ->check(CLI::IsMember({"folder", "recordio", "bin"}));
  pack->add_option("--input", pack_args->input, "The source")->required();
  pack->add_option("--out", pack_args->out, "The dataset folder to create")->required();
  pack->add_option("--shard-size", pack_args->shard_size, "Images per shard")
      ->check(shard_size_range());
  pack->add_option("--image-size", pack_args->image_size, "Side of the aligned faces")
      ->check(image_side_range());
  pack->add_flag("--resize", pack_args->resize,
                 "Resize images of another size (and re-encode them) instead of failing");
  pack->add_option("--landmarks", pack_args->landmarks,
                   "--from folder: align every image to the ArcFace template first, from this "
                   "landmarks file (as `data align --landmarks`; paths relative to --input)")
      ->check(CLI::ExistingFile);
  out.emplace_back(pack, [pack_args] { return run_pack(*pack_args); });
}

// data synth: a synthetic face dataset and held-out pairs.
void add_synth(CLI::App* data, Actions& out) {
  auto* synth = data->add_subcommand(
      "synth",
      "Render a synthetic face dataset (procedural aligned faces: each identity "
      "a stable set of facial features, each image another pose, light, expression, "
      "blur, noise and JPEG quality) and optionally verification pairs over held-out "
      "identities");
  auto synth_args = std::make_shared<SynthArgs>();
  synth->add_option("--identities", synth_args->options.identities, "Training identities")
      ->required()
      ->check(synth_count_range(1));
  synth->add_option("--per-identity", synth_args->options.per_identity, "Images per identity")
      ->required()
      ->check(synth_count_range(1));
  synth->add_option("--out", synth_args->out, "The dataset folder to create")->required();
  synth
      ->add_option("--pairs", synth_args->options.pairs,
                   "Verification pairs (half same, half different identity)")
      ->check(synth_count_range(0));
  synth->add_option("--pairs-out", synth_args->pairs_out, "Verification-set file (.h5)");
  synth
      ->add_option("--heldout-identities", synth_args->options.heldout_identities,
                   "Identities for the pairs, none of them in the training set (default: "
                   "max(10, identities/5))")
      ->check(synth_count_range(0));
  synth->add_option("--seed", synth_args->options.seed, "Everything is a function of it");
  synth->add_option("--shard-size", synth_args->options.shard_size, "Images per shard")
      ->check(shard_size_range());
  out.emplace_back(synth, [synth_args] { return run_synth(*synth_args); });
}

// data synth-ijb: a synthetic IJB benchmark in insightface's layout.
void add_synth_ijb(CLI::App* data, Actions& out) {
  auto* synth = data->add_subcommand(
      "synth-ijb",
      "Render a synthetic IJB-B/C benchmark in insightface's layout (loose_crop/ and meta/): "
      "unaligned face crops with known landmarks and detector scores, media within templates "
      "within identities, 1:1 template pairs and 1:N galleries and probes");
  struct SynthIjbArgs {
    std::string out;
    data::SynthIjbOptions options;
  };
  auto args = std::make_shared<SynthIjbArgs>();
  synth->add_option("--out", args->out, "The benchmark folder to create")->required();
  synth->add_option("--name", args->options.name, "IJBB or IJBC")
      ->check(CLI::IsMember({"IJBB", "IJBC"}));
  synth->add_option("--identities", args->options.identities, "Subjects")
      ->check(CLI::Range(2, 1000000));
  synth->add_option("--templates", args->options.templates, "Templates per subject")
      ->check(CLI::Range(2, 1000));
  synth->add_option("--media", args->options.media, "Media per template")
      ->check(CLI::Range(1, 1000));
  synth->add_option("--images", args->options.images, "Images per media")
      ->check(CLI::Range(1, 1000));
  synth->add_option("--impostors", args->options.impostors, "Impostor pairs per template")
      ->check(CLI::Range(0, 1000000));
  synth->add_option("--photo-size", args->options.photo_size, "Side of the loose crops")
      ->check(CLI::Range(112, 1024));
  synth->add_option("--seed", args->options.seed, "Everything is a function of it");
  out.emplace_back(synth, [args] {
    const auto s = data::synthesize_ijb(args->out, args->options);
    fmt::print("synthesized {} ({} images, {} templates, {} pairs) -> {}\n", args->options.name,
               s.images, s.templates, s.pairs, args->out);
    return 0;
  });
}

// data align: photos with five landmarks onto the ArcFace template.
void add_align(CLI::App* data, Actions& out) {
  auto* align = data->add_subcommand(
      "align",
      "Align face photos to ArcFace's 112x112 template from five landmarks each (eyes, nose, "
      "mouth corners): a least-squares similarity transform and a bilinear warp, written as "
      "JPEG under --out with the input's relative paths");
  struct AlignArgs {
    std::string input, landmarks, out;
    data::AlignFolderOptions options;
  };
  auto align_args = std::make_shared<AlignArgs>();
  align->add_option("--input", align_args->input, "Folder the landmarks file's paths are under")
      ->required()
      ->check(CLI::ExistingDirectory);
  align
      ->add_option("--landmarks", align_args->landmarks,
                   "Landmarks file: `path x1 y1 ... x5 y5` per line (tabs, commas or spaces), or "
                   "insightface's `name x1 y1 ... x5 y5 score`")
      ->required()
      ->check(CLI::ExistingFile);
  align->add_option("--out", align_args->out, "Folder for the aligned faces")->required();
  align->add_option("--size", align_args->options.size, "Side of the aligned faces")
      ->check(image_side_range())
      ->capture_default_str();
  align->add_option("--quality", align_args->options.quality, "JPEG quality")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  out.emplace_back(align, [align_args] {
    log::ProgressBar bar("align", "img");
    const auto n = data::align_folder(align_args->input, align_args->landmarks, align_args->out,
                                      align_args->options);
    fmt::print("aligned {} faces to {}x{} in {:.1f} s -> {}\n", n, align_args->options.size,
               align_args->options.size, bar.elapsed(), align_args->out);
    return 0;
  });
}

// data verify and data info.
void add_verify_and_info(CLI::App* data, Actions& out) {
  auto* verify = data->add_subcommand(
      "verify",
      "Check a dataset folder: manifest against files, checksums, offsets, labels, "
      "every image decodes; lists every problem and exits 1 if there is any");
  auto verify_dir = std::make_shared<std::string>();
  verify->add_option("path", *verify_dir, "Dataset folder")->required();
  out.emplace_back(verify, [verify_dir] { return run_verify(*verify_dir); });

  auto* info = data->add_subcommand("info", "Summarise a dataset folder");
  auto info_dir = std::make_shared<std::string>();
  info->add_option("path", *info_dir, "Dataset folder")->required();
  out.emplace_back(info, [info_dir] { return run_info(*info_dir); });
}

}  // namespace

void add_data_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* data = app.add_subcommand("data", "Build, check and describe datasets");
  data->require_subcommand(1);
  add_pack(data, out);
  add_synth(data, out);
  add_synth_ijb(data, out);
  add_align(data, out);
  add_verify_and_info(data, out);
}

}  // namespace facetrain::cli
