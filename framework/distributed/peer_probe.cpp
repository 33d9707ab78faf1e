#include "framework/distributed/peer_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "framework/core/strings.h"
#include "framework/distributed/mpi_check.h"

namespace facetrain::dist {
namespace {

constexpr int kQueryTag = 1;
constexpr int kAnswerTag = 2;
constexpr int kStatusBytes = 512;
// How often the responder looks for a query: an answer costs a peer at most this long.
constexpr auto kPoll = std::chrono::milliseconds(10);
// Answers shown in full in account(); the rest are counted.
constexpr std::size_t kShown = 6;

// An answer: the number of the query it answers (a late answer to an earlier query must not pass
// for the answer to this one), then the text.
struct Status {
  std::int64_t query = 0;
  std::array<char, kStatusBytes> text{};
};

Status to_status(std::int64_t query, const std::string& text) {
  Status s;
  s.query = query;
  std::memcpy(s.text.data(), text.data(), std::min<std::size_t>(text.size(), kStatusBytes - 1));
  return s;
}

std::string from_status(const Status& s) {
  return std::string(s.text.data(), strnlen(s.text.data(), kStatusBytes));
}

std::string seconds_text(std::chrono::milliseconds d) {
  return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000.0);
}

}  // namespace

std::string rank_ranges(const std::vector<int>& ranks) {
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(sorted[i])
                           : fmt::format("{}-{}", sorted[i], sorted[j]));
    i = j + 1;
  }
  return join(parts, ", ");
}

std::string ranks_by_host(const std::vector<int>& ranks, const std::vector<std::string>& hosts) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> by_host;
  for (int r : ranks) {
    const std::string host = r >= 0 && r < static_cast<int>(hosts.size()) ? hosts[r] : "?";
    if (!by_host.count(host)) order.push_back(host);
    by_host[host].push_back(r);
  }
  std::vector<std::string> parts;
  for (const auto& host : order) {
    const auto& rs = by_host[host];
    parts.push_back(
        fmt::format("{} {} on {}", rs.size() == 1 ? "rank" : "ranks", rank_ranges(rs), host));
  }
  return join(parts, ", ");
}

PeerProbe::PeerProbe(MPI_Comm comm, std::vector<std::string> hosts) : hosts_(std::move(hosts)) {
  FT_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
  FT_CHECK_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  FT_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  FT_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  responder_ = std::thread([this] { respond(); });
}

PeerProbe::~PeerProbe() { stop(); }

void PeerProbe::stop() {
  if (stopping_.exchange(true)) return;
  if (responder_.joinable()) responder_.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void PeerProbe::watch(const std::shared_ptr<const FlightRecorder>& recorder) {
  std::lock_guard<std::mutex> lock(mutex_);
  recorders_.push_back(recorder);
}

std::string PeerProbe::status() const {
  std::vector<std::shared_ptr<const FlightRecorder>> live;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& weak : recorders_) {
      if (auto r = weak.lock()) live.push_back(std::move(r));
    }
  }
  if (live.empty()) return "alive, with no communicator open";
  // A communicator with a collective in flight says most about where this rank is.
  std::stable_partition(live.begin(), live.end(), [](const auto& r) { return r->waiting(); });
  std::vector<std::string> parts;
  for (const auto& r : live) parts.push_back(r->where());
  return join(parts, "; ");
}

void PeerProbe::respond() {
  std::array<std::int64_t, 2> query{};
  MPI_Request incoming = MPI_REQUEST_NULL;
  struct Outgoing {
    MPI_Request request;
    std::unique_ptr<Status> text;
  };
  std::vector<Outgoing> outgoing;
  while (!stopping_.load()) {
    if (incoming == MPI_REQUEST_NULL &&
        MPI_Irecv(query.data(), 2, MPI_INT64_T, MPI_ANY_SOURCE, kQueryTag, comm_, &incoming) !=
            MPI_SUCCESS) {
      return;  // the probe's communicator is broken: nothing more to answer
    }
    int done = 0;
    MPI_Status from;
    if (MPI_Test(&incoming, &done, &from) != MPI_SUCCESS) return;
    if (done) {
      incoming = MPI_REQUEST_NULL;
      Outgoing answer{MPI_REQUEST_NULL, std::make_unique<Status>(to_status(query[1], status()))};
      if (MPI_Isend(answer.text.get(), sizeof(Status), MPI_BYTE, from.MPI_SOURCE, kAnswerTag,
                    comm_, &answer.request) == MPI_SUCCESS) {
        outgoing.push_back(std::move(answer));
      }
      continue;
    }
    outgoing.erase(std::remove_if(outgoing.begin(), outgoing.end(),
                                  [](Outgoing& o) {
                                    int sent = 0;
                                    return MPI_Test(&o.request, &sent, MPI_STATUS_IGNORE) !=
                                               MPI_SUCCESS ||
                                           sent;
                                  }),
                   outgoing.end());
    std::this_thread::sleep_for(kPoll);
  }
  if (incoming != MPI_REQUEST_NULL) {
    MPI_Cancel(&incoming);
    MPI_Wait(&incoming, MPI_STATUS_IGNORE);
  }
  // An answer to a peer that has gone may never complete: let MPI finish it and keep its text.
  for (auto& o : outgoing) {
    MPI_Request_free(&o.request);
    static_cast<void>(o.text.release());
  }
}

