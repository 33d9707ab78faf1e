#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

namespace facetrain::dist {

// The OpenMPI launcher process that started this one: mpirun (orterun) on the host it runs on,
// the orted daemon on the others; found among this process's ancestors (a wrapper such as
// numactl or a shell may sit between). Under srun or without a launcher there is none.
struct LauncherDaemon {
  pid_t pid = 0;
  std::string name;                    // "mpirun", "orted", ...
  unsigned long long start_ticks = 0;  // /proc/PID/stat start time: tells a reused pid apart
};
std::optional<LauncherDaemon> launcher_daemon();

// When process `pid` started (/proc/PID/stat, in clock ticks since boot), if it exists.
std::optional<unsigned long long> process_start_ticks(pid_t pid);

// Leaves behind a detached process that ends `daemon` if it is still running after `delay`
// (mpirun with SIGKILL; a daemon with SIGTERM, then SIGKILL a second later), and otherwise does
// nothing.
//
// Why: a rank that aborts the job asks mpirun to end it, and mpirun then waits for every host's
// daemon to report its processes gone. A daemon on a host that no longer answers (cut off, or
// frozen) never reports, and mpirun waits for ever; so does a daemon whose mpirun cannot be
// reached. Ended this way, mpirun exits non-zero (a launcher can relaunch) and the daemons on the
// hosts that still answer see it gone and end their processes themselves. The helper holds none
// of this process's files, so its life does not delay anyone's view of this process ending.
void end_unless_gone(const LauncherDaemon& daemon, std::chrono::milliseconds delay);

}  // namespace facetrain::dist
