// The real NetworkPort, on sandbox/: network namespaces and veth pairs over
// rtnetlink, and one nftables table for all keys (sandbox/egress_firewall.h).
// Runs on the loop thread: every step is a short netlink or nftables
// exchange with the kernel (no name lookups: names come resolved).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/egress.h"
#include "core/network_port.h"
#include "sandbox/egress_firewall.h"

namespace launcher {

class KernelNetwork : public NetworkPort {
public:
    // Touches nothing yet: a host without nftables runs every pattern that
    // has no egress list. The firewall works in the network namespace of
    // the thread that first needs it (the loop's).
    explicit KernelNetwork(const EgressSettings& settings);

    std::unique_ptr<KeyNetwork> open(const std::string& key_id, const EgressSlot& slot,
                                     const std::vector<sandbox::EgressAllow>& allowed) override;
    std::unique_ptr<KeyNetwork> adopt(const std::string& key_id, const EgressSlot& slot, pid_t pid,
                                      const std::vector<sandbox::EgressAllow>& allowed) override;
    int reconcile() override;

    // The host end of slot `index`'s veth: "plk<index>".
    static std::string link_name(std::uint32_t index);
    static constexpr const char* kLinkPrefix = "plk";

private:
    friend class KernelKeyNetwork;
    sandbox::EgressFirewall& firewall();
    // The table exists and holds every open key (once per instance: a
    // previous instance's table is replaced, not trusted).
    void ensure_table();
    void update(std::uint32_t index, const std::vector<sandbox::EgressAllow>& allowed);
    std::uint64_t denied(std::uint32_t index);
    void close(std::uint32_t index);

    sandbox::EgressTableSpec spec_;
    std::optional<sandbox::EgressFirewall> firewall_;
    bool table_ready_ = false;
    std::map<std::uint32_t, sandbox::EgressKey> keys_;  // by slot: the open keys
};

}  // namespace launcher
