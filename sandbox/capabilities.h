// Capability sets as bit masks (bit N = capability N), computed in the
// parent and applied by the child with raw prctl/capset calls.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox {

using CapabilityMask = std::uint64_t;

// Parses names such as "CAP_NET_BIND_SERVICE", "cap_net_bind_service" or
// "net_bind_service" (libcap's table). Throws ConfigError naming an unknown
// capability.
CapabilityMask parse_capabilities(const std::vector<std::string>& names);

// "cap_net_bind_service,cap_kill" for diagnostics; "" for an empty mask.
std::string capability_names(CapabilityMask mask);

// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
int last_capability();

}  // namespace sandbox
