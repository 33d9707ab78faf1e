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
    return UsageError(fmt::format(
        "FACETRAIN_FAULT='{}': expected KIND@RANK:STEP or KIND@RANK:PHASE (KIND throw, stall, "
        "kill or nan; PHASE startup, midstep, checkpoint, verification or shutdown)",
        s));
  };
  if (at == std::string::npos || colon == std::string::npos || colon < at) throw bad();
  f.kind_ = s.substr(0, at);
  if (f.kind_ != "throw" && f.kind_ != "stall" && f.kind_ != "kill" && f.kind_ != "nan")
    throw bad();
  const std::string when = s.substr(colon + 1);
  try {
    f.rank_ = std::stoi(s.substr(at + 1, colon - at - 1));
    if (when == "startup" || when == "midstep" || when == "checkpoint" || when == "verification" ||
        when == "shutdown") {
      if (f.kind_ == "nan") throw bad();
      f.phase_ = when;
    } else {
      std::size_t used = 0;
      f.step_ = std::stoll(when, &used);
      if (used != when.size()) throw bad();
    }
  } catch (const std::exception&) {
    throw bad();
  }
  return f;
}

const FaultInjection& FaultInjection::process() {
  static const FaultInjection f = from_env();
  return f;
}

void FaultInjection::at(int rank, const char* phase) const {
  static bool fired = false;
  if (phase_ != phase || rank_ != rank || fired) return;
  fired = true;
  if (!once_allows()) return;
  fire(rank, phase);
}

void FaultInjection::fire(int rank, const std::string& where) const {
  if (kind_ == "throw") throw Error(fmt::format("injected fault on rank {} at {}", rank, where));
  if (kind_ == "stall") std::raise(SIGSTOP);
  if (kind_ == "kill") std::raise(SIGKILL);
}

void FaultInjection::before_step(int rank, std::int64_t step) const {
  if (kind_ != "nan" && hits(rank, step, kind_.c_str())) fire(rank, fmt::format("step {}", step));
}

bool FaultInjection::hits(int rank, std::int64_t step, const char* kind) const {
  if (!phase_.empty() || kind_ != kind || rank_ != rank) return false;
  if (kind_ == "nan" ? step < step_ : step != step_) return false;
  return once_allows();
}

bool FaultInjection::once_allows() const {
  const char* once = std::getenv("FACETRAIN_FAULT_ONCE");
  if (once == nullptr || *once == 0) return true;
  if (std::filesystem::exists(once)) return false;
  std::ofstream(once) << kind_ << "\n";
  return true;
}

}  // namespace facetrain::train
