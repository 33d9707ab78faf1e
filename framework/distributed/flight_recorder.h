#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace facetrain::dist {

// The last collectives of one communicator, as c10d's flight recorder keeps them: for each, its
// description ("all_reduce #10 (sum, float[1024])"), when this rank issued it and when it
// completed here. A timeout message quotes it, and a peer asking this rank where it is
// (PeerProbe) is answered from it, so a stalled job says which rank stopped where.
// Thread-safe; keeps the newest `capacity` collectives.
class FlightRecorder {
 public:
  using Clock = std::chrono::steady_clock;

  // `label` names the communicator in answers ("communicator 1"); `capacity` >= 1.
  explicit FlightRecorder(std::string label, std::size_t capacity = 16);

  // Collective `seq`, described by `what`, was issued now.
  void issued(std::uint64_t seq, std::string what);
  // Collective `seq` completed on this rank now (an unknown or evicted `seq` is ignored).
  void completed(std::uint64_t seq);

  // Where this rank is, as of `now`: "waiting 9.8 s in all_reduce #10 (…)" for the oldest
  // collective not yet complete, else "last collective all_reduce #9 (…) completed 0.2 s ago",
  // or "no collective yet"; prefixed with the label.
  std::string where(Clock::time_point now = Clock::now()) const;
  // True while some collective has been issued and not completed.
  bool waiting() const;
  // The kept collectives, oldest first, one line each: "all_reduce #9 (…): completed in 3.1 ms"
  // or "all_reduce #10 (…): waiting for 9.8 s".
  std::vector<std::string> history(Clock::time_point now = Clock::now()) const;

 private:
  struct Entry {
    std::uint64_t seq;
    std::string what;
    Clock::time_point issued;
    std::optional<Clock::time_point> completed;
  };

  std::string label_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Entry> entries_;
};

}  // namespace facetrain::dist
