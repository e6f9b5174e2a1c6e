#include "core/egress_names.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

namespace launcher {

NameResolution resolve_egress_names(const std::vector<std::string>& names) {
    NameResolution out;
    for (const std::string& name : names) {
        addrinfo hints{};
        hints.ai_family = AF_INET;  // egress is IPv4 only (config/egress.h)
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* found = nullptr;
        const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
        if (rc != 0) {
            out.errors[name] = ::gai_strerror(rc);
            continue;
        }
        const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
        std::vector<sandbox::Ipv4Address> addresses;
        for (const addrinfo* a = found; a; a = a->ai_next) {
            if (a->ai_family != AF_INET) continue;
            const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
            addresses.push_back({ntohl(in->sin_addr.s_addr)});
        }
        std::sort(addresses.begin(), addresses.end());
        addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
        if (addresses.empty()) {
            out.errors[name] = "no IPv4 address";
        } else {
            out.addresses[name] = std::move(addresses);
        }
    }
    return out;
}

}  // namespace launcher
