// The nftables text of the launcher's egress firewall: one table,
// `table inet pattern_launcher`, owned by the launcher. Pure text (no
// syscalls); sandbox/egress_firewall.h runs it through libnftables.
//
// Each pattern (one per isolation key) sits behind a veth pair whose host end
// is named <link_prefix><n>; its own end has `pattern_address` from the pool.
// What the rules promise, per key:
//  - it reaches exactly its allow-list (protocol, IPv4 network, port range);
//  - anything else fails at once (tcp: reset; others: icmpx admin-prohibited)
//    and is counted in the named counter denied_<id>;
//  - the host itself (input hook: its loopback services, the launcher's
//    ports, any of its addresses), the whole pool (other tenants) and the
//    never-reachable ranges are refused whatever the list says;
//  - it cannot use another source address than its own;
//  - only replies (ct established,related) come back towards our links;
//    ct invalid is dropped; IPv6 from our links is dropped;
//  - the pool is masqueraded on the way out (not towards our own links).
// Traffic that neither comes from nor goes to our links is left alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/ipv4.h"

namespace sandbox {

inline constexpr std::string_view kEgressTableName = "pattern_launcher";

struct EgressAllow {
    enum class Protocol { kTcp, kUdp };
    Protocol protocol = Protocol::kTcp;
    Ipv4Network network;
    std::uint16_t first_port = 0;
    std::uint16_t last_port = 65535;
};

struct EgressKey {
    std::string id;               // [a-z0-9_]{1,64}: used in chain, set and counter names
    std::string host_link;        // the host end of the key's veth: <link_prefix>..., an ifname
    Ipv4Address pattern_address;  // the pattern end's address, inside the pool
    std::vector<EgressAllow> allowed;
};

struct EgressTableSpec {
    Ipv4Network pool{{0x0ad50000u}, 16};  // 10.213.0.0/16
    std::string link_prefix = "plk";      // [a-z0-9]{1,8}
};

// One element of an allow set: a box of addresses x ports, both inclusive.
struct EgressElement {
    EgressAllow::Protocol protocol = EgressAllow::Protocol::kTcp;
    Ipv4Address first_address;
    Ipv4Address last_address;
    std::uint16_t first_port = 0;
    std::uint16_t last_port = 65535;
    friend bool operator==(const EgressElement&, const EgressElement&) = default;
};

// The same coverage as `allowed`, as pairwise disjoint elements (nft's
// interval sets refuse overlapping ones, and two manifest entries may well
// overlap). Sorted by protocol, address, port; boxes that can be merged
// (adjacent or overlapping in one dimension, equal in the other) are.
std::vector<EgressElement> disjoint_elements(const std::vector<EgressAllow>& allowed);

// Throw ConfigError naming the field when a spec or key cannot be rendered
// safely (names that are not nft identifiers or ifnames, an address outside
// the pool, a reversed port range, a host link without the prefix).
void validate_egress_spec(const EgressTableSpec& spec);
void validate_egress_key(const EgressTableSpec& spec, const EgressKey& key);

// Scripts; each is meant for ONE transaction (NftContext::run).
// The whole table: replaces an existing one atomically (declare, delete,
// define), so it also works when there is none. Ids and links must be unique.
std::string render_table(const EgressTableSpec& spec, const std::vector<EgressKey>& keys);
// A key that is not in the table yet (its objects are created with `create`:
// an existing one fails the whole transaction).
std::string render_add_key(const EgressTableSpec& spec, const EgressKey& key);
// Replaces the allow-list (flush set + add elements) and the key's chain
// (so a changed pattern_address applies too). host_link must be unchanged.
std::string render_update_key(const EgressTableSpec& spec, const EgressKey& key);
// Removes every object of the key (map elements first: they reference its chain).
std::string render_remove_key(std::string_view id, std::string_view host_link);
// Removes the table; fine when there is none.
std::string render_remove_table();
// `list counter` of the key's denied counter, and the parser of its output
// ("... counter denied_<id> { packets N bytes M } ..."): N, or nullopt.
std::string render_list_denied_counter(std::string_view id);
std::optional<std::uint64_t> parse_counter_packets(std::string_view nft_output);

}  // namespace sandbox
