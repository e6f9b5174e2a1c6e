// The veth pair that gives a pattern's network namespace its one way out:
// the host end stays in the caller's namespace (where the nftables rules
// decide what may pass), the peer is born inside the pattern's namespace.
// Everything is rtnetlink (sandbox/netlink.h); no ip(8), no sysctl writes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/ipv4.h"

namespace sandbox {

struct VethSpec {
    std::string host_name;     // the host end, e.g. veth_host_name("plk", 3); at most IFNAMSIZ-1
    int netns_fd = -1;         // the pattern's network namespace (create_network_namespace())
    Ipv4Address host_address;  // the host end's address: the pattern's default gateway
    Ipv4Address peer_address;  // the pattern's address
    int prefix = 31;           // 31 (RFC 3021: two hosts, no network/broadcast) or 30
    std::string peer_name = "eth0";
};

// Creates the pair in one RTM_NEWLINK, the peer directly inside
// spec.netns_fd; addresses both ends, sets them (and lo inside) up, adds a
// default route via host_address inside, and turns IPv6 address generation
// off on both ends (no link-local address, so no IPv6 path at all). The
// caller's namespace needs IPv4 forwarding for traffic to go further
// (ipv4_forwarding_enabled()). ConfigError for a spec that cannot be right;
// SysError naming the step and link otherwise, after removing what was made
// (a pair that already existed under host_name is left alone).
void create_veth(const VethSpec& spec);

// Names of the links in the caller's network namespace that start with
// `name_prefix` (RTM_GETLINK dump), in the kernel's (ifindex) order.
std::vector<std::string> list_links(std::string_view name_prefix);

// Deletes link `name` of the caller's namespace; for a veth end the peer
// goes with it, wherever it is. A link that is already gone is no error.
void remove_link(const std::string& name);

// `prefix` + decimal `index` ("plk" + 3 -> "plk3"); ConfigError when the
// result is longer than IFNAMSIZ-1 (15) or the prefix is empty.
std::string veth_host_name(std::string_view prefix, std::uint32_t index);

}  // namespace sandbox
