#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace facetrain::test {

// The value of environment variable `name`, or "" (CTest sets FACETRAIN_BIN, FACETRAIN_PYTHON
// and FACETRAIN_SOURCE_DIR for the tests that run programs).
inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// A finished process: its exit code (128 + signal when killed) and what it printed.
struct Exec {
  int code = -1;
  std::string out;
};

// Runs `command` with sh, capturing stdout (and stderr too unless `with_stderr` is false).
inline Exec run(const std::string& command, bool with_stderr = true) {
  Exec r;
  FILE* pipe = ::popen((command + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Runs a script from the source tree's tests/ folder with the tests' Python.
inline Exec run_python(const std::string& script_and_args) {
  return run(env("FACETRAIN_PYTHON") + " " + env("FACETRAIN_SOURCE_DIR") + "/tests/" +
             script_and_args);
}

}  // namespace facetrain::test
