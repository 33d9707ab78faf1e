// The single-process parts of how a job names what went wrong and ends: the flight recorder,
// rank lists by host, the network interface setting, and the helper that ends a launcher daemon.

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "framework/core/error.h"
#include "framework/distributed/flight_recorder.h"
#include "framework/distributed/launcher_daemon.h"
#include "framework/distributed/network_interface.h"
#include "framework/distributed/peer_probe.h"
#include "tests/support/thrown_message.h"

extern char** environ;

namespace facetrain {
namespace {

using Clock = dist::FlightRecorder::Clock;
using std::chrono::milliseconds;

TEST(FlightRecorderTest, SaysWhereTheRankWaitsAndKeepsTheNewest) {
  dist::FlightRecorder recorder("communicator 3", 2);
  EXPECT_EQ(recorder.where(), "communicator 3: no collective yet");
  EXPECT_FALSE(recorder.waiting());
  recorder.issued(1, "all_reduce #1 (sum, Float[4])");
  recorder.completed(1);
  const auto t = Clock::now();
  EXPECT_NE(recorder.where(t + milliseconds(2500))
                .find("communicator 3: last collective all_reduce #1 (sum, Float[4]) completed 2.5 s"),
            std::string::npos)
      << recorder.where(t);
  recorder.issued(2, "barrier #2");
  EXPECT_TRUE(recorder.waiting());
  const std::string where = recorder.where(Clock::now() + milliseconds(9800));
  EXPECT_NE(where.find("communicator 3: waiting 9.8 s in barrier #2"), std::string::npos) << where;
  recorder.completed(77);  // unknown: ignored
  recorder.issued(3, "broadcast #3 (root 0, Long[1])");
  const auto history = recorder.history();
  ASSERT_EQ(history.size(), 2u);  // #1 evicted
  EXPECT_EQ(history[0].rfind("barrier #2: waiting for ", 0), 0u) << history[0];
  EXPECT_EQ(history[1].rfind("broadcast #3 (root 0, Long[1]): waiting for ", 0), 0u) << history[1];
  recorder.completed(2);
  EXPECT_EQ(recorder.history()[0].rfind("barrier #2: completed in ", 0), 0u);
}

TEST(PeerProbeTest, RanksAreListedAsRangesPerHost) {
  EXPECT_EQ(dist::rank_ranges({5, 0, 2, 1}), "0-2, 5");
  EXPECT_EQ(dist::rank_ranges({7}), "7");
  EXPECT_EQ(dist::rank_ranges({}), "");
  const std::vector<std::string> hosts = {"node1", "node1", "node2", "node2", "node3"};
  EXPECT_EQ(dist::ranks_by_host({2, 3, 4}, hosts), "ranks 2-3 on node2, rank 4 on node3");
  EXPECT_EQ(dist::ranks_by_host({4, 0}, hosts), "rank 4 on node3, rank 0 on node1");
  EXPECT_EQ(dist::PeerProbe::grace(std::chrono::seconds(600)), milliseconds(1500));
  EXPECT_EQ(dist::PeerProbe::grace(std::chrono::seconds(1)), milliseconds(500));
}

// Restores an environment variable when the test ends.
class SavedVariable {
 public:
  explicit SavedVariable(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) value_ = v;
    had_ = std::getenv(name) != nullptr;
    ::unsetenv(name);
  }
  ~SavedVariable() {
    if (had_) {
      ::setenv(name_, value_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string value_;
  bool had_ = false;
};

TEST(NetworkInterfaceTest, OneSettingNamesTheInterfaceOfEveryTransport) {
  SavedVariable ifname(dist::kInterfaceVariable), btl("OMPI_MCA_btl_tcp_if_include"),
      nccl("NCCL_SOCKET_IFNAME");
  const auto present = dist::network_interfaces();
  ASSERT_NE(std::find(present.begin(), present.end(), "lo"), present.end());

  EXPECT_EQ(dist::chosen_interface(""), "");
  ::setenv(dist::kInterfaceVariable, "lo", 1);
  EXPECT_EQ(dist::chosen_interface(""), "lo");
  EXPECT_EQ(dist::chosen_interface("lo"), "lo");
  const std::string conflict =
      test::thrown_message<ConfigError>([] { dist::chosen_interface("eth7"); });
  EXPECT_NE(conflict.find("dist.interface = \"eth7\" but FACETRAIN_IFNAME=lo"), std::string::npos)
      << conflict;

  const std::string missing =
      test::thrown_message<ConfigError>([] { dist::use_network_interface("nosuch9"); });
  EXPECT_NE(missing.find("network interface 'nosuch9'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("does not exist on " + dist::host_name() + "; it has: "),
            std::string::npos)
      << missing;
  EXPECT_NE(missing.find("lo"), std::string::npos) << missing;
  EXPECT_EQ(std::getenv("NCCL_SOCKET_IFNAME"), nullptr);

  dist::use_network_interface("lo");
  EXPECT_STREQ(std::getenv("OMPI_MCA_btl_tcp_if_include"), "lo");
  EXPECT_STREQ(std::getenv("NCCL_SOCKET_IFNAME"), "lo");
  // A launcher's own choice is kept.
  ::setenv("NCCL_SOCKET_IFNAME", "^docker", 1);
  dist::use_network_interface("lo");
  EXPECT_STREQ(std::getenv("NCCL_SOCKET_IFNAME"), "^docker");
}

// A child process standing in for a launcher daemon.
pid_t spawn_sleeper() {
  char* argv[] = {const_cast<char*>("sleep"), const_cast<char*>("30"), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(posix_spawnp(&pid, "sleep", nullptr, nullptr, argv, environ), 0);
  return pid;
}

// Whether child `pid` has ended within `seconds` (reaping it).
bool ended_within(pid_t pid, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

TEST(LauncherDaemonTest, EndsTheDaemonOnlyIfItIsStillTheSameProcess) {
  EXPECT_FALSE(dist::process_start_ticks(-1).has_value());
  const pid_t daemon = spawn_sleeper();
  const auto ticks = dist::process_start_ticks(daemon);
  ASSERT_TRUE(ticks.has_value());
  // Another process by that number (a different start time) is left alone.
  dist::end_unless_gone({daemon, "orted", *ticks + 1}, milliseconds(100));
  EXPECT_FALSE(ended_within(daemon, 2.0));
  dist::end_unless_gone({daemon, "orted", *ticks}, milliseconds(100));
  EXPECT_TRUE(ended_within(daemon, 5.0));

  const pid_t head = spawn_sleeper();
  const auto head_ticks = dist::process_start_ticks(head);
  ASSERT_TRUE(head_ticks.has_value());
  dist::end_unless_gone({head, "mpirun", *head_ticks}, milliseconds(100));
  EXPECT_TRUE(ended_within(head, 5.0));
  // This test process was not started by an OpenMPI launcher.
  EXPECT_FALSE(dist::launcher_daemon().has_value());
}

}  // namespace
}  // namespace facetrain
