// The /31s of the egress veth pairs: one slot per
// key whose pattern has an egress list, from the config's egress.pool.
// Pure bookkeeping, like the identity pool: the launcher allocates for a new
// key, claims the slot a recovered key's record names, and releases it once
// the key's veth is gone.
#pragma once

#include <cstdint>
#include <optional>
#include <set>

#include "sandbox/ipv4.h"

namespace launcher {

// Slot i of a pool is the /31 at pool + 2i: the host end of the veth takes
// the even address, the pattern's end the odd one.
struct EgressSlot {
    std::uint32_t index = 0;
    sandbox::Ipv4Address host;     // pool + 2 * index
    sandbox::Ipv4Address pattern;  // pool + 2 * index + 1
    sandbox::Ipv4Network network() const noexcept { return {host, 31}; }
    friend bool operator==(const EgressSlot&, const EgressSlot&) = default;
};

class EgressPool {
public:
    // `pool`: a network of /30 or wider (config checks /8 to /29). Throws
    // std::invalid_argument for a narrower one, which has no usable slot.
    explicit EgressPool(sandbox::Ipv4Network pool);

    // The lowest free slot; nullopt when all are in use. Slot 0 is never
    // handed out, so the pool's network address is no veth's. O(in_use()).
    std::optional<EgressSlot> allocate();
    // Marks slot `index` in use (a key recovered after a launcher restart).
    // False if it is taken already, or is not a slot of this pool (0, or
    // beyond capacity(): the pool was changed since the record was written).
    bool claim(std::uint32_t index);
    // Frees slot `index`; one that is not in use is ignored.
    void release(std::uint32_t index);

    // Slot `index`'s addresses (1 <= index <= capacity(), unchecked).
    EgressSlot slot(std::uint32_t index) const noexcept;
    // The slot whose /31 holds `address`, if it is one of this pool's.
    std::optional<std::uint32_t> index_of(sandbox::Ipv4Address address) const noexcept;

    const sandbox::Ipv4Network& network() const noexcept { return pool_; }
    // Slots that can be handed out: half the pool's addresses, less slot 0.
    std::uint32_t capacity() const noexcept { return capacity_; }
    std::uint32_t in_use() const noexcept { return static_cast<std::uint32_t>(used_.size()); }

private:
    sandbox::Ipv4Network pool_;
    std::uint32_t capacity_;
    std::set<std::uint32_t> used_;
};

}  // namespace launcher
