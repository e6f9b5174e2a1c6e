#include "sandbox/ipv4.h"

#include <arpa/inet.h>

#include <charconv>

namespace sandbox {

std::optional<Ipv4Address> parse_ipv4_address(std::string_view text) {
    if (text.empty() || text.size() > 15) return std::nullopt;
    const std::string copy(text);  // inet_pton needs a terminated string
    in_addr addr{};
    if (::inet_pton(AF_INET, copy.c_str(), &addr) != 1) return std::nullopt;
    return Ipv4Address{ntohl(addr.s_addr)};
}

std::optional<Ipv4Network> parse_ipv4_network(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::optional<Ipv4Address> address = parse_ipv4_address(text.substr(0, slash));
    if (!address) return std::nullopt;
    int prefix = 32;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        // Digits only: from_chars would take a sign, and "016" is not a prefix length.
        if (digits.empty() || digits.size() > 2 || digits[0] < '0' || digits[0] > '9' ||
            (digits.size() == 2 && digits[0] == '0'))
            return std::nullopt;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc{} || end != digits.data() + digits.size() || prefix > 32)
            return std::nullopt;
    }
    Ipv4Network network{*address, prefix};
    if ((address->value & ~network.mask()) != 0) return std::nullopt;
    return network;
}

std::string to_string(Ipv4Address a) {
    const std::uint32_t v = a.value;
    return std::to_string(v >> 24) + '.' + std::to_string((v >> 16) & 0xff) + '.' +
           std::to_string((v >> 8) & 0xff) + '.' + std::to_string(v & 0xff);
}

std::string to_string(const Ipv4Network& n) {
    return to_string(n.address) + '/' + std::to_string(n.prefix);
}

}  // namespace sandbox
