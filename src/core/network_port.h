// The narrow port through which the core gives a key with an egress list its
// way out: a network namespace of its own joined to the host by a veth pair
// with addresses from the egress pool, and the key's rules in the launcher's
// nftables table. KernelNetwork (kernel_network.h) is the real one; the
// core's in-process tests have none, and a key with an egress list then
// fails to start with the reason (never open: no rules, no path).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/egress_pool.h"
#include "sandbox/egress_ruleset.h"
#include "sandbox/ipv4.h"

namespace launcher {

// One key's compartment. It lives as long as the key, across restarts of
// its process: the address never changes. Destruction only closes our
// descriptor (a launcher that exits without a shutdown leaves its tenants'
// egress working for the next instance to adopt); close() removes it.
class KeyNetwork {
public:
    virtual ~KeyNetwork() = default;
    // The namespace the key's process joins (SpawnSpec::netns_fd).
    virtual int netns_fd() const = 0;
    virtual sandbox::Ipv4Address pattern_address() const = 0;
    // Replaces what the key may reach (names resolved anew), in one transaction.
    virtual void update(const std::vector<sandbox::EgressAllow>& allowed) = 0;
    // Packets refused for the key since its rules were made.
    virtual std::uint64_t denied() = 0;
    // Removes the key's rules and its veth pair; the namespace goes with
    // the last process in it.
    virtual void close() = 0;
};

class NetworkPort {
public:
    virtual ~NetworkPort() = default;
    // A fresh namespace with the veth of `slot` and the key's rules.
    // Throws with the reason (no forwarding, no nftables, a netlink error).
    virtual std::unique_ptr<KeyNetwork> open(const std::string& key_id, const EgressSlot& slot,
                                             const std::vector<sandbox::EgressAllow>& allowed) = 0;
    // After a launcher restart: the namespace of the key's live process
    // `pid`, whose veth a previous instance made. Throws when the veth of
    // `slot` is not there.
    virtual std::unique_ptr<KeyNetwork> adopt(const std::string& key_id, const EgressSlot& slot,
                                              pid_t pid,
                                              const std::vector<sandbox::EgressAllow>& allowed) = 0;
    // After recovery (and at each reconciliation): the table holds exactly
    // the open keys' rules, and a veth of ours that no open key holds is
    // removed. Returns the links removed. Throws when the table cannot be
    // written while keys need it.
    virtual int reconcile() = 0;
};

}  // namespace launcher
