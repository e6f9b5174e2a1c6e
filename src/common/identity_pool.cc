#include "common/identity_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace launcher {

namespace {

constexpr std::uint32_t kInvalidId = std::numeric_limits<std::uint32_t>::max();  // (uid_t)-1

// The whole file; empty when it does not exist.
std::string read_text(const std::filesystem::path& path) {
    const sandbox::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) return {};
        sandbox::throw_sys_error(errno, "open", path.string());
    }
    std::string text;
    char buffer[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            sandbox::throw_sys_error(errno, "read", path.string());
        }
        if (n == 0) return text;
        text.append(buffer, static_cast<std::size_t>(n));
    }
}

std::vector<std::string_view> split(std::string_view line, char separator) {
    std::vector<std::string_view> fields;
    for (;;) {
        const std::size_t at = line.find(separator);
        fields.push_back(line.substr(0, at));
        if (at == std::string_view::npos) return fields;
        line.remove_prefix(at + 1);
    }
}

// Adds fields[i] for each i in `columns` that parses as an id, of every
// line with more than the largest of them.
void collect(const std::string& text, std::initializer_list<std::size_t> columns,
             std::set<std::uint32_t>& ids) {
    std::size_t needed = 0;
    for (const std::size_t c : columns)
        needed = std::max(needed, c + 1);
    for (const std::string_view line : split(text, '\n')) {
        const std::vector<std::string_view> fields = split(line, ':');
        if (fields.size() < needed) continue;
        for (const std::size_t c : columns) {
            if (const auto id = parse_decimal_id(fields[c])) ids.insert(*id);
        }
    }
}

}  // namespace

IdentityPool::IdentityPool(IdRange range, std::set<std::uint32_t> excluded)
    : range_(range), next_(range.first) {
    if (range_.count == 0) throw std::invalid_argument("identity range: count must be at least 1");
    if (range_.first == 0) throw std::invalid_argument("identity range: must not include 0");
    if (range_.count > kInvalidId - range_.first) {
        throw std::invalid_argument("identity range " + std::to_string(range_.first) + " +" +
                                    std::to_string(range_.count) + ": must end below " +
                                    std::to_string(kInvalidId));
    }
    // The free intervals are the gaps between the excluded ids in the range.
    std::uint32_t from = range_.first;
    for (auto it = excluded.lower_bound(range_.first); it != excluded.end() && *it <= range_.last();
         ++it) {
        if (*it > from) free_.emplace(from, *it - 1);
        from = *it + 1;  // no overflow: *it <= last() < kInvalidId
        ++excluded_in_range_;
    }
    if (from <= range_.last()) free_.emplace(from, range_.last());
}

void IdentityPool::take(std::map<std::uint32_t, std::uint32_t>::iterator it, std::uint32_t id) {
    const std::uint32_t first = it->first;
    const std::uint32_t last = it->second;
    free_.erase(it);
    if (first < id) free_.emplace(first, id - 1);
    if (id < last) free_.emplace(id + 1, last);
    held_.insert(id);
}

std::optional<std::uint32_t> IdentityPool::allocate() {
    if (free_.empty()) return std::nullopt;
    // The interval that contains next_, else the first one after it, else
    // (wrapping around) the first one of the range.
    auto it = free_.upper_bound(next_);
    std::uint32_t id = 0;
    if (it != free_.begin() && std::prev(it)->second >= next_) {
        --it;
        id = next_;
    } else {
        if (it == free_.end()) it = free_.begin();
        id = it->first;
    }
    take(it, id);
    next_ = id == range_.last() ? range_.first : id + 1;
    return id;
}

bool IdentityPool::reserve(std::uint32_t id) {
    // Free ids are exactly those in range, not excluded and not held.
    auto it = free_.upper_bound(id);
    if (it == free_.begin()) return false;
    --it;
    if (it->second < id) return false;
    take(it, id);
    return true;
}

void IdentityPool::release(std::uint32_t id) {
    if (held_.erase(id) == 0) return;
    auto next = free_.upper_bound(id);  // the first interval after id
    std::uint32_t first = id;
    std::uint32_t last = id;
    if (next != free_.begin()) {
        auto before = std::prev(next);
        if (before->second + 1 == id) {
            first = before->first;
            free_.erase(before);
        }
    }
    if (next != free_.end() && next->first == id + 1) {
        last = next->second;
        free_.erase(next);
    }
    free_.emplace(first, last);
}

void IdentityPool::start_at(std::uint32_t id) {
    next_ = contains(id) ? id : range_.first + (id - range_.first) % range_.count;
}

std::set<std::uint32_t> ids_named_in(const std::filesystem::path& passwd,
                                     const std::filesystem::path& group) {
    std::set<std::uint32_t> ids;
    collect(read_text(passwd), {2, 3}, ids);  // name:password:UID:GID:gecos:home:shell
    collect(read_text(group), {2}, ids);      // name:password:GID:members
    return ids;
}

// A decimal id: digits only (no sign, no spaces), at most 2^32-1.
std::optional<std::uint32_t> parse_decimal_id(std::string_view text) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || rest != end ||
        value > std::numeric_limits<std::uint32_t>::max()) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(value);
}

}  // namespace launcher
