#pragma once

#include <string>
#include <vector>

namespace facetrain::dist {

// The environment variable that names the network interface when dist.interface is not set.
inline constexpr const char* kInterfaceVariable = "FACETRAIN_IFNAME";

// This host's name (gethostname).
std::string host_name();

// The names of this host's network interfaces, sorted (getifaddrs; interfaces without an
// address are listed too).
std::vector<std::string> network_interfaces();

// The interface the job's traffic should use: `configured` (dist.interface), else
// FACETRAIN_IFNAME, else "" (the transports choose). Throws ConfigError when both are set and
// differ.
std::string chosen_interface(const std::string& configured);

// Makes `name` the one interface of MPI's TCP transport and NCCL's sockets in this process, before
// MPI starts: sets OMPI_MCA_btl_tcp_if_include and NCCL_SOCKET_IFNAME where the launcher has not
// set them already (a launcher's own choice wins, see scripts/launch.sh). Throws ConfigError
// naming the interface, this host and the interfaces it has when `name` is not one of them.
// An empty name leaves everything as it is.
void use_network_interface(const std::string& name);

}  // namespace facetrain::dist
