#include "sandbox/egress_firewall.h"

#include <utility>

#include "sandbox/error.h"

namespace sandbox {

EgressFirewall::EgressFirewall(EgressTableSpec spec) : spec_(std::move(spec)) {
    validate_egress_spec(spec_);
}

void EgressFirewall::rebuild(const std::vector<EgressKey>& keys) {
    nft_.run(render_table(spec_, keys));
    links_.clear();
    for (const EgressKey& key : keys)
        links_[key.id] = key.host_link;
}

void EgressFirewall::add_key(const EgressKey& key) {
    nft_.run(render_add_key(spec_, key));
    links_[key.id] = key.host_link;
}

void EgressFirewall::update_key(const EgressKey& key) {
    const auto it = links_.find(key.id);
    if (it == links_.end()) throw ConfigError("egress key " + key.id + " is not in the firewall");
    // The map elements name the link: changing it is a remove and an add.
    if (it->second != key.host_link)
        throw ConfigError("egress key " + key.id + ": host link " + key.host_link +
                          " is not the one it was added with (" + it->second + ")");
    nft_.run(render_update_key(spec_, key));
}

void EgressFirewall::remove_key(const std::string& id) {
    const auto it = links_.find(id);
    if (it == links_.end()) return;
    nft_.run(render_remove_key(id, it->second));
    links_.erase(it);
}

std::uint64_t EgressFirewall::denied_count(const std::string& id) {
    const std::string script = render_list_denied_counter(id);
    const std::string output = nft_.run(script);
    const std::optional<std::uint64_t> packets = parse_counter_packets(output);
    if (!packets) throw make_nft_error("no packet count in the listing: " + output, script);
    return *packets;
}

void EgressFirewall::remove_table() {
    nft_.run(render_remove_table());
    links_.clear();
}

}  // namespace sandbox
