#include <ATen/ATen.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "data/hdf5/h5_file.h"
#include "data/image/image_files.h"
#include "data/image/jpeg_codec.h"
#include "data/shards/sharded_dataset.h"
#include "data/verification/verification_set.h"
#include "framework/cli/commands.h"
#include "framework/core/error.h"
#include "framework/log/logger.h"
#include "models/checkpoint_source.h"
#include "models/embedding.h"
#include "models/state_dict.h"
#include "models/preprocessing.h"

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
  // The images: a dataset folder, a verification set, or JPEG files.
  std::int64_t count = 0;
  std::function<std::vector<std::uint8_t>(std::int64_t)> bytes_of;
  std::function<std::string(std::int64_t)> name_of;
  at::Tensor labels, issame;
  std::unique_ptr<data::ShardedDataset> dataset;
  std::unique_ptr<data::VerificationSet> pairs;
  std::vector<fs::path> files;
  const fs::path input(args.input);
  if (fs::is_directory(input) && fs::exists(input / "manifest.json")) {
    dataset = std::make_unique<data::ShardedDataset>(input);
    count = dataset->size();
    bytes_of = [&](std::int64_t i) { return dataset->read(i); };
    name_of = [&](std::int64_t i) { return dataset->describe(i); };
    labels = dataset->labels().to(at::kLong);
  } else if (fs::is_regular_file(input) && input.extension() == ".h5") {
    pairs = std::make_unique<data::VerificationSet>(input);
    count = 2 * pairs->num_pairs();
    bytes_of = [&](std::int64_t i) { return pairs->image(i); };
    name_of = [](std::int64_t i) { return fmt::format("pair {} image {}", i / 2, i % 2); };
    issame = at::tensor(std::vector<std::int64_t>(pairs->issame().begin(), pairs->issame().end()))
                 .to(at::kByte);
  } else {
    files = data::list_image_files(input);
    const fs::path root = fs::is_directory(input) ? input : input.parent_path();
    count = static_cast<std::int64_t>(files.size());
    bytes_of = [&](std::int64_t i) {
      return data::read_file_bytes(files[static_cast<std::size_t>(i)]);
    };
    name_of = [&, root](std::int64_t i) {
      return fs::relative(files[static_cast<std::size_t>(i)], root).string();
    };
  }

  data::JpegCodec codec;
  std::vector<at::Tensor> embeddings;
  std::vector<std::string> names;
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t first = 0; first < count; first += args.batch_size) {
    const std::int64_t last = std::min(count, first + args.batch_size);
    at::Tensor batch = at::empty({last - first, args.image_size, args.image_size, 3}, at::kByte);
    for (std::int64_t i = first; i < last; ++i) {
      const std::string name = name_of(i);
      const std::string source = files.empty() ? fmt::format("{}: {}", args.input, name)
                                               : files[static_cast<std::size_t>(i)].string();
      const auto bytes = bytes_of(i);
      if (data::is_jpeg(bytes)) {
        codec.decode_into(bytes.data(), bytes.size(), batch[i - first].data_ptr<std::uint8_t>(),
                          static_cast<int>(args.image_size), static_cast<int>(args.image_size),
                          source);
      } else {
        const at::Tensor image = data::decode_non_jpeg(bytes, source);
        if (image.size(0) != args.image_size || image.size(1) != args.image_size) {
          throw DataError(fmt::format("{}: image is {}x{}, expected {}x{}", source, image.size(1),
                                      image.size(0), args.image_size, args.image_size));
        }
        batch[i - first].copy_(image);
      }
      names.push_back(name);
    }
    embeddings.push_back(models::embed_images(*backbone, batch, args.flip, args.normalize));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Written beside the target and renamed, so an interrupted run leaves no partial file.
  const fs::path out(args.out);
  const fs::path tmp = out.string() + fmt::format(".tmp-{}", ::getpid());
  try {
    auto file = data::H5File::create(tmp);
    file.write("embeddings", at::cat(embeddings).to(at::kFloat));
    file.write_strings("names", names);
    if (labels.defined()) file.write("labels", labels);
    if (issame.defined()) file.write("issame", issame);
    file.write_attribute("network", args.network);
    file.write_attribute("weights", args.weights);
    file.write_attribute("flip", args.flip ? "true" : "false");
    file.write_attribute("normalize", args.normalize ? "true" : "false");
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::rename(tmp, out);
  log::info("embedded {} images with {} in {:.1f} s ({:.1f} img/s) -> {}", names.size(),
            args.network, secs, names.size() / secs, out.string());
  return 0;
}

}  // namespace

void add_embed_command(CLI::App& app, Context&, std::vector<std::pair<CLI::App*, Action>>& out) {
  auto* sub = app.add_subcommand(
      "embed",
      "Embeddings of aligned 112x112 JPEG faces (a file or a folder, recursively), "
      "written to HDF5: /embeddings [N, D] float32, /names, and /labels (datasets) or /issame "
      "(verification sets)");
  auto args = std::make_shared<EmbedArgs>();
  add_backbone_options(sub, args->checkpoint, args->weights, args->network);
  sub->add_option("--input", args->input,
                  "An image file (JPEG, PNG, BMP, TGA, GIF), a folder of them, a dataset folder "
                  "or a verification set (.h5)")
      ->required();
  sub->add_option("--out", args->out, "Output HDF5 file")->required();
  sub->add_option("--batch-size", args->batch_size, "Images per forward pass")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--flip", args->flip, "Add the embedding of each image's horizontal mirror");
  sub->add_flag("--normalize", args->normalize, "Scale each embedding to unit L2 norm");
  out.emplace_back(sub, [args] { return run_embed(*args); });
}

}  // namespace facetrain::cli
