#include "app/train/optimizer_state.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <optional>
#include <regex>

#include "framework/core/error.h"

namespace facetrain::train {
namespace {

// The optimizer's parameters, numbered across groups.
std::vector<at::Tensor> parameters_of(const torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) params.push_back(p);
  }
  return params;
}

// "state.I.FIELD" split into I and FIELD; nullopt for any other name.
std::optional<std::pair<std::size_t, std::string>> split_name(const std::string& name) {
  static const std::regex pattern(R"(state\.(\d{1,9})\.([a-z_]+))");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::make_pair(static_cast<std::size_t>(std::stoull(m[1].str())), m[2].str());
}

bool is_moment(const std::string& field) {
  return field == "momentum_buffer" || field == "exp_avg" || field == "exp_avg_sq" ||
         field == "max_exp_avg_sq";
}

std::string key(std::size_t i, const char* field) { return fmt::format("state.{}.{}", i, field); }

}  // namespace

models::NamedTensors optimizer_state(const torch::optim::Optimizer& optimizer) {
  models::NamedTensors out;
  const auto params = parameters_of(optimizer);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto it = optimizer.state().find(params[i].unsafeGetTensorImpl());
    if (it == optimizer.state().end()) continue;
    if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(it->second.get())) {
      if (sgd->momentum_buffer().defined()) {
        out.emplace_back(key(i, "momentum_buffer"), sgd->momentum_buffer());
      }
    } else if (const auto* adam =
                   dynamic_cast<const torch::optim::AdamWParamState*>(it->second.get())) {
      out.emplace_back(key(i, "step"), at::scalar_tensor(adam->step(), at::kLong));
      out.emplace_back(key(i, "exp_avg"), adam->exp_avg());
      out.emplace_back(key(i, "exp_avg_sq"), adam->exp_avg_sq());
      if (adam->max_exp_avg_sq().defined()) {
        out.emplace_back(key(i, "max_exp_avg_sq"), adam->max_exp_avg_sq());
      }
    }
  }
  return out;
}

std::string optimizer_state_problem(const std::map<std::string, at::Tensor>& tensors,
                                    const std::vector<at::Tensor>& params,
                                    const std::string& source) {
  for (const auto& [name, t] : tensors) {
    const auto parsed = split_name(name);
    if (!parsed) {
      return fmt::format("{}: '{}' is not an optimizer state (expected state.INDEX.FIELD)", source,
                         name);
    }
    const auto& [i, field] = *parsed;
    if (i >= params.size()) {
      return fmt::format("{}: '{}' is for parameter {}, the backbone has {}", source, name, i,
                         params.size());
    }
    if (field == "step") {
      // A count LibTorch can still add to.
      if (t.dim() != 0 || !at::isIntegralType(t.scalar_type(), false) ||
          t.item<std::int64_t>() < 0 || t.item<std::int64_t>() > (std::int64_t{1} << 62)) {
        return fmt::format("{}: '{}' must be a count (a 0-dim integer in [0, 2^62])", source,
                           name);
      }
      if (tensors.count(key(i, "exp_avg")) == 0 || tensors.count(key(i, "exp_avg_sq")) == 0) {
        return fmt::format("{}: '{}' without state.{}.exp_avg and exp_avg_sq", source, name, i);
      }
    } else if (!is_moment(field)) {
      return fmt::format("{}: '{}': unknown field '{}'", source, name, field);
    } else if (!t.is_floating_point()) {
      return fmt::format("{}: '{}' is {}, expected floating-point values", source, name,
                         c10::toString(t.scalar_type()));
    } else if (t.sizes() != params[i].sizes()) {
      return fmt::format("{}: '{}' has shape [{}], the parameter [{}]", source, name,
                         fmt::join(t.sizes(), ", "), fmt::join(params[i].sizes(), ", "));
    } else if (!t.isfinite().all().item<bool>()) {
      return fmt::format("{}: tensor {} holds non-finite values (a diverged run)", source, name);
    }
  }
  return {};
}

void load_optimizer_state(torch::optim::Optimizer& optimizer,
                          const std::map<std::string, at::Tensor>& tensors,
                          const std::string& source) {
  const auto params = parameters_of(optimizer);
  if (const std::string problem = optimizer_state_problem(tensors, params, source);
      !problem.empty()) {
    throw CheckpointError(problem);
  }
  const bool sgd = dynamic_cast<torch::optim::SGD*>(&optimizer) != nullptr;
  const auto field = [&](std::size_t i, const char* name) -> at::Tensor {
    const auto it = tensors.find(key(i, name));
    if (it == tensors.end()) return {};
    return it->second.to(params[i].device(), params[i].scalar_type()).clone();
  };
  for (const auto& [name, t] : tensors) {
    const std::string f = split_name(name)->second;
    if (sgd != (f == "momentum_buffer")) {
      throw CheckpointError(fmt::format("{}: '{}' is {}'s state, the run's optimizer is {}", source,
                                        name, sgd ? "AdamW" : "SGD", sgd ? "SGD" : "AdamW"));
    }
  }
  optimizer.state().clear();
  for (std::size_t i = 0; i < params.size(); ++i) {
    void* id = params[i].unsafeGetTensorImpl();
    if (sgd) {
      if (at::Tensor m = field(i, "momentum_buffer"); m.defined()) {
        auto state = std::make_unique<torch::optim::SGDParamState>();
        state->momentum_buffer(m);
        optimizer.state()[id] = std::move(state);
      }
      continue;
    }
    const at::Tensor avg = field(i, "exp_avg");
    const at::Tensor avg_sq = field(i, "exp_avg_sq");
    if (!avg.defined() && !avg_sq.defined()) continue;
    const auto step = tensors.find(key(i, "step"));
    if (!avg.defined() || !avg_sq.defined() || step == tensors.end()) {
      throw CheckpointError(fmt::format(
          "{}: parameter {}: AdamW's state needs step, exp_avg and exp_avg_sq together", source, i));
    }
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step->second.item<std::int64_t>());
    state->exp_avg(avg);
    state->exp_avg_sq(avg_sq);
    if (at::Tensor m = field(i, "max_exp_avg_sq"); m.defined()) state->max_exp_avg_sq(m);
    optimizer.state()[id] = std::move(state);
  }
}

}  // namespace facetrain::train
