#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

namespace facetrain {

// Autocast (mixed precision) for `device` over a scope: on with `dtype` (bfloat16 or float16),
// or off with nullopt; the previous state (on/off and its dtype) comes back on exit, so scopes
// nest (a backbone's float32 embedding head inside a training step's bf16 region).
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  c10::ScalarType was_dtype_;
  bool turned_on_;
};

// The autocast state of `device` on this thread: its dtype when on, nullopt when off (what an
// AutocastScope needs to re-create it elsewhere, e.g. when recomputing in the backward pass).
std::optional<c10::ScalarType> current_autocast(c10::DeviceType device);

// train.amp's value as an autocast dtype: "bf16" → bfloat16, "fp16" → float16, "none" → nullopt.
std::optional<c10::ScalarType> autocast_dtype(const std::string& amp);

}  // namespace facetrain
