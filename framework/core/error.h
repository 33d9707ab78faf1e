#pragma once

#include <stdexcept>
#include <string>

namespace facetrain {

// The root of facetrain's exceptions. Every message names the thing that failed (file, key, index,
// rank), what was expected and what was found. Only app/cli turns these into exit codes:
// UsageError and ConfigError exit 2, every other Error exits 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// The command line itself is wrong: an unknown option, a missing argument, a bad combination.
class UsageError : public Error {
 public:
  using Error::Error;
};

// A configuration file or a --set override is wrong: unknown key, wrong type, value out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A dataset, shard, image or verification pack is missing, malformed or inconsistent.
class DataError : public Error {
 public:
  using Error::Error;
};

// A collective failed, timed out, or a peer rank died; raised on every rank that notices.
class DistError : public Error {
 public:
  using Error::Error;
};

// A checkpoint is missing, truncated, foreign or does not match the model.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// The system failed to read or write a file for a reason that is not the file's content: a
// permission, an I/O error, a full disk. Never a sign of damaged input: reported, not skipped.
class IoError : public Error {
 public:
  using Error::Error;
};

// The process exit code the CLI uses for an exception of this kind.
int exit_code_for(const std::exception& e) noexcept;

}  // namespace facetrain
