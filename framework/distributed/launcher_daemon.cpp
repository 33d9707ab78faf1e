#include "framework/distributed/launcher_daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <sstream>
#include <string>

extern char** environ;

namespace facetrain::dist {
namespace {

// The names OpenMPI's launchers run under (ORTE in 4.x, PRRTE in 5.x).
constexpr std::array<const char*, 6> kLauncherNames = {"mpirun", "mpiexec", "orterun",
                                                       "orted", "prterun", "prted"};
// A wrapper between the launcher and this process is at most a few levels deep.
constexpr int kMaxAncestors = 4;

struct ProcessInfo {
  std::string name;
  pid_t parent = 0;
  unsigned long long start_ticks = 0;
};

// /proc/PID/stat: "pid (comm) state ppid ... starttime(22nd field) ...". comm may hold spaces
// and parentheses, so the fields are read after the last ')'.
std::optional<ProcessInfo> process_info(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  const auto open = stat.find('(');
  const auto close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  ProcessInfo info;
  info.name = stat.substr(open + 1, close - open - 1);
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  rest >> state >> info.parent;
  std::string skip;
  for (int field = 5; field < 22; ++field) rest >> skip;  // fields 5..21
  rest >> info.start_ticks;
  if (!rest) return std::nullopt;
  return info;
}

bool is_launcher(const std::string& name) {
  for (const char* n : kLauncherNames) {
    if (name == n) return true;
  }
  return false;
}

}  // namespace

std::optional<unsigned long long> process_start_ticks(pid_t pid) {
  const auto info = process_info(pid);
  if (!info) return std::nullopt;
  return info->start_ticks;
}

std::optional<LauncherDaemon> launcher_daemon() {
  pid_t pid = ::getppid();
  for (int level = 0; level < kMaxAncestors && pid > 1; ++level) {
    const auto info = process_info(pid);
    if (!info) return std::nullopt;
    if (is_launcher(info->name)) return LauncherDaemon{pid, info->name, info->start_ticks};
    pid = info->parent;
  }
  return std::nullopt;
}

void end_unless_gone(const LauncherDaemon& daemon, std::chrono::milliseconds delay) {
  // A shell does the waiting: nothing of this process (threads, memory, MPI, CUDA) is copied.
  // The start time in /proc/PID/stat is compared first, so a reused pid is never signalled.
  // mpirun is killed outright: told to end again while its abort is stuck, it only crashes.
  // A daemon gets SIGTERM first, to end the processes it started.
  const bool head = daemon.name != "orted" && daemon.name != "prted";
  const std::string script = fmt::format(
      "sleep {0:.3f}; same() {{ s=$(cat /proc/{1}/stat 2>/dev/null) || return 1; "
      "set -- ${{s##*)}}; shift 19; [ \"$1\" = {2} ]; }}; "
      "same || exit 0; {3}kill -KILL {1}; exit 0",
      static_cast<double>(delay.count()) / 1000.0, daemon.pid, daemon.start_ticks,
      head ? "" : fmt::format("kill -TERM {}; sleep 1; same || exit 0; ", daemon.pid));
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&files, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&files, 3);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);
  const std::string shell = "/bin/sh";
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"),
                  const_cast<char*>(script.c_str()), nullptr};
  pid_t helper = 0;
  posix_spawn(&helper, shell.c_str(), &files, &attributes, argv, environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&files);
}

}  // namespace facetrain::dist
