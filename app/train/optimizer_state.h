#pragma once

#include <torch/optim/optimizer.h>

#include <map>
#include <string>
#include <vector>

#include "models/state_dict.h"

namespace facetrain::train {

// The backbone optimizer's per-parameter state as named tensors, so that optimizer.pt is a
// state dict like every other checkpoint file — written by write_state_dict, read back by the
// project's own restricted reader, never by torch::load. Parameters are numbered across the
// optimizer's groups in order, as torch.optim's state_dict numbers them:
//   SGD:   state.I.momentum_buffer
//   AdamW: state.I.step (0-dim int64), state.I.exp_avg, state.I.exp_avg_sq
//          (and state.I.max_exp_avg_sq with amsgrad)
// A parameter not stepped yet has no entries. Hyper-parameters (learning rate, betas, decay)
// are not saved: they come from the configuration and the schedule at every step.
models::NamedTensors optimizer_state(const torch::optim::Optimizer& optimizer);

// Why `tensors` cannot be the state of an optimizer over `params` (an unknown name, an index
// past the parameters, a shape other than the parameter's, a step below 0, non-finite values),
// or empty. `source` names the file in the message.
std::string optimizer_state_problem(const std::map<std::string, at::Tensor>& tensors,
                                    const std::vector<at::Tensor>& params,
                                    const std::string& source);

// Replaces `optimizer`'s state by `tensors` (checked with optimizer_state_problem first; a
// CheckpointError naming `source` and nothing changed otherwise). SGD takes momentum buffers
// only, AdamW its moments only: state of the other kind is refused by name.
void load_optimizer_state(torch::optim::Optimizer& optimizer,
                          const std::map<std::string, at::Tensor>& tensors,
                          const std::string& source);

}  // namespace facetrain::train
