#include "core/egress_plan.h"

#include <algorithm>
#include <variant>

namespace launcher {
namespace {

sandbox::EgressAllow::Protocol firewall_protocol(EgressDestination::Protocol p) {
    return p == EgressDestination::Protocol::kUdp ? sandbox::EgressAllow::Protocol::kUdp
                                                  : sandbox::EgressAllow::Protocol::kTcp;
}

}  // namespace

std::vector<EgressDestination> effective_egress(const Manifest& manifest, const IsolationKey& key,
                                                const EgressSettings& settings) {
    std::vector<EgressDestination> list = manifest.sandbox.egress;
    // A pattern without a list of its own keeps only `lo`: the tenants'
    // additions widen a way out, they never make one.
    if (list.empty() || key.level == Isolation::kNone || key.namespace_id.empty()) return list;
    const auto tenant = settings.tenants.find(key.namespace_id);
    if (tenant == settings.tenants.end()) return list;
    for (const EgressDestination& d : tenant->second) {
        const bool listed = std::any_of(list.begin(), list.end(),
                                        [&](const EgressDestination& e) { return e.same_as(d); });
        if (!listed) list.push_back(d);
    }
    return list;
}

std::vector<std::string> egress_names(const std::vector<EgressDestination>& list) {
    std::vector<std::string> names;
    for (const EgressDestination& d : list) {
        if (const auto* name = std::get_if<std::string>(&d.host)) names.push_back(*name);
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

AllowedElements allowed_elements(const std::vector<EgressDestination>& list,
                                 const ResolvedNames& resolved) {
    AllowedElements out;
    for (const EgressDestination& d : list) {
        sandbox::EgressAllow allow;
        allow.protocol = firewall_protocol(d.protocol);
        allow.first_port = d.first_port;
        allow.last_port = d.last_port;
        if (const auto* network = std::get_if<sandbox::Ipv4Network>(&d.host)) {
            allow.network = *network;
            out.allowed.push_back(allow);
            continue;
        }
        const std::string& name = std::get<std::string>(d.host);
        const auto found = resolved.find(name);
        if (found == resolved.end() || found->second.empty()) {
            if (std::find(out.unresolved.begin(), out.unresolved.end(), name) ==
                out.unresolved.end())
                out.unresolved.push_back(name);
            continue;
        }
        for (const sandbox::Ipv4Address address : found->second) {
            allow.network = {address, 32};
            out.allowed.push_back(allow);
        }
    }
    return out;
}

std::string render_hosts(const std::vector<std::string>& names, const ResolvedNames& resolved) {
    std::string text =
        "# Written by pattern-launcher: the names this pattern's egress list allows.\n"
        "127.0.0.1\tlocalhost\n";
    for (const std::string& name : names) {
        const auto found = resolved.find(name);
        if (found == resolved.end()) continue;
        for (const sandbox::Ipv4Address address : found->second)
            text += sandbox::to_string(address) + '\t' + name + '\n';
    }
    return text;
}

std::string render_resolv_conf() {
    return "# Written by pattern-launcher: no name server. Listed names are in /etc/hosts.\n"
           "options timeout:1 attempts:1\n";
}

}  // namespace launcher
