#include "config/egress_section.h"

#include <map>
#include <string>

#include "config/namespace_map.h"

namespace launcher {

namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

// The private ranges a pool may come from: RFC 1918 and RFC 6598's shared
// address space. A pool elsewhere would hide some real destination behind
// the patterns' own veths.
struct PrivateRange {
    sandbox::Ipv4Network network;
    const char* name;
};
constexpr PrivateRange kPrivateRanges[] = {
    {{{0x0a000000}, 8}, "10.0.0.0/8"},
    {{{0xac100000}, 12}, "172.16.0.0/12"},
    {{{0xc0a80000}, 16}, "192.168.0.0/16"},
    {{{0x64400000}, 10}, "100.64.0.0/10"},
};

bool lies_in(const sandbox::Ipv4Network& inner, const sandbox::Ipv4Network& outer) {
    return inner.prefix >= outer.prefix && outer.contains(inner.address);
}

sandbox::Ipv4Network to_pool(const fs::path& file, const Field& field) {
    const std::string text = yaml_strict::to_nonempty_string(file, field);
    const std::optional<sandbox::Ipv4Network> pool = sandbox::parse_ipv4_network(text);
    if (!pool || text.find('/') == std::string::npos) {
        yaml_strict::fail(file, field,
                          "expected an IPv4 network such as 10.213.0.0/16 (no bits set beyond "
                          "the prefix), got '" +
                              text + "'");
    }
    if (pool->prefix < 8 || pool->prefix > 29) {
        yaml_strict::fail(file, field,
                          "the prefix must be between /8 and /29 (a /31 per key, the first one "
                          "unused), got /" +
                              std::to_string(pool->prefix));
    }
    for (const NeverReachable& never : never_reachable_networks()) {
        if (pool->overlaps(never.network)) {
            yaml_strict::fail(
                file, field,
                text + " overlaps " + sandbox::to_string(never.network) + " (" + never.why + ")");
        }
    }
    for (const PrivateRange& range : kPrivateRanges) {
        if (lies_in(*pool, range.network)) return *pool;
    }
    yaml_strict::fail(file, field,
                      text +
                          " is not inside a private range (10.0.0.0/8, 172.16.0.0/12, "
                          "192.168.0.0/16 or 100.64.0.0/10)");
}

// `tenants`: namespace id -> a list of destinations.
std::map<std::string, std::vector<EgressDestination>> to_tenants(const fs::path& file,
                                                                 const Field& field,
                                                                 const sandbox::Ipv4Network& pool) {
    std::map<std::string, std::vector<EgressDestination>> tenants;
    for (const Field& value : namespace_map_entries(
             file, field, "a mapping of namespace id to a list of destinations")) {
        const std::string& id = value.key;
        std::vector<EgressDestination> list = to_egress_list(file, value);
        // The pool holds the patterns' own veth addresses: never a destination.
        const std::vector<Field> items = yaml_strict::to_items(file, value);
        for (std::size_t i = 0; i < list.size(); ++i) {
            const auto* network = std::get_if<sandbox::Ipv4Network>(&list[i].host);
            if (network && lies_in(*network, pool)) {
                yaml_strict::fail(file, items[i],
                                  "'" + list[i].text + "': " + sandbox::to_string(*network) +
                                      " lies in egress.pool " + sandbox::to_string(pool) +
                                      " (the patterns' own veths), which is never reachable");
            }
        }
        tenants.emplace(id, std::move(list));
    }
    return tenants;
}

}  // namespace

std::vector<EgressDestination> to_egress_list(const fs::path& file, const Field& field) {
    std::vector<EgressDestination> list;
    std::vector<int> lines;
    for (const Field& item : yaml_strict::to_items(file, field)) {
        if (!item.value.IsScalar()) {
            std::string hint;
            if (item.value.IsSequence()) {
                hint =
                    "; YAML reads an unquoted [...] as a list: quote it, as in "
                    "\"[2001:db8::1]:443\" (though IPv6 egress is not supported yet)";
            } else if (item.value.IsMap()) {
                hint = "; write HOST:PORT without a space after the ':'";
            }
            yaml_strict::fail(file, item,
                              "expected a destination string (HOST:PORT, CIDR:PORT or "
                              "CIDR:FIRST-LAST), got " +
                                  yaml_strict::describe(item.value) + hint);
        }
        const std::string text = yaml_strict::to_nonempty_string(file, item);
        EgressDestination destination;
        try {
            destination = parse_egress_destination(text);
        } catch (const EgressSyntaxError& e) {
            yaml_strict::fail(file, item, e.what());
        }
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (list[i].same_as(destination)) {
                yaml_strict::fail(file, item,
                                  "'" + text + "' is listed twice (also at line " +
                                      std::to_string(lines[i]) + ")");
            }
        }
        list.push_back(std::move(destination));
        lines.push_back(item.line());
    }
    if (list.empty()) {
        yaml_strict::fail(file, field, "an empty list opens nothing: remove the key");
    }
    return list;
}

EgressSettings to_egress_settings(const fs::path& file, const Field& field) {
    const Mapping map(file, field, {"pool", "resolve_interval", "tenants"});
    EgressSettings settings;
    if (const Field* f = map.find("pool")) settings.pool = to_pool(file, *f);
    if (const Field* f = map.find("resolve_interval")) {
        settings.resolve_interval = yaml_strict::to_duration(file, *f);
        if (settings.resolve_interval < std::chrono::seconds(1)) {
            yaml_strict::fail(file, *f, "must be at least 1s");
        }
    }
    if (const Field* f = map.find("tenants")) {
        settings.tenants = to_tenants(file, *f, settings.pool);
    }
    return settings;
}

}  // namespace launcher
