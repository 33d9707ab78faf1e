#include "app/train/fault_injection.h"

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "framework/core/error.h"

namespace facetrain::train {

FaultInjection FaultInjection::from_env() {
  FaultInjection f;
  const char* spec = std::getenv("FACETRAIN_FAULT");
  if (spec == nullptr || *spec == 0) return f;
  const std::string s(spec);
  const auto at = s.find('@'), colon = s.find(':');
  const auto bad = [&] {
    return UsageError(fmt::format("FACETRAIN_FAULT='{}': expected KIND@RANK:STEP", s));
  };
  if (at == std::string::npos || colon == std::string::npos || colon < at) throw bad();
  f.kind_ = s.substr(0, at);
  try {
    f.rank_ = std::stoi(s.substr(at + 1, colon - at - 1));
    f.step_ = std::stoll(s.substr(colon + 1));
  } catch (const std::exception&) {
    throw bad();
  }
  return f;
}

void FaultInjection::before_step(int rank, std::int64_t step) const {
  if (hits(rank, step, "throw")) {
    throw Error(fmt::format("injected fault on rank {} at step {}", rank, step));
  }
  if (hits(rank, step, "stall")) std::raise(SIGSTOP);
  if (hits(rank, step, "kill")) std::raise(SIGKILL);
}

bool FaultInjection::hits(int rank, std::int64_t step, const char* kind) const {
  if (kind_ != kind || rank_ != rank) return false;
  if (kind_ == "nan" ? step < step_ : step != step_) return false;
  const char* once = std::getenv("FACETRAIN_FAULT_ONCE");
  if (once == nullptr || *once == 0) return true;
  if (std::filesystem::exists(once)) return false;
  std::ofstream(once) << kind_ << "\n";
  return true;
}

}  // namespace facetrain::train
