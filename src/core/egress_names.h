// Host names of egress lists, resolved by the launcher (never by the
// pattern, which has no name server: its /etc/hosts is written from this).
// getaddrinfo(3) goes through NSS and may wait on a name server: call this
// off the loop (the launcher's BackgroundWork). It gives no TTL, so the
// launcher asks again every egress.resolve_interval; that interval is how
// long a moved name can point at its old address.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/egress_plan.h"

namespace launcher {

struct NameResolution {
    ResolvedNames addresses;                    // each resolved name: its IPv4 addresses, sorted
    std::map<std::string, std::string> errors;  // each name that did not resolve: gai_strerror
};

NameResolution resolve_egress_names(const std::vector<std::string>& names);

}  // namespace launcher
