#include "losses/partial_fc.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include <algorithm>

#include "framework/core/error.h"
#include "framework/core/host_to_device.h"
#include "framework/core/mix.h"

namespace facetrain::losses {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

dist::Communicator* comm_in(AutogradContext* ctx) {
  return reinterpret_cast<dist::Communicator*>(ctx->saved_data["comm"].toInt());
}

class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, dist::Communicator* comm,
                            const std::vector<std::int64_t>& rows) {
    std::int64_t offset = 0;
    for (int r = 0; r < comm->rank(); ++r) offset += rows[static_cast<std::size_t>(r)];
    ctx->saved_data["comm"] = reinterpret_cast<std::int64_t>(comm);
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["rows"] = x.size(0);
    auto work = comm->all_gather_async(x.contiguous(), rows);
    work->wait();
    return work->result();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Every rank's loss saw every row; a row's gradient is the sum of the ranks' parts.
    at::Tensor g = grads[0].contiguous().clone();
    comm_in(ctx)->all_reduce(g, dist::ReduceOp::kSum);
    return {g.narrow(0, ctx->saved_data["offset"].toInt(), ctx->saved_data["rows"].toInt()),
            at::Tensor(), at::Tensor()};
  }
};

class DistributedCrossEntropy : public torch::autograd::Function<DistributedCrossEntropy> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& labels, dist::Communicator* comm) {
    // A shift by the global row maximum keeps exp() finite; it cancels in the softmax, so no
    // gradient flows through it.
    at::Tensor max = std::get<0>(logits.max(1, /*keepdim=*/true));
    comm->all_reduce(max, dist::ReduceOp::kMax);
    const at::Tensor shifted = logits - max;
    const at::Tensor exp = shifted.exp();
    at::Tensor sum = exp.sum(1, /*keepdim=*/true);
    auto summed = comm->all_reduce_async(sum, dist::ReduceOp::kSum);
    const at::Tensor valid = labels.ge(0);
    at::Tensor target =
        at::where(valid, shifted.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1),
                  at::zeros({}, shifted.options()));
    auto targeted = comm->all_reduce_async(target, dist::ReduceOp::kSum);
    summed->wait();
    targeted->wait();
    ctx->save_for_backward({exp / sum, labels});
    return (sum.squeeze(1).log() - target).mean();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad = saved[0].clone();
    const at::Tensor& labels = saved[1];
    // − onehot on the rows whose target is on this rank, without asking the device which.
    grad.scatter_add_(1, labels.clamp_min(0).unsqueeze(1),
                      labels.ge(0).to(grad.scalar_type()).neg().unsqueeze(1));
    grad.mul_(grads[0] / static_cast<double>(grad.size(0)));
    return {grad, at::Tensor(), at::Tensor()};
  }
};

// N(0, 0.01) centres for classes [lo, hi), K rows each, drawn in blocks of 1024 classes with a
// stream per block, so a class gets the same centre at any world size.
at::Tensor initial_centres(std::uint64_t seed, ClassRange range, std::int64_t k, std::int64_t d) {
  constexpr std::int64_t kBlock = 1024;
  std::vector<at::Tensor> parts;
  for (std::int64_t block = range.lo / kBlock; block * kBlock < range.hi; ++block) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(mix64(seed ^ mix64(block + 0x5eed)));
    const at::Tensor values = at::normal(0.0, 0.01, {kBlock * k, d}, gen);
    const std::int64_t first = std::max(range.lo, block * kBlock);
    const std::int64_t last = std::min(range.hi, (block + 1) * kBlock);
    parts.push_back(values.narrow(0, (first - block * kBlock) * k, (last - first) * k));
  }
  return at::cat(parts).contiguous();
}

at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

ClassRange class_shard(std::int64_t num_classes, int rank, int world) {
  if (num_classes < world) {
    throw ConfigError(fmt::format(
        "data.num_classes = {}: Partial FC needs at least one class per rank, the world has {}",
        num_classes, world));
  }
  const std::int64_t base = num_classes / world;
  const std::int64_t extra = num_classes % world;
  const std::int64_t lo = rank * base + std::min<std::int64_t>(rank, extra);
  return {lo, lo + base + (rank < extra ? 1 : 0)};
}

at::Tensor all_gather_with_grad(const at::Tensor& x, dist::Communicator& comm,
                                const std::vector<std::int64_t>& rows) {
  return AllGatherFunction::apply(x, &comm, rows);
}

