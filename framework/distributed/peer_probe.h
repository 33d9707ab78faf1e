#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "framework/distributed/flight_recorder.h"

namespace facetrain::dist {

// Which ranks of the job are still there, asked by a rank whose collective has timed out (as
// c10d's heartbeat monitor lets a timed-out rank tell the silent peers from the busy ones).
// Every process runs a responder thread on a communicator of its own; a query goes to every
// other rank, each live rank answers at once — even while its training thread computes — with
// where it is (its communicators' flight recorders), and the ranks that do not answer within the
// grace period are the ones that stalled, died or were cut off. Needs MPI_THREAD_MULTIPLE.
class PeerProbe {
 public:
  struct Answer {
    int rank = 0;
    bool answered = false;
    std::string status;  // the peer's own account, e.g. "communicator 0: waiting 9.8 s in …"
  };

  // Collective over `comm` (duplicated, so the probe's messages never meet the job's);
  // `hosts[r]` is rank r's host name.
  PeerProbe(MPI_Comm comm, std::vector<std::string> hosts);
  ~PeerProbe();
  PeerProbe(const PeerProbe&) = delete;
  PeerProbe& operator=(const PeerProbe&) = delete;

  // Answers queries from now on with where `recorder`'s communicator is (while it lives).
  void watch(const std::shared_ptr<const FlightRecorder>& recorder);

  // Asks every other rank where it is; returns one Answer per other rank once all answered or
  // `grace` has passed.
  std::vector<Answer> ask_peers(std::chrono::milliseconds grace);

  // ask_peers() as a sentence for a timeout message: which ranks (on which hosts) did not
  // answer, and what the others said.
  std::string account(std::chrono::milliseconds grace);

  // How long a rank whose collective timed out after `timeout` waits for the answers: live
  // ranks answer within milliseconds, so 0.5 to 1.5 s.
  static std::chrono::milliseconds grace(std::chrono::milliseconds timeout);

  // Stops answering and releases the probe's communicator; called before MPI_Finalize.
  void stop();

  const std::vector<std::string>& hosts() const { return hosts_; }

 private:
  void respond();
  std::string status() const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::vector<std::string> hosts_;
  std::atomic<bool> stopping_{false};
  std::thread responder_;
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<const FlightRecorder>> recorders_;
  std::mutex ask_mutex_;
  std::int64_t queries_ = 0;  // queries asked, under ask_mutex_
};

// Rank numbers as ranges: {0, 1, 2, 5} → "0-2, 5".
std::string rank_ranges(const std::vector<int>& ranks);

// The ranks of `hosts` (rank r on hosts[r]) that are in `ranks`, grouped by host in order of
// first appearance: "ranks 2-3 on node2, rank 5 on node3".
std::string ranks_by_host(const std::vector<int>& ranks, const std::vector<std::string>& hosts);

}  // namespace facetrain::dist
