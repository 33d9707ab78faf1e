#pragma once

#include <cstdint>
#include <string>

namespace facetrain::train {

// A seam for the failure tests: FACETRAIN_FAULT="KIND@RANK:WHEN" makes rank RANK throw (throw),
// stop itself with SIGSTOP (stall), die with SIGKILL (kill), or produce a NaN loss from then on
// (nan), WHEN being a step number (at the start of that step) or a phase: "startup" (before the
// first collective), "midstep" (the first step, between its forward and its backward),
// "checkpoint" (in the middle of writing the first checkpoint: its class
// centres written, the rest not), "verification" (at the start of the first verification) or
// "shutdown" (after the run's last work, before MPI ends). With FACETRAIN_FAULT_ONCE=FILE it
// fires only while FILE does not exist, and creates it (so a relaunched job runs clean). Unset in
// normal runs: nothing fires.
class FaultInjection {
 public:
  // From FACETRAIN_FAULT (UsageError when it is set but malformed).
  static FaultInjection from_env();
  // from_env(), read once per process, for the parts that have no run to carry it.
  static const FaultInjection& process();

  // Throws, stops or kills this process when a throw/stall/kill fault is planned for `phase`
  // (the first time it is reached).
  void at(int rank, const char* phase) const;

  // Throws, stops or kills this process when a throw/stall/kill fault is due at `step`.
  void before_step(int rank, std::int64_t step) const;
  // Whether the step's embeddings are to be poisoned with NaN.
  bool poisons(int rank, std::int64_t step) const { return hits(rank, step, "nan"); }

 private:
  bool hits(int rank, std::int64_t step, const char* kind) const;

  void fire(int rank, const std::string& where) const;
  bool once_allows() const;

  std::string kind_;
  int rank_ = -1;
  std::int64_t step_ = -1;
  std::string phase_;  // set instead of step_ for a phase fault
};

}  // namespace facetrain::train
