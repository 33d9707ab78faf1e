#include "framework/distributed/nccl_info.h"

#include <fmt/format.h>
#include <nccl.h>

#include "framework/core/error.h"

namespace facetrain::dist {

std::string nccl_version() {
  int code = 0;
  const ncclResult_t rc = ncclGetVersion(&code);
  if (rc != ncclSuccess) {
    throw DistError(fmt::format("ncclGetVersion failed: {}", ncclGetErrorString(rc)));
  }
  // NCCL >= 2.9 encodes the version as major*10000 + minor*100 + patch.
  return fmt::format("{}.{}.{}", code / 10000, (code / 100) % 100, code % 100);
}

}  // namespace facetrain::dist
