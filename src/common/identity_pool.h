// The uids (and gids: one number for both) the launcher hands out, one per
// live isolation key, from `launcher.identity_range`. Pure bookkeeping: the
// pool knows nothing of processes; the launcher allocates for a new key,
// reserves for an adopted one, and releases once nothing of the key runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace launcher {

// `count` consecutive ids from `first`: first .. first + count - 1.
//
// The default, 0x70000000-0x7000FFFF (1879048192-1879113727, 65536 ids),
// sits where nothing else on a Linux host allocates ids:
// - systemd documents 0x70000000-0x7FFFFFFF as unused (UIDS-GIDS.md);
// - below it: systemd DynamicUser 61184-65519, nobody 65534 and the 16-bit
//   (uid_t)-1 65535, Nomad's dynamic workload users 80000-89999, login users
//   and /etc/subuid ranges from 100000 (useradd's default SUB_UID_MIN), and
//   systemd-nspawn's container range 524288-1879048191 (0x00080000-0x6FFFFFFF);
// - it stays below 2^31, so that tools that keep ids in a signed int still
//   see a positive number, and far from (uid_t)-1.
struct IdRange {
    std::uint32_t first = 1879048192;
    std::uint32_t count = 65536;

    std::uint32_t last() const { return first + count - 1; }  // count >= 1
};

class IdentityPool {
public:
    // `excluded`: ids that exist on the host (ids_named_in()); they are never
    // handed out. Ids outside the range may be in it and are ignored. Throws
    // std::invalid_argument for a range with count 0, that includes 0 or
    // (uid_t)-1, or that wraps around.
    IdentityPool(IdRange range, std::set<std::uint32_t> excluded);

    // A free id, never one that is held or excluded; nullopt when every id of
    // the range is. Round-robin from the last id handed out (not lowest
    // free), so a released id comes back only after the rest of the range
    // was offered: whatever a key left behind that is owned by its uid is
    // not reached at once by the next key. O(log n).
    std::optional<std::uint32_t> allocate();
    // Marks `id` held (a key adopted after a launcher restart). False if it
    // is out of range, excluded or already held. O(log n).
    bool reserve(std::uint32_t id);
    // Makes a held id free again; an id that is not held is ignored. Call it
    // only once the key is gone and nothing of it runs (the caller's duty:
    // the pool cannot see processes). O(log n).
    void release(std::uint32_t id);
    // Where the next allocate() starts looking (wrapped into the range). The
    // launcher starts at a random place: a restarted launcher has no memory
    // of the ids its previous instance released just before it stopped.
    void start_at(std::uint32_t id);

    bool contains(std::uint32_t id) const { return id - range_.first < range_.count; }
    bool is_held(std::uint32_t id) const { return held_.contains(id); }
    std::size_t in_use() const { return held_.size(); }
    // Ids that can be handed out: the range without the excluded ones.
    std::size_t capacity() const { return range_.count - excluded_in_range_; }
    // Excluded ids inside the range.
    std::size_t excluded() const { return excluded_in_range_; }
    const IdRange& range() const { return range_; }

private:
    // Takes `id` out of the free interval `it` (which contains it).
    void take(std::map<std::uint32_t, std::uint32_t>::iterator it, std::uint32_t id);

    IdRange range_;
    std::size_t excluded_in_range_ = 0;
    std::set<std::uint32_t> held_;
    // The free ids as disjoint, non-adjacent intervals: first -> last (inclusive).
    std::map<std::uint32_t, std::uint32_t> free_;
    std::uint32_t next_;  // where allocate() starts looking
};

// Every uid and gid named in a passwd(5) file and every gid in a group(5)
// file, read directly: no NSS, because the launcher's loop must never wait
// on a name service (LDAP, sssd). Ids only a name service knows are not seen:
// keep identity_range clear of them. Lines with too few fields (NIS "+"
// entries among them) are skipped, and so is a field that is not a decimal
// id (the line's other id still counts: excluding too much is harmless). A
// file that does not exist names nothing; one that cannot be read throws
// SysError.
std::set<std::uint32_t> ids_named_in(const std::filesystem::path& passwd,
                                     const std::filesystem::path& group);

// A decimal id: digits only (no sign, no spaces), at most 2^32-1.
std::optional<std::uint32_t> parse_decimal_id(std::string_view text);

}  // namespace launcher