at::Tensor distributed_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                     dist::Communicator& comm) {
  return DistributedCrossEntropy::apply(logits, labels, &comm);
}

PartialFC::PartialFC(const PartialFCOptions& options, std::shared_ptr<MarginHeadImpl> head,
                     std::shared_ptr<dist::Communicator> comm)
    : options_(options), head_(std::move(head)), comm_(std::move(comm)) {
  if (options_.num_classes() <= 0) {
    throw ConfigError(fmt::format("data.num_classes = {}: must be > 0", options_.num_classes()));
  }
  if (options_.embedding_size() <= 0) {
    throw ConfigError(
        fmt::format("model.embedding_size = {}: must be > 0", options_.embedding_size()));
  }
  if (!(options_.sample_rate() > 0.0 && options_.sample_rate() <= 1.0)) {
    throw ConfigError(
        fmt::format("loss.sample_rate = {}: must be in (0, 1]", options_.sample_rate()));
  }
  const auto& opt = options_.optimizer();
  range_ = class_shard(options_.num_classes(), comm_->rank(), comm_->size());
  k_ = head_->centres_per_class();
  num_sample_ = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(options_.sample_rate() * static_cast<double>(range_.size())));
  all_rows_ = options_.sample_rate() >= 1.0;
  weight_ =
      initial_centres(options_.seed(), range_, k_, options_.embedding_size()).to(options_.dtype());
  if (opt.kind() == OptimizerKind::kSgd) {
    slot1_ = at::zeros_like(weight_);
  } else {
    slot1_ = at::zeros_like(weight_);
    slot2_ = at::zeros_like(weight_);
    steps_ = at::zeros({weight_.size(0)}, weight_.options().dtype(at::kLong));
  }
}

void PartialFC::to(const c10::Device& device) {
  weight_ = weight_.to(device);
  if (slot1_.defined()) slot1_ = slot1_.to(device);
  if (slot2_.defined()) slot2_ = slot2_.to(device);
  if (steps_.defined()) steps_ = steps_.to(device);
}

at::Tensor PartialFC::sample(const at::Tensor& local_labels, std::int64_t step) {
  const std::int64_t n = range_.size();
  const at::Tensor positive =
      std::get<0>(at::_unique(local_labels.masked_select(local_labels.ge(0)).cpu(), true));
  const std::int64_t count = std::max(num_sample_, positive.numel());
  if (count >= n) return at::arange(n, at::kLong);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(
      mix64(options_.seed() ^ mix64(static_cast<std::uint64_t>(step) * 0x10000 +
                                    static_cast<std::uint64_t>(comm_->rank()))));
  at::Tensor score = at::rand({n}, gen);
  // Positives score 2, above every uniform draw, so they are always among the top `count`.
  score.index_fill_(0, positive, 2.0);
  return std::get<0>(std::get<1>(score.topk(count)).sort());
}

