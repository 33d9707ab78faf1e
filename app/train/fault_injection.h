#pragma once

#include <cstdint>
#include <string>

namespace facetrain::train {

// A seam for the failure tests: FACETRAIN_FAULT="KIND@RANK:STEP" makes rank RANK, on reaching
// STEP, throw (throw), stop itself with SIGSTOP (stall), die with SIGKILL (kill), or produce a
// NaN loss from then on (nan). With FACETRAIN_FAULT_ONCE=FILE it fires only while FILE does not
// exist, and creates it (so a relaunched job runs clean). Unset in normal runs: nothing fires.
class FaultInjection {
 public:
  // From FACETRAIN_FAULT (UsageError when it is set but malformed).
  static FaultInjection from_env();

  // Throws, stops or kills this process when a throw/stall/kill fault is due at `step`.
  void before_step(int rank, std::int64_t step) const;
  // Whether the step's embeddings are to be poisoned with NaN.
  bool poisons(int rank, std::int64_t step) const { return hits(rank, step, "nan"); }

 private:
  bool hits(int rank, std::int64_t step, const char* kind) const;

  std::string kind_;
  int rank_ = -1;
  std::int64_t step_ = -1;
};

}  // namespace facetrain::train
