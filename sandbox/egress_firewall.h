// The launcher's egress firewall in one network namespace: the table
// `inet pattern_launcher` of sandbox/egress_ruleset.h, applied through
// libnftables. Every method is ONE nft transaction: the kernel applies all
// of it or nothing, so the rules are never seen half-changed.
//
// The firewall talks to the netns of the thread that constructed it (see
// sandbox/nft_context.h). Not thread-safe: one caller at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sandbox/egress_ruleset.h"
#include "sandbox/nft_context.h"

namespace sandbox {

// Errors: ConfigError for a spec or key that cannot be rendered (nothing is
// sent), NftError when nft or the kernel refuses (nothing is applied).
class EgressFirewall {
public:
    // Opens the nft context (SysError without nfnetlink; ConfigError for an
    // invalid spec). The table is untouched until rebuild().
    explicit EgressFirewall(EgressTableSpec spec = {});

    // Replaces the whole table (there may be none yet) with `keys`.
    void rebuild(const std::vector<EgressKey>& keys);
    // A key that is not in the table yet (NftError if it is).
    void add_key(const EgressKey& key);
    // New allow-list (and pattern address) of a key in the table. ConfigError
    // for an id this firewall did not add, or a host link other than the one
    // it was added with (that is remove_key + add_key).
    void update_key(const EgressKey& key);
    // Fine for an id that is not in the table: nothing to do. Afterwards its
    // link is still ours (the prefix), so whatever it sends is refused.
    void remove_key(const std::string& id);
    // Packets refused for the key since it was added.
    std::uint64_t denied_count(const std::string& id);
    // Removes the table (fine when absent); the keys are forgotten.
    void remove_table();

    const EgressTableSpec& spec() const noexcept { return spec_; }

private:
    EgressTableSpec spec_;
    NftContext nft_;
    std::map<std::string, std::string> links_;  // id -> host link, as in the table
};

}  // namespace sandbox