std::vector<PeerProbe::Answer> PeerProbe::ask_peers(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> one_at_a_time(ask_mutex_);
  std::vector<Answer> answers;
  if (stopping_.load()) return answers;
  const std::int64_t number = ++queries_;
  // On the heap: a query to a rank that has gone may never be delivered, and MPI may read it
  // until then (see the end).
  auto query =
      std::make_unique<std::array<std::int64_t, 2>>(std::array<std::int64_t, 2>{rank_, number});
  std::vector<Status> texts(static_cast<std::size_t>(size_));
  std::vector<MPI_Request> receives;
  std::vector<MPI_Request> sends;
  auto receive = [&](int r, MPI_Request* request) {
    return MPI_Irecv(&texts[r], sizeof(Status), MPI_BYTE, r, kAnswerTag, comm_, request);
  };
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    answers.push_back(Answer{r, false, "no answer"});
    MPI_Request recv = MPI_REQUEST_NULL;
    MPI_Request send = MPI_REQUEST_NULL;
    if (receive(r, &recv) != MPI_SUCCESS ||
        MPI_Isend(query->data(), 2, MPI_INT64_T, r, kQueryTag, comm_, &send) != MPI_SUCCESS) {
      answers.back().status = "could not be asked";
    }
    receives.push_back(recv);
    sends.push_back(send);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    bool all = true;
    for (std::size_t i = 0; i < receives.size(); ++i) {
      if (receives[i] == MPI_REQUEST_NULL) continue;
      const int r = answers[i].rank;
      int done = 0;
      if (MPI_Test(&receives[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        answers[i].status = "connection lost";
        receives[i] = MPI_REQUEST_NULL;
        continue;
      }
      if (done && texts[r].query != number) {
        // A late answer to an earlier query: wait for this one's.
        done = 0;
        if (receive(r, &receives[i]) != MPI_SUCCESS) receives[i] = MPI_REQUEST_NULL;
      }
      if (done) {
        answers[i].answered = true;
        answers[i].status = from_status(texts[r]);
      } else {
        all = false;
      }
    }
    if (all || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (auto& recv : receives) {
    if (recv == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&recv);
    MPI_Wait(&recv, MPI_STATUS_IGNORE);
  }
  bool delivered = true;
  for (auto& send : sends) {
    int done = 1;
    if (send != MPI_REQUEST_NULL && (MPI_Test(&send, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done)) {
      delivered = false;
      if (send != MPI_REQUEST_NULL) MPI_Request_free(&send);
    }
  }
  if (!delivered) static_cast<void>(query.release());
  return answers;
}

std::chrono::milliseconds PeerProbe::grace(std::chrono::milliseconds timeout) {
  return std::clamp(timeout / 8, std::chrono::milliseconds(500), std::chrono::milliseconds(1500));
}

std::string PeerProbe::account(std::chrono::milliseconds grace) {
  auto answers = ask_peers(grace);
  // The ranks that are not waiting in a collective say most about a hang: they come first.
  std::stable_partition(answers.begin(), answers.end(), [](const Answer& a) {
    return a.status.find("waiting") == std::string::npos;
  });
  std::vector<int> silent;
  std::vector<std::string> answered;
  std::size_t more = 0;
  for (const auto& a : answers) {
    if (!a.answered) {
      silent.push_back(a.rank);
    } else if (answered.size() < kShown) {
      answered.push_back(fmt::format("rank {} on {} ({})", a.rank, hosts_.at(a.rank), a.status));
    } else {
      ++more;
    }
  }
  if (more > 0) answered.push_back(fmt::format("{} more", more));
  if (silent.empty()) {
    return fmt::format(
        "every other rank answered within {}, so none is gone, but not all of them are in this "
        "collective (a rank runs another collective, or is still computing): {}",
        seconds_text(grace), join(answered, "; "));
  }
  return fmt::format("no answer within {} from {} (stalled, dead or cut off from {}){}",
                     seconds_text(grace), ranks_by_host(silent, hosts_), hosts_.at(rank_),
                     answered.empty() ? "" : "; answered: " + join(answered, "; "));
}

}  // namespace facetrain::dist
