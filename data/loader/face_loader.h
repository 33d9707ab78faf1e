#pragma once

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/image/face_images.h"
#include "data/shards/sharded_dataset.h"

namespace facetrain::data {

struct LoaderOptions {
  std::int64_t batch_size = 128;  // per rank
  int rank = 0;
  int world_size = 1;
  std::uint64_t seed = 2048;
  int num_workers = 2;        // decode threads; 0 decodes on the calling thread
  int prefetch = 4;           // batches decoded ahead (> 0)
  bool flip = true;           // random horizontal flip, p = 0.5
  bool skip_corrupt = false;  // drop undecodable samples (counted) instead of failing
};

// Where an epoch stands: `consumed` samples of epoch `epoch`'s permutation have been handed out
// (over all ranks). It does not depend on the world size, so a run can resume on another.
struct LoaderState {
  std::int64_t epoch = 0;
  std::int64_t consumed = 0;
  bool operator==(const LoaderState& o) const { return epoch == o.epoch && consumed == o.consumed; }
};

// One rank's batch: uint8 [n, H, W, 3] RGB faces (flipped where drawn), their labels and their
// global sample indices. n is batch_size, or less when corrupt samples were skipped — two at
// least: a batch left with fewer takes the next decodable samples of the epoch's order.
struct Batch {
  at::Tensor images;
  at::Tensor labels;   // int64 [n]
  at::Tensor indices;  // int64 [n]
  std::int64_t epoch = 0;
  std::int64_t step = 0;     // step within the epoch
  std::int64_t skipped = 0;  // corrupt samples dropped from this batch
};

// The training loader of one rank. Epoch e visits the dataset in the order of a permutation
// drawn from (seed, e); global step s hands out permutation positions [s·G, (s+1)·G) with
// G = world_size·batch_size, rank r taking the r-th block of batch_size. So the ranks' samples
// are disjoint, every step is a full batch on every rank, and an epoch is floor(N / G) steps:
// the permutation's last N mod G positions are dropped (other samples each epoch), as
// arcface_torch's loader drops its last partial batch — a short last batch could leave a rank
// one sample, which BatchNorm cannot train on. The flip of a sample is drawn from (seed, epoch,
// position), independent of threads and world size. A dataset smaller than one global batch is
// a ConfigError.
//
// Worker threads read (one contiguous read per image) and decode (libjpeg-turbo) whole batches
// into a queue of at most `prefetch` batches; next() returns them in order. A worker's error is
// re-raised by next() on the calling thread, naming the shard and sample.
class FaceLoader {
 public:
  FaceLoader(std::shared_ptr<const ShardedDataset> dataset, LoaderOptions options);
  ~FaceLoader();
  FaceLoader(const FaceLoader&) = delete;
  FaceLoader& operator=(const FaceLoader&) = delete;

  std::int64_t steps_per_epoch() const;
  // The samples of an epoch (the dataset's, before the last partial global batch is dropped).
  std::int64_t dataset_size() const;
  // The steps of an epoch before `position` (also one written at another world size): the
  // epoch's steps less the full global batches left after it, so the next epoch starts at a
  // multiple of steps_per_epoch().
  std::int64_t steps_before(const LoaderState& position) const;
  // Starts handing out batches from `state` (also mid-epoch, also saved at another world size).
  void start(const LoaderState& state);
  // The next batch of the current epoch, or nullopt when the epoch is over (start the next one
  // with start({epoch + 1, 0})).
  std::optional<Batch> next();
  // The state after the last batch next() returned: start(state()) reproduces exactly the
  // batches that would have come next (at another world size: the rest of the epoch's
  // permutation in that world's global batches).
  LoaderState state() const { return state_; }
  std::int64_t skipped_total() const { return skipped_total_; }

 private:
  // A worker's decoder and its buffer for a sample's bytes.
  struct SampleDecoder {
    FaceDecoder faces;
    std::vector<std::uint8_t> bytes;
  };

  Batch build(std::int64_t epoch, std::int64_t step, std::int64_t first) const;
  // Reads and decodes the sample at permutation `position` into row `slot` of `batch` (flipped
  // where drawn), with its label and index; false when it is corrupt and skip_corrupt is on.
  bool decode_sample(std::int64_t epoch, std::int64_t position, Batch& batch, std::int64_t slot,
                     SampleDecoder& decoder) const;
  void stop_workers();
  void worker_loop(int worker);

  std::shared_ptr<const ShardedDataset> dataset_;
  LoaderOptions options_;
  LoaderState state_;
  std::int64_t skipped_total_ = 0;

  // The current epoch's permutation and the steps still to hand out.
  at::Tensor permutation_;
  std::int64_t first_consumed_ = 0;
  std::int64_t num_steps_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> workers_;
  std::int64_t next_to_claim_ = 0;   // relative step index a worker takes next
  std::int64_t next_to_return_ = 0;  // relative step index next() returns next
  std::map<std::int64_t, Batch> ready_;
  std::map<std::int64_t, std::exception_ptr> failed_;
  bool stopping_ = false;
};

}  // namespace facetrain::data
