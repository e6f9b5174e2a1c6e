// Egress destinations: what a pattern in an isolated
// network namespace may connect to beyond its own `lo`, as a manifest's
// `sandbox.egress` and the launcher config's `egress.tenants` write them:
//
//   db.internal.example:5432        a host name (resolved by the launcher), one port
//   10.20.0.7:443                   an address (a /32)
//   10.20.0.0/16:8000-8099          a network, a range of ports
//   192.0.2.10:53/udp               /udp, or /tcp (the default)
//
// Only the words are parsed here (pure: no resolver, no kernel); the veth
// pair and the nftables rules that enforce a list are core/kernel_network.h and sandbox/.
// IPv4 only for now: an IPv6 destination is recognised and refused.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sandbox/ipv4.h"

namespace launcher {

struct EgressDestination {
    enum class Protocol { kTcp, kUdp };
    Protocol protocol = Protocol::kTcp;
    // An address is a /32. A host name is kept in lower case, without a
    // trailing dot ("DB.Example.com." is "db.example.com").
    std::variant<sandbox::Ipv4Network, std::string /*host name*/> host;
    std::uint16_t first_port = 0;  // 1..65535
    std::uint16_t last_port = 0;   // first_port..65535; == first_port for a host name
    std::string text;              // as written, for messages and reports

    bool is_host_name() const noexcept { return std::holds_alternative<std::string>(host); }
    // Same protocol, host and ports (`text` aside: "10.0.0.1:80" and
    // "10.0.0.1/32:80/tcp" are the same destination).
    bool same_as(const EgressDestination& other) const {
        return protocol == other.protocol && host == other.host && first_port == other.first_port &&
               last_port == other.last_port;
    }
};

// What parse_egress_destination() throws: the reason, without the file or
// the line (the YAML readers add them: a FileError at the entry's line).
class EgressSyntaxError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// One destination, `HOST:PORT`, `CIDR:PORT` or `CIDR:FIRST-LAST`, with an
// optional `/udp` or `/tcp` suffix. Throws EgressSyntaxError naming the
// problem for:
// - a missing or bad port (not 1..65535, first > last, not digits);
// - a port range with a host name (a name takes one port: the launcher
//   resolves it and opens that port on each of its addresses; list it once
//   per port);
// - a suffix other than /udp or /tcp;
// - a host that is neither an IPv4 address or network (host bits beyond the
//   prefix are a typo, refused) nor an RFC 1123 host name (letters, digits,
//   '-' and '.'; labels 1..63, not starting or ending with '-'; at most 253
//   characters; a last label of digits only, as in the typo "10.0.0.300",
//   is no name);
// - `localhost` and names below it (RFC 6761: host loopback);
// - a destination that lies entirely inside one of never_reachable_networks();
// - an IPv6 destination ("IPv6 egress is not supported yet").
// One that only overlaps them (0.0.0.0/0) is accepted: the never-reachable
// ranges stay closed whatever a list says.
EgressDestination parse_egress_destination(std::string_view text);

// A never-reachable range and why, for messages and the enforcement.
struct NeverReachable {
    sandbox::Ipv4Network network;
    const char* why;  // "loopback", "link-local", ...
};

// 0.0.0.0/8 ("this network"), 127.0.0.0/8 (loopback), 169.254.0.0/16
// (link-local, where cloud metadata services answer), 224.0.0.0/4
// (multicast), 240.0.0.0/4 (reserved, with 255.255.255.255, the limited
// broadcast). Closed whatever a list says (the host's loopback, the
// launcher's own ports and other tenants' veths are closed too, by the
// enforcement: they are not fixed networks).
const std::vector<NeverReachable>& never_reachable_networks();

// The launcher config's `egress:` section (egress_section.h reads it).
struct EgressSettings {
    // The /31 of each key's veth pair comes from here (egress_pool.h).
    sandbox::Ipv4Network pool{{0x0ad50000}, 16};  // 10.213.0.0/16
    // How often host names are resolved again.
    std::chrono::milliseconds resolve_interval{30000};
    // By namespace id: destinations added to the keys of that namespace.
    std::map<std::string, std::vector<EgressDestination>> tenants;
};

}  // namespace launcher
