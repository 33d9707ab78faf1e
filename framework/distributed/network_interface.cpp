#include "framework/distributed/network_interface.h"

#include <fmt/format.h>
#include <ifaddrs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "framework/core/error.h"
#include "framework/core/strings.h"

namespace facetrain::dist {
namespace {

void set_unless_set(const char* variable, const std::string& value) {
  if (std::getenv(variable) == nullptr) ::setenv(variable, value.c_str(), 1);
}

}  // namespace

std::string host_name() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

std::vector<std::string> network_interfaces() {
  std::vector<std::string> names;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return names;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_name != nullptr) names.emplace_back(i->ifa_name);
  }
  ::freeifaddrs(list);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string chosen_interface(const std::string& configured) {
  const char* from_env = std::getenv(kInterfaceVariable);
  const std::string env = from_env != nullptr ? from_env : "";
  if (!configured.empty() && !env.empty() && configured != env) {
    throw ConfigError(fmt::format(
        "dist.interface = \"{}\" but {}={}: name the interface in one place, or make them agree",
        configured, kInterfaceVariable, env));
  }
  return configured.empty() ? env : configured;
}

void use_network_interface(const std::string& name) {
  if (name.empty()) return;
  const auto present = network_interfaces();
  if (std::find(present.begin(), present.end(), name) == present.end()) {
    throw ConfigError(fmt::format(
        "network interface '{}' (dist.interface / {}) does not exist on {}; it has: {}", name,
        kInterfaceVariable, host_name(), join(present, ", ")));
  }
  set_unless_set("OMPI_MCA_btl_tcp_if_include", name);
  set_unless_set("NCCL_SOCKET_IFNAME", name);
}

}  // namespace facetrain::dist
