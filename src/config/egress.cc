#include "config/egress.h"

#include <algorithm>
#include <charconv>
#include <optional>

namespace launcher {

namespace {

using sandbox::Ipv4Address;
using sandbox::Ipv4Network;

constexpr std::string_view kForms =
    "expected HOST:PORT, CIDR:PORT or CIDR:FIRST-LAST, optionally with /udp or /tcp "
    "(e.g. db.example.com:5432, 10.0.0.0/8:8000-8099, 192.0.2.53:53/udp)";

[[noreturn]] void refuse(std::string_view text, const std::string& why) {
    throw EgressSyntaxError("'" + std::string(text) + "': " + why);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

// One port, 1..65535, decimal digits only (no sign, no spaces).
std::uint16_t parse_port(std::string_view text, std::string_view port) {
    if (!all_digits(port)) {
        refuse(text, "invalid port '" + std::string(port) + "' (a number from 1 to 65535)");
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value < 1 || value > 65535) {
        refuse(text, "port " + std::string(port) + " is out of range (1-65535)");
    }
    return static_cast<std::uint16_t>(value);
}

// RFC 1123 (2.1) host name: labels of letters, digits and '-', 1..63 long,
// not starting or ending with '-'; 253 characters at most (the 255 octets of
// RFC 1035 in wire form). `name` has no trailing dot.
std::optional<std::string> host_name_problem(std::string_view name) {
    if (name.size() > 253) {
        return "a host name has at most 253 characters, this one " + std::to_string(name.size());
    }
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = name.find('.', start);
        const std::string_view label = name.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty()) return std::string("a host name has no empty labels ('..')");
        if (label.size() > 63) {
            return "label '" + std::string(label) + "' is longer than 63 characters";
        }
        for (char c : label) {
            if (static_cast<unsigned char>(c) >= 0x80) {
                return std::string(
                    "a host name is ASCII (write an internationalised name in its xn-- form)");
            }
            const bool ok =
                is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
            if (!ok) {
                return "'" + std::string(1, c) +
                       "' is not allowed in a host name (letters, digits, '-' and '.')";
            }
        }
        if (label.front() == '-' || label.back() == '-') {
            return "label '" + std::string(label) + "' starts or ends with '-'";
        }
        if (dot == std::string_view::npos) {
            // RFC 1123 2.1: a name must not look like a dotted-decimal
            // address; RFC 3696 2: a top-level label is never all digits.
            if (all_digits(label)) {
                return std::string(
                    "neither an IPv4 address nor a host name (a host name's last "
                    "label is not all digits)");
            }
            return std::nullopt;
        }
        start = dot + 1;
    }
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

// The host part as an IPv4 network ("10.0.0.0/8", "10.0.0.7"), with the
// reason when it looks like one and is not.
std::optional<Ipv4Network> parse_network(std::string_view text, std::string_view host) {
    const std::size_t slash = host.find('/');
    const std::string_view address_text = host.substr(0, slash);
    const std::optional<Ipv4Address> address = sandbox::parse_ipv4_address(address_text);
    if (slash == std::string_view::npos) {
        if (address) return Ipv4Network{*address, 32};
        const bool dotted =
            std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
        if (dotted && std::any_of(host.begin(), host.end(), is_digit)) {
            refuse(text, "invalid IPv4 address '" + std::string(host) + "'");
        }
        return std::nullopt;  // a host name, perhaps
    }
    if (!address) refuse(text, "invalid IPv4 address '" + std::string(address_text) + "'");
    const std::string_view prefix_text = host.substr(slash + 1);
    int prefix = -1;
    // Digits only, no leading zero ("/08" is no prefix length to parse_ipv4_network).
    if (all_digits(prefix_text) && prefix_text.size() <= 2 &&
        (prefix_text.size() == 1 || prefix_text[0] != '0')) {
        std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
    }
    if (prefix < 0 || prefix > 32) {
        refuse(text, "invalid prefix length '/" + std::string(prefix_text) + "' (0 to 32)");
    }
    if (const auto network = sandbox::parse_ipv4_network(host)) return network;
    Ipv4Network masked{*address, prefix};
    masked.address.value &= masked.mask();
    refuse(text, "'" + std::string(host) + "' has bits set beyond its /" + std::to_string(prefix) +
                     " prefix (did you mean " + sandbox::to_string(masked) + "?)");
}

}  // namespace

const std::vector<NeverReachable>& never_reachable_networks() {
    static const std::vector<NeverReachable> kNetworks = {
        {{{0x00000000}, 8}, "\"this network\""},
        {{{0x7f000000}, 8}, "loopback"},
        {{{0xa9fe0000}, 16}, "link-local, where cloud metadata services answer"},
        {{{0xe0000000}, 4}, "multicast"},
        {{{0xf0000000}, 4}, "reserved, with the limited broadcast 255.255.255.255"},
    };
    return kNetworks;
}

EgressDestination parse_egress_destination(std::string_view text) {
    if (text.empty()) refuse(text, std::string("empty; ") + std::string(kForms));
    if (std::any_of(text.begin(), text.end(),
                    [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
        refuse(text, "no spaces or control characters allowed");
    }
    // IPv6: "[2001:db8::1]:443", or an address written bare (two colons or more).
    if (text.front() == '[' || std::count(text.begin(), text.end(), ':') > 1) {
        refuse(text,
               "IPv6 egress is not supported yet (only IPv4 addresses, networks and host names)");
    }

    EgressDestination d;
    d.text = std::string(text);
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) refuse(text, "no port; " + std::string(kForms));
    const std::string_view host = text.substr(0, colon);
    std::string_view ports = text.substr(colon + 1);
    if (host.empty()) refuse(text, "no host; " + std::string(kForms));

    if (const std::size_t slash = ports.find('/'); slash != std::string_view::npos) {
        const std::string_view protocol = ports.substr(slash + 1);
        if (protocol == "udp") {
            d.protocol = EgressDestination::Protocol::kUdp;
        } else if (protocol != "tcp") {
            refuse(text, "unknown protocol '" + std::string(protocol) + "' (known: tcp, udp)");
        }
        ports = ports.substr(0, slash);
    }
    if (ports.empty()) refuse(text, "no port; " + std::string(kForms));
    if (const std::size_t dash = ports.find('-'); dash != std::string_view::npos) {
        d.first_port = parse_port(text, ports.substr(0, dash));
        d.last_port = parse_port(text, ports.substr(dash + 1));
        if (d.first_port > d.last_port) {
            refuse(text, "port range " + std::string(ports) +
                             ": the first port must not be greater than the last");
        }
    } else {
        d.first_port = d.last_port = parse_port(text, ports);
    }

    if (const std::optional<Ipv4Network> network = parse_network(text, host)) {
        for (const NeverReachable& never : never_reachable_networks()) {
            if (network->prefix >= never.network.prefix &&
                never.network.contains(network->address)) {
                refuse(text, sandbox::to_string(*network) + " lies in " +
                                 sandbox::to_string(never.network) + " (" + never.why +
                                 "), which is never reachable");
            }
        }
        d.host = *network;
        return d;
    }

    std::string_view name = host;
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);  // an absolute name
    if (const auto problem = host_name_problem(name)) refuse(text, *problem);
    std::string lowered = lower(name);
    if (lowered == "localhost" || lowered.ends_with(".localhost")) {
        refuse(text,
               "'" + std::string(host) + "' is host loopback (RFC 6761), which is never reachable");
    }
    if (d.first_port != d.last_port) {
        refuse(text,
               "a port range is for an address or a network; a host name takes one port (list "
               "the name once per port)");
    }
    d.host = std::move(lowered);
    return d;
}

}  // namespace launcher
