#include "core/kernel_network.h"

#include <fcntl.h>

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "sandbox/error.h"
#include "sandbox/forwarding.h"
#include "sandbox/netns.h"
#include "sandbox/veth.h"

namespace launcher {

class KernelKeyNetwork : public KeyNetwork {
public:
    KernelKeyNetwork(KernelNetwork& owner, std::uint32_t index, sandbox::UniqueFd netns,
                     sandbox::Ipv4Address address)
        : owner_(owner), index_(index), netns_(std::move(netns)), address_(address) {}

    int netns_fd() const override { return netns_.get(); }
    sandbox::Ipv4Address pattern_address() const override { return address_; }
    void update(const std::vector<sandbox::EgressAllow>& allowed) override {
        owner_.update(index_, allowed);
    }
    std::uint64_t denied() override { return owner_.denied(index_); }
    void close() override {
        if (closed_) return;
        closed_ = true;
        netns_.reset();
        owner_.close(index_);
    }

private:
    KernelNetwork& owner_;
    std::uint32_t index_;
    sandbox::UniqueFd netns_;
    sandbox::Ipv4Address address_;
    bool closed_ = false;
};

namespace {

// nft names: the slot, not the process id (which has ':' and '-').
std::string firewall_id(std::uint32_t index) {
    return "k" + std::to_string(index);
}

sandbox::EgressKey firewall_key(std::uint32_t index, const EgressSlot& slot,
                                const std::vector<sandbox::EgressAllow>& allowed) {
    return {firewall_id(index), KernelNetwork::link_name(index), slot.pattern, allowed};
}

}  // namespace

KernelNetwork::KernelNetwork(const EgressSettings& settings) {
    spec_.pool = settings.pool;
    spec_.link_prefix = kLinkPrefix;
}

std::string KernelNetwork::link_name(std::uint32_t index) {
    return sandbox::veth_host_name(kLinkPrefix, index);
}

sandbox::EgressFirewall& KernelNetwork::firewall() {
    if (!firewall_) firewall_.emplace(spec_);
    return *firewall_;
}

void KernelNetwork::ensure_table() {
    if (table_ready_) return;
    std::vector<sandbox::EgressKey> keys;
    for (const auto& [index, key] : keys_)
        keys.push_back(key);
    firewall().rebuild(keys);
    table_ready_ = true;
}

std::unique_ptr<KeyNetwork> KernelNetwork::open(const std::string& key_id, const EgressSlot& slot,
                                                const std::vector<sandbox::EgressAllow>& allowed) {
    // Without forwarding the veth would be a dead end that looks like a
    // refusal; the operator enables it (docs/security.md), we never do.
    if (!sandbox::ipv4_forwarding_enabled()) {
        throw sandbox::ConfigError(
            "egress needs IPv4 forwarding on the host (net.ipv4.ip_forward = 1), which is off");
    }
    ensure_table();
    const std::string link = link_name(slot.index);
    // A link of this name is a leftover: the slot is free in the pool. The
    // kernel tears a namespace down (and its veth with it) asynchronously
    // after its last process is gone, so it may still be there.
    sandbox::remove_link(link);
    sandbox::UniqueFd netns = sandbox::create_network_namespace();
    const sandbox::EgressKey key = firewall_key(slot.index, slot, allowed);
    // The rules first: the link exists only with them.
    firewall().add_key(key);
    try {
        sandbox::create_veth({link, netns.get(), slot.host, slot.pattern, 31, "eth0"});
    } catch (...) {
        firewall().remove_key(key.id);
        throw;
    }
    keys_[slot.index] = key;
    log::info(key_id + ": egress through " + link + ", address " +
              sandbox::to_string(slot.pattern));
    return std::make_unique<KernelKeyNetwork>(*this, slot.index, std::move(netns), slot.pattern);
}

std::unique_ptr<KeyNetwork> KernelNetwork::adopt(const std::string& key_id, const EgressSlot& slot,
                                                 pid_t pid,
                                                 const std::vector<sandbox::EgressAllow>& allowed) {
    const std::string link = link_name(slot.index);
    const std::vector<std::string> links = sandbox::list_links(link);
    if (std::find(links.begin(), links.end(), link) == links.end())
        throw sandbox::SysError(ENODEV, "its veth " + link + " is gone");
    const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
    sandbox::UniqueFd netns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) sandbox::throw_sys_error(errno, "open", path);
    // The rules are rebuilt by reconcile(), which recovery runs once every
    // key is placed: until then the previous instance's table stands.
    keys_[slot.index] = firewall_key(slot.index, slot, allowed);
    log::info(key_id + ": egress through " + link + " adopted");
    return std::make_unique<KernelKeyNetwork>(*this, slot.index, std::move(netns), slot.pattern);
}

int KernelNetwork::reconcile() {
    int removed = 0;
    for (const std::string& link : sandbox::list_links(kLinkPrefix)) {
        const bool owned = std::any_of(keys_.begin(), keys_.end(), [&](const auto& entry) {
            return entry.second.host_link == link;
        });
        if (owned) continue;
        sandbox::remove_link(link);
        log::notice("egress: removed " + link + ", which no key holds");
        ++removed;
    }
    if (keys_.empty()) {
        // Nothing needs the table; one a previous instance left goes. A
        // host without nftables has none to remove.
        try {
            firewall().remove_table();
        } catch (const std::exception& e) {
            log::debug(std::string("egress: no table to remove: ") + e.what());
        }
        table_ready_ = false;
        return removed;
    }
    table_ready_ = false;
    ensure_table();
    return removed;
}

void KernelNetwork::update(std::uint32_t index, const std::vector<sandbox::EgressAllow>& allowed) {
    auto found = keys_.find(index);
    if (found == keys_.end()) return;
    sandbox::EgressKey key = found->second;
    key.allowed = allowed;
    ensure_table();
    firewall().update_key(key);
    found->second = std::move(key);
}

std::uint64_t KernelNetwork::denied(std::uint32_t index) {
    if (!keys_.count(index) || !table_ready_) return 0;
    return firewall().denied_count(firewall_id(index));
}

void KernelNetwork::close(std::uint32_t index) {
    auto found = keys_.find(index);
    if (found == keys_.end()) return;
    const std::string link = found->second.host_link;
    keys_.erase(found);
    // Each step on its own: a failure of one must not keep the other.
    try {
        if (table_ready_) firewall().remove_key(firewall_id(index));
    } catch (const std::exception& e) {
        log::warning("egress: removing the rules of " + link + ": " + e.what());
        table_ready_ = false;  // rebuilt from the open keys at the next change
    }
    try {
        sandbox::remove_link(link);
    } catch (const std::exception& e) {
        log::warning("egress: removing " + link + ": " + e.what());
    }
    if (keys_.empty() && table_ready_) {
        // The last key gone: no table stays behind (made again by the next open).
        try {
            firewall().remove_table();
        } catch (const std::exception& e) {
            log::warning(std::string("egress: removing the table: ") + e.what());
        }
        table_ready_ = false;
    }
}

}  // namespace launcher
