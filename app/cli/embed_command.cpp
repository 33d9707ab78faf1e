#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include "app/cli/option_ranges.h"
#include "app/cli/commands.h"
#include "data/hdf5/h5_file.h"
#include "data/image/face_images.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/verification_set.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "models/checkpoint_source.h"
#include "models/embedding.h"
#include "models/preprocessing.h"
#include "models/state_dict.h"

namespace facetrain::cli {
namespace {

struct EmbedArgs {
  std::string checkpoint;
  std::string weights;
  std::string network;
  std::string input;
  std::string out;
  std::int64_t batch_size = 64;
  std::int64_t image_size = models::kPreprocessing.size;
  bool flip = false;
  bool normalize = false;
};

int run_embed(EmbedArgs args) {
  namespace fs = std::filesystem;
  auto loaded = models::load_backbone(args.checkpoint, args.weights, args.network);
  auto& backbone = loaded.backbone;
  args.network = loaded.network;
  args.weights = loaded.weights.string();
  // The images: a dataset folder, a verification set, or image files.
  data::FaceImages images;
  at::Tensor labels, issame;
  std::unique_ptr<data::ShardedDataset> dataset;
  std::unique_ptr<data::VerificationSet> pairs;
  const fs::path input(args.input);
  if (fs::is_directory(input) && fs::exists(input / "manifest.json")) {
    dataset = std::make_unique<data::ShardedDataset>(input);
    images = data::FaceImages::of(*dataset);
    labels = dataset->labels().to(at::kLong);
  } else if (fs::is_regular_file(input) && input.extension() == ".h5") {
    pairs = std::make_unique<data::VerificationSet>(input);
    images = data::FaceImages::of(*pairs);
    issame = at::tensor(std::vector<std::int64_t>(pairs->issame().begin(), pairs->issame().end()))
                 .to(at::kByte);
  } else {
    images = data::FaceImages::files(input);
  }
  const std::int64_t count = images.count;

  data::FaceDecoder decoder(args.image_size, args.image_size);
  std::vector<at::Tensor> embeddings;
  std::vector<std::string> names;
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t first = 0; first < count; first += args.batch_size) {
    const std::int64_t last = std::min(count, first + args.batch_size);
    for (std::int64_t i = first; i < last; ++i) names.push_back(images.name(i));
    embeddings.push_back(models::embed_images(*backbone, decoder.batch(images, first, last),
                                              args.flip, args.normalize));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Written beside the target and renamed, so an interrupted run leaves no partial file.
  const fs::path out(args.out);
  write_atomically(out, [&](const fs::path& tmp) {
    auto file = data::H5File::create(tmp);
    file.write("embeddings", at::cat(embeddings).to(at::kFloat));
    file.write_strings("names", names);
    if (labels.defined()) file.write("labels", labels);
    if (issame.defined()) file.write("issame", issame);
    file.write_attribute("network", args.network);
    file.write_attribute("weights", args.weights);
    file.write_attribute("flip", args.flip ? "true" : "false");
    file.write_attribute("normalize", args.normalize ? "true" : "false");
    file.close();
  });
  log::info("embedded {} images with {} in {:.1f} s ({:.1f} img/s) -> {}", names.size(),
            args.network, secs, names.size() / secs, out.string());
  return 0;
}

}  // namespace

void add_embed_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "embed",
      fmt::format("Embeddings of aligned {0}x{0} faces (a file or a folder, recursively), "
                  "written to HDF5: /embeddings [N, D] float32, /names, and /labels (datasets) or "
                  "/issame (verification sets)",
                  models::kPreprocessing.size));
  auto args = std::make_shared<EmbedArgs>();
  add_backbone_options(sub, args->checkpoint, args->weights, args->network);
  sub->add_option("--input", args->input,
                  "An image file (JPEG, PNG, BMP, TGA, GIF), a folder of them, a dataset folder "
                  "or a verification set (.h5)")
      ->required();
  sub->add_option("--out", args->out, "Output HDF5 file")->required();
  sub->add_option("--batch-size", args->batch_size, "Images per forward pass")
      ->check(batch_range());
  sub->add_flag("--flip", args->flip, "Add the embedding of each image's horizontal mirror");
  sub->add_flag("--normalize", args->normalize, "Scale each embedding to unit L2 norm");
  out.emplace_back(sub, [args] { return run_embed(*args); });
}

}  // namespace facetrain::cli
