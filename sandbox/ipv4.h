// IPv4 addresses and networks, in host byte order, as the egress pieces
// (veth addresses, the address pool, nftables rules, manifest destinations)
// pass them around. inet_pton(3) parses; this adds the prefix, containment
// and the canonical text that nft and ip(8) accept.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox {

struct Ipv4Address {
    std::uint32_t value = 0;  // host byte order: 10.0.0.1 is 0x0a000001
    friend auto operator<=>(const Ipv4Address&, const Ipv4Address&) = default;
};

// A network: `address` has no bits set beyond `prefix` (0..32).
struct Ipv4Network {
    Ipv4Address address;
    int prefix = 32;
    friend auto operator<=>(const Ipv4Network&, const Ipv4Network&) = default;

    std::uint32_t mask() const noexcept {
        return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    }
    bool contains(Ipv4Address a) const noexcept { return (a.value & mask()) == address.value; }
    bool overlaps(const Ipv4Network& other) const noexcept {
        return contains(other.address) || other.contains(address);
    }
    Ipv4Address last() const noexcept { return {address.value | ~mask()}; }
};

// Dotted quad only ("10.1.2.3"); nullopt for anything else (inet_pton's rules).
std::optional<Ipv4Address> parse_ipv4_address(std::string_view text);
// "10.1.0.0/16", or an address alone (a /32). nullopt when the text is not
// one, or when bits beyond the prefix are set ("10.1.0.1/16"): such a
// network is a typo more often than not, so it is refused, not masked.
std::optional<Ipv4Network> parse_ipv4_network(std::string_view text);

std::string to_string(Ipv4Address a);
std::string to_string(const Ipv4Network& n);  // "10.1.0.0/16"

}  // namespace sandbox
