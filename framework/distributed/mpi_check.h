#pragma once

#include <mpi.h>

namespace facetrain::dist::detail {

// Throws DistError with the MPI call, its location and MPI's own error string.
[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

}  // namespace facetrain::dist::detail

// Checks the return code of an MPI call (MPI errors are set to return, not abort).
#define FT_CHECK_MPI(call)                                                               \
  do {                                                                                   \
    const int ft_mpi_rc_ = (call);                                                       \
    if (ft_mpi_rc_ != MPI_SUCCESS) {                                                     \
      ::facetrain::dist::detail::throw_mpi_error(ft_mpi_rc_, #call, __FILE__, __LINE__); \
    }                                                                                    \
  } while (false)
