#pragma once

#include <memory>

#include "framework/distributed/communicator.h"
#include "framework/distributed/mpi_runtime.h"

namespace facetrain::test {

// The communicator over every rank of the test job (set up by mpi_test_main.cpp).
std::shared_ptr<dist::Communicator> world();
const dist::LaunchEnv& launch_env();

}  // namespace facetrain::test