at::Tensor PartialFC::forward(const at::Tensor& embeddings, const at::Tensor& labels,
                              std::int64_t step) {
  if (embeddings.dim() != 2 || embeddings.size(1) != options_.embedding_size()) {
    throw Error(fmt::format("PartialFC on rank {}: embeddings must be [B, {}], found {}",
                            comm_->rank(), options_.embedding_size(), embeddings.sizes()));
  }
  if (labels.dim() != 1 || labels.size(0) != embeddings.size(0)) {
    throw Error(fmt::format("PartialFC on rank {}: labels must be [{}], found {}", comm_->rank(),
                            embeddings.size(0), labels.sizes()));
  }
  // Every rank's row count and first bad label, in one exchange of host values (no device
  // synchronisation), so every rank stops with the same message instead of waiting for the
  // rank that found the bad label, and the gathers below need no size exchange.
  const at::Tensor host_labels = labels.to(at::kCPU).to(at::kLong).contiguous();
  std::vector<std::int64_t> report = {host_labels.size(0), -1, -1};
  const auto* label = host_labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < host_labels.size(0); ++i) {
    if (label[i] < 0 || label[i] >= options_.num_classes()) {
      report[1] = i;
      report[2] = label[i];
      break;
    }
  }
  const std::vector<std::int64_t> reports = comm_->host_all_gather(report);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(comm_->size()));
  for (std::size_t r = 0; r < rows.size(); ++r) {
    rows[r] = reports[3 * r];
    if (reports[3 * r + 1] < 0) continue;
    throw DataError(
        fmt::format("PartialFC: rank {}: label {} at batch position {} out of range "
                    "[0, {})",
                    r, reports[3 * r + 2], reports[3 * r + 1], options_.num_classes()));
  }
  // The labels themselves travel on the host too (a few bytes per sample), so the sampling
  // below needs nothing back from the device.
  const at::Tensor all_labels_host = gather_labels_on_host(host_labels, rows);
  const at::Tensor all_embeddings = all_gather_with_grad(embeddings, *comm_, rows);
  const at::Tensor all_labels = host_to_device(all_labels_host, weight_.device());
  const at::Tensor mine = all_labels.ge(range_.lo) & all_labels.lt(range_.hi);
  at::Tensor local = at::where(mine, all_labels - range_.lo, at::full({}, -1, at::kLong));

  at::Tensor head_labels;
  if (all_rows_) {
    sampled_ = at::arange(range_.size(), at::kLong);
    rows_ = at::Tensor();
    head_labels = local;
  } else {
    const at::Tensor local_host =
        at::where(all_labels_host.ge(range_.lo) & all_labels_host.lt(range_.hi),
                  all_labels_host - range_.lo, at::full({}, -1, at::kLong));
    sampled_ = host_to_device(sample(local_host, step), weight_.device());
    rows_ = k_ == 1 ? sampled_
                    : (sampled_.unsqueeze(1) * k_ + at::arange(k_, sampled_.options())).flatten();
    const at::Tensor position = at::searchsorted(sampled_, local.clamp_min(0));
    head_labels = at::where(mine, position, at::full({}, -1, at::kLong));
  }
  // A leaf of its own per forward: the whole shard shares the centres' storage (updated in place
  // only in step(), after backward), a sample is a gathered copy.
  at::Tensor sub_weight =
      (all_rows_ ? weight_.detach() : weight_.index_select(0, rows_)).requires_grad_(true);
  pending_.emplace_back(rows_, sub_weight);
  const at::Tensor x = all_embeddings.to(sub_weight.scalar_type());
  const at::Tensor norms = x.norm(2, {1});
  const at::Tensor cosine = at::linear(l2_normalize(x), l2_normalize(sub_weight)).clamp(-1.0, 1.0);
  const HeadInput input{cosine, head_labels, norms, [this](at::Tensor& t) {
                          if (comm_->size() > 1) comm_->all_reduce(t, dist::ReduceOp::kSum);
                        }};
  const at::Tensor logits = head_->forward(input);
  at::Tensor loss = distributed_cross_entropy(logits, head_labels, *comm_);
  const at::Tensor reg = head_->regularizer(input);
  const double w = static_cast<double>(comm_->size());
  // Every rank computes the same regulariser from the gathered batch; the all-gather's backward
  // sums the ranks' gradients, so each contributes 1/W of it while the value counts once.
  return loss + reg / w + (reg - reg / w).detach();
}

at::Tensor PartialFC::gather_labels_on_host(const at::Tensor& host_labels,
                                            const std::vector<std::int64_t>& rows) {
  const std::int64_t most = *std::max_element(rows.begin(), rows.end());
  std::vector<std::int64_t> padded(static_cast<std::size_t>(most), -1);
  std::copy_n(host_labels.data_ptr<std::int64_t>(), host_labels.size(0), padded.begin());
  const std::vector<std::int64_t> everyone = comm_->host_all_gather(padded);
  std::vector<std::int64_t> gathered;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto first = everyone.begin() + static_cast<std::ptrdiff_t>(r) * most;
    gathered.insert(gathered.end(), first, first + rows[r]);
  }
  return at::tensor(gathered, at::dtype(at::kLong));
}

bool PartialFC::gradients_finite() const {
  for (const auto& [rows, leaf] : pending_) {
    if (leaf.grad().defined() && !leaf.grad().isfinite().all().item<bool>()) return false;
  }
  return true;
}

