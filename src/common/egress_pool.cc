#include "common/egress_pool.h"

#include <stdexcept>
#include <string>

namespace launcher {

namespace {

std::uint32_t capacity_of(const sandbox::Ipv4Network& pool) {
    if (pool.prefix < 0 || pool.prefix > 30) {
        throw std::invalid_argument("egress pool " + sandbox::to_string(pool) +
                                    ": a /30 or wider is needed (a /31 per key, the first unused)");
    }
    // 2^(32 - prefix) addresses, two per slot: 2^(31 - prefix) slots, less slot 0.
    return static_cast<std::uint32_t>((std::uint64_t{1} << (31 - pool.prefix)) - 1);
}

}  // namespace

EgressPool::EgressPool(sandbox::Ipv4Network pool) : pool_(pool), capacity_(capacity_of(pool)) {}

std::optional<EgressSlot> EgressPool::allocate() {
    // used_ is ordered: the first index that is not the next expected one is a gap.
    std::uint32_t candidate = 1;
    for (const std::uint32_t index : used_) {
        if (index != candidate) break;
        ++candidate;
    }
    if (candidate > capacity_) return std::nullopt;
    used_.insert(candidate);
    return slot(candidate);
}

bool EgressPool::claim(std::uint32_t index) {
    if (index == 0 || index > capacity_) return false;
    return used_.insert(index).second;
}

void EgressPool::release(std::uint32_t index) {
    used_.erase(index);
}

EgressSlot EgressPool::slot(std::uint32_t index) const noexcept {
    const std::uint32_t host = pool_.address.value + 2 * index;
    return EgressSlot{index, {host}, {host + 1}};
}

std::optional<std::uint32_t> EgressPool::index_of(sandbox::Ipv4Address address) const noexcept {
    if (!pool_.contains(address)) return std::nullopt;
    const std::uint32_t index = (address.value - pool_.address.value) / 2;
    if (index == 0 || index > capacity_) return std::nullopt;
    return index;
}

}  // namespace launcher