void PartialFC::step(double lr, double grad_scale) {
  at::NoGradGuard no_grad;
  std::vector<std::pair<at::Tensor, at::Tensor>> pending;
  pending.swap(pending_);
  at::Tensor rows;  // undefined: the whole shard
  at::Tensor grad;
  if (all_rows_) {
    for (const auto& [unused, leaf] : pending) {
      if (!leaf.grad().defined()) continue;
      grad = grad.defined() ? grad.add_(leaf.grad()) : leaf.grad();
    }
  } else {
    std::vector<at::Tensor> all_rows, all_grads;
    for (const auto& [r, leaf] : pending) {
      if (!leaf.grad().defined()) continue;
      all_rows.push_back(r);
      all_grads.push_back(leaf.grad());
    }
    if (all_rows.size() == 1) {
      rows = all_rows[0];
      grad = all_grads[0];
    } else if (!all_rows.empty()) {
      // Rows sampled by several micro-batches get the sum of their gradients.
      const auto [unique, inverse] = [&] {
        auto u = at::_unique(at::cat(all_rows), /*sorted=*/true, /*return_inverse=*/true);
        return std::make_pair(std::get<0>(u), std::get<1>(u));
      }();
      rows = unique;
      grad = at::zeros({unique.size(0), weight_.size(1)}, weight_.options())
                 .index_add_(0, inverse, at::cat(all_grads));
    }
  }
  if (!grad.defined()) return;
  if (grad_scale != 1.0) grad = grad * grad_scale;
  const bool whole = !rows.defined();
  const auto& opt = options_.optimizer();
  // Whole shard: update in place. Sampled rows: update gathered copies and scatter them back,
  // so unsampled rows are never written.
  at::Tensor w = whole ? weight_ : weight_.index_select(0, rows);
  at::Tensor m1 = whole ? slot1_ : slot1_.index_select(0, rows);
  if (opt.kind() == OptimizerKind::kSgd) {
    const at::Tensor g = opt.weight_decay() != 0.0 ? grad + opt.weight_decay() * w : grad;
    m1.mul_(opt.momentum()).add_(g);
    w.sub_(m1, lr);
  } else {
    at::Tensor m2 = whole ? slot2_ : slot2_.index_select(0, rows);
    at::Tensor t = whole ? steps_ : steps_.index_select(0, rows);
    t.add_(1);
    w.mul_(1.0 - lr * opt.weight_decay());
    m1.mul_(opt.beta1()).add_(grad, 1.0 - opt.beta1());
    m2.mul_(opt.beta2()).addcmul_(grad, grad, 1.0 - opt.beta2());
    const at::Tensor tf = t.to(w.scalar_type()).unsqueeze(1);
    const at::Tensor bc1 = 1.0 - at::pow(opt.beta1(), tf);
    const at::Tensor bc2 = 1.0 - at::pow(opt.beta2(), tf);
    w.sub_(lr * (m1 / bc1) / ((m2 / bc2).sqrt() + opt.eps()));
    if (!whole) {
      slot2_.index_copy_(0, rows, m2);
      steps_.index_copy_(0, rows, t);
    }
  }
  if (!whole) {
    weight_.index_copy_(0, rows, w);
    slot1_.index_copy_(0, rows, m1);
  }
}

std::map<std::string, at::Tensor> PartialFC::state() const {
  std::map<std::string, at::Tensor> out{{"weight", weight_}};
  if (options_.optimizer().kind() == OptimizerKind::kSgd) {
    out["momentum"] = slot1_;
  } else {
    out["exp_avg"] = slot1_;
    out["exp_avg_sq"] = slot2_;
    out["steps"] = steps_;
  }
  return out;
}

void PartialFC::load_state(const std::map<std::string, at::Tensor>& state, ClassRange covered,
                           const std::string& source) {
  if (covered.lo > range_.lo || covered.hi < range_.hi) {
    throw CheckpointError(fmt::format("{}: holds classes [{}, {}), rank {} needs [{}, {})", source,
                                      covered.lo, covered.hi, comm_->rank(), range_.lo, range_.hi));
  }
  auto current = this->state();
  std::map<std::string, at::Tensor> loaded;
  for (const auto& [key, tensor] : current) {
    const auto it = state.find(key);
    if (it == state.end()) {
      throw CheckpointError(fmt::format("{}: no '{}' (the classifier's {} state)", source, key,
                                        optimizer_name(options_.optimizer().kind())));
    }
    auto expected = tensor.sizes().vec();
    expected[0] = covered.size() * k_;
    if (it->second.sizes().vec() != expected) {
      throw CheckpointError(fmt::format("{}: '{}' is {}, expected {} for classes [{}, {})", source,
                                        key, it->second.sizes(), at::IntArrayRef(expected),
                                        covered.lo, covered.hi));
    }
    loaded[key] = it->second.narrow(0, (range_.lo - covered.lo) * k_, range_.size() * k_);
  }
  at::NoGradGuard no_grad;
  for (auto& [key, tensor] : current) tensor.copy_(loaded[key]);
}

}  // namespace facetrain::losses
