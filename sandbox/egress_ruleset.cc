#include "sandbox/egress_ruleset.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

#include "sandbox/error.h"

namespace sandbox {
namespace {

using Protocol = EgressAllow::Protocol;

// Inclusive ranges over a 64-bit axis (so an IPv4 range can end at 2^32-1
// and its "one past" still fits).
using Range = std::pair<std::uint64_t, std::uint64_t>;

// Sorted, with overlapping and adjacent ranges merged.
std::vector<Range> merge_ranges(std::vector<Range> ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<Range> merged;
    for (const Range& r : ranges) {
        if (!merged.empty() && r.first <= merged.back().second + 1) {
            merged.back().second = std::max(merged.back().second, r.second);
        } else {
            merged.push_back(r);
        }
    }
    return merged;
}

// Addresses no pattern may reach whatever its list says: "this network",
// loopback, link-local (cloud metadata services live there), multicast and
// the limited broadcast (RFC 6890). The pool is added by render_table.
constexpr std::pair<std::uint32_t, int> kNeverReachable[] = {
    {0x00000000u, 8}, {0x7f000000u, 8}, {0xa9fe0000u, 16}, {0xe0000000u, 4}, {0xffffffffu, 32}};

const char* protocol_name(Protocol p) {
    return p == Protocol::kTcp ? "tcp" : "udp";
}

std::string address_range(std::uint64_t first, std::uint64_t last) {
    std::string text = to_string(Ipv4Address{static_cast<std::uint32_t>(first)});
    if (last != first) text += "-" + to_string(Ipv4Address{static_cast<std::uint32_t>(last)});
    return text;
}

std::string port_range(std::uint16_t first, std::uint16_t last) {
    std::string text = std::to_string(first);
    if (last != first) text += "-" + std::to_string(last);
    return text;
}

std::string element_text(const EgressElement& e) {
    return std::string(protocol_name(e.protocol)) + " . " +
           address_range(e.first_address.value, e.last_address.value) + " . " +
           port_range(e.first_port, e.last_port);
}

std::string join(const std::vector<std::string>& items) {
    std::string text;
    for (const std::string& item : items) {
        if (!text.empty()) text += ", ";
        text += item;
    }
    return text;
}

std::vector<std::string> allow_elements(const EgressKey& key) {
    std::vector<std::string> items;
    for (const EgressElement& e : disjoint_elements(key.allowed))
        items.push_back(element_text(e));
    return items;
}

std::string never_reachable_elements(const EgressTableSpec& spec) {
    std::vector<Range> ranges;
    for (const auto& [address, prefix] : kNeverReachable) {
        const Ipv4Network n{{address}, prefix};
        ranges.emplace_back(n.address.value, n.last().value);
    }
    // Other tenants' veths and addresses: the whole pool, ours included.
    ranges.emplace_back(spec.pool.address.value, spec.pool.last().value);
    std::vector<std::string> items;
    for (const Range& r : merge_ranges(std::move(ranges)))
        items.push_back(address_range(r.first, r.second));
    return join(items);
}

std::string table() {
    return "inet " + std::string(kEgressTableName);
}
std::string quoted(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}
std::string wildcard(const EgressTableSpec& spec) {
    return quoted(spec.link_prefix + "*");
}

constexpr const char* kAllowSetType = "type inet_proto . ipv4_addr . inet_service; flags interval;";

// Where every refusal of a key ends: counted once, then refused at once
// (a reset for tcp, an ICMP admin-prohibited for the rest) so the pattern
// sees ECONNREFUSED instead of waiting for a timeout.
std::vector<std::string> deny_chain_rules(const EgressKey& key) {
    return {"counter name " + quoted("denied_" + key.id), "meta l4proto tcp reject with tcp reset",
            "reject with icmpx admin-prohibited"};
}

// What a key's pattern may send through the host (forward hook).
std::vector<std::string> key_chain_rules(const EgressKey& key) {
    return {
        // Anti-spoofing: only its own address. Dropped, not rejected: a
        // reject would go to the forged address (a reflection).
        "ip saddr != " + to_string(key.pattern_address) + " drop",
        // Before the allow-list, so no list can open these.
        "ip daddr @never_reachable goto deny_" + key.id,
        "meta l4proto . ip daddr . th dport @allow_" + key.id + " accept",
        "goto deny_" + key.id,
    };
}

void add_block(std::string& out, const std::string& header, const std::vector<std::string>& lines) {
    out += "\t" + header + " {\n";
    for (const std::string& line : lines)
        out += "\t\t" + line + "\n";
    out += "\t}\n";
}

std::vector<std::string> add_rules(const std::string& chain,
                                   const std::vector<std::string>& rules) {
    std::vector<std::string> commands;
    for (const std::string& rule : rules)
        commands.push_back("add rule " + table() + " " + chain + " " + rule);
    return commands;
}

std::string lines(const std::vector<std::string>& commands) {
    std::string out;
    for (const std::string& c : commands)
        out += c + "\n";
    return out;
}

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

std::vector<EgressElement> disjoint_elements(const std::vector<EgressAllow>& allowed) {
    std::vector<EgressElement> out;
    for (const Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
        struct Box {
            std::uint64_t first, last;
            Range ports;
        };
        std::vector<Box> boxes;
        std::set<std::uint64_t> cuts;
        for (const EgressAllow& a : allowed) {
            if (a.protocol != protocol || a.first_port > a.last_port) continue;
            const std::uint64_t first = a.network.address.value & a.network.mask();
            const std::uint64_t last = first | (~a.network.mask() & 0xffffffffu);
            boxes.push_back({first, last, {a.first_port, a.last_port}});
            cuts.insert(first);
            cuts.insert(last + 1);
        }
        // Split the address axis at every box edge; within one slice the
        // covering boxes are the same, so their port ranges merge into a
        // disjoint list. Neighbouring slices with the same list are joined.
        struct Slice {
            std::uint64_t first, last;
            std::vector<Range> ports;
        };
        std::vector<Slice> slices;
        for (auto it = cuts.begin(); it != cuts.end() && std::next(it) != cuts.end(); ++it) {
            const std::uint64_t first = *it;
            const std::uint64_t last = *std::next(it) - 1;
            std::vector<Range> ports;
            for (const Box& b : boxes)
                if (b.first <= first && last <= b.last) ports.push_back(b.ports);
            if (ports.empty()) continue;
            std::vector<Range> merged = merge_ranges(std::move(ports));
            if (!slices.empty() && slices.back().last + 1 == first &&
                slices.back().ports == merged) {
                slices.back().last = last;
            } else {
                slices.push_back({first, last, std::move(merged)});
            }
        }
        for (const Slice& s : slices)
            for (const Range& p : s.ports)
                out.push_back({protocol,
                               {static_cast<std::uint32_t>(s.first)},
                               {static_cast<std::uint32_t>(s.last)},
                               static_cast<std::uint16_t>(p.first),
                               static_cast<std::uint16_t>(p.second)});
    }
    return out;
}

void validate_egress_spec(const EgressTableSpec& spec) {
    const std::string& p = spec.link_prefix;
    if (p.empty() || p.size() > 8 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return is_id_char(c) && c != '_'; }))
        throw ConfigError("egress link prefix \"" + p + "\": must be 1 to 8 of [a-z0-9]");
    if (spec.pool.prefix < 1 || spec.pool.prefix > 31 ||
        (spec.pool.address.value & ~spec.pool.mask()) != 0)
        throw ConfigError("egress pool " + to_string(spec.pool) +
                          ": must be a network of prefix /1 to /31");
}

void validate_egress_key(const EgressTableSpec& spec, const EgressKey& key) {
    if (key.id.empty() || key.id.size() > 64 ||
        !std::all_of(key.id.begin(), key.id.end(), is_id_char))
        throw ConfigError("egress key id \"" + key.id + "\": must be 1 to 64 of [a-z0-9_]");
    const std::string& link = key.host_link;
    // IFNAMSIZ - 1; the prefix keeps our matches (`iifname "plk*"`) on it.
    if (link.size() > 15 || link.size() <= spec.link_prefix.size() ||
        link.compare(0, spec.link_prefix.size(), spec.link_prefix) != 0 ||
        !std::all_of(link.begin(), link.end(), [](char c) {
            return is_id_char(c) || c == '-' || c == '.' || (c >= 'A' && c <= 'Z');
        }))
        throw ConfigError("egress key " + key.id + ": host link \"" + link +
                          "\" is not an interface name starting with \"" + spec.link_prefix + "\"");
    if (!spec.pool.contains(key.pattern_address))
        throw ConfigError("egress key " + key.id + ": pattern address " +
                          to_string(key.pattern_address) + " is not in the pool " +
                          to_string(spec.pool));
    for (const EgressAllow& a : key.allowed) {
        if (a.first_port > a.last_port)
            throw ConfigError("egress key " + key.id + ": port range " +
                              std::to_string(a.first_port) + "-" + std::to_string(a.last_port) +
                              " to " + to_string(a.network) + " is reversed");
        if (a.network.prefix < 0 || a.network.prefix > 32 ||
            (a.network.address.value & ~a.network.mask()) != 0)
            throw ConfigError("egress key " + key.id + ": " + to_string(a.network) +
                              " is not a network");
    }
}

std::string render_table(const EgressTableSpec& spec, const std::vector<EgressKey>& keys) {
    validate_egress_spec(spec);
    std::set<std::string> ids, links;
    for (const EgressKey& key : keys) {
        validate_egress_key(spec, key);
        if (!ids.insert(key.id).second)
            throw ConfigError("egress key id " + key.id + " is listed twice");
        if (!links.insert(key.host_link).second)
            throw ConfigError("egress host link " + key.host_link + " is listed twice");
    }
    const std::string any_link = wildcard(spec);
    // Declaring the table first makes `delete table` succeed when there is
    // none; the three commands are one transaction, so the old table is
    // replaced by the new one without a moment of neither.
    std::string out = "table " + table() + "\ndelete table " + table() + "\n";
    out += "table " + table() + " {\n";
    add_block(out, "set never_reachable",
              {"type ipv4_addr; flags interval;",
               "elements = { " + never_reachable_elements(spec) + " }"});
    std::vector<std::string> to_key, to_deny;
    for (const EgressKey& key : keys) {
        out += "\tcounter denied_" + key.id + " {\n\t}\n";
        std::vector<std::string> set_lines = {kAllowSetType};
        const std::vector<std::string> elements = allow_elements(key);
        if (!elements.empty()) set_lines.push_back("elements = { " + join(elements) + " }");
        add_block(out, "set allow_" + key.id, set_lines);
        add_block(out, "chain deny_" + key.id, deny_chain_rules(key));
        add_block(out, "chain key_" + key.id, key_chain_rules(key));
        to_key.push_back(quoted(key.host_link) + " : goto key_" + key.id);
        to_deny.push_back(quoted(key.host_link) + " : goto deny_" + key.id);
    }
    // Declared after the chains their elements jump to.
    std::vector<std::string> map_lines = {"type ifname : verdict;"};
    if (!to_key.empty()) map_lines.push_back("elements = { " + join(to_key) + " }");
    add_block(out, "map link_to_key", map_lines);
    map_lines.resize(1);
    if (!to_deny.empty()) map_lines.push_back("elements = { " + join(to_deny) + " }");
    add_block(out, "map link_to_deny", map_lines);
    add_block(out, "chain forward",
              {
                  // policy accept: traffic that is not ours is the host's business.
                  "type filter hook forward priority filter; policy accept;",
                  "iifname " + any_link + " ct state invalid drop",
                  // Patterns get IPv4 only; no IPv6 leaves through the host.
                  "iifname " + any_link + " meta nfproto ipv6 drop",
                  // Each link to its key's chain, which always ends in a verdict.
                  "iifname " + any_link + " iifname vmap @link_to_key",
                  // A link of ours that no key owns (yet, or any more).
                  "iifname " + any_link + " meta l4proto tcp reject with tcp reset",
                  "iifname " + any_link + " reject with icmpx admin-prohibited",
                  // Towards a pattern: replies only, nobody opens connections to it.
                  "oifname " + any_link + " ct state established,related accept",
                  "oifname " + any_link + " drop",
              });
    add_block(out, "chain input",
              {
                  // Addressed to the host itself (its loopback services, the
                  // launcher's ports, any of its addresses): never, counted
                  // against the key whose link it came from.
                  "type filter hook input priority filter; policy accept;",
                  "iifname " + any_link + " ct state invalid drop",
                  "iifname " + any_link + " meta nfproto ipv6 drop",
                  "iifname " + any_link + " iifname vmap @link_to_deny",
                  "iifname " + any_link + " meta l4proto tcp reject with tcp reset",
                  "iifname " + any_link + " reject with icmpx admin-prohibited",
              });
    add_block(out, "chain postrouting",
              {
                  "type nat hook postrouting priority srcnat; policy accept;",
                  // The pool is private: leave with the host's address. Not
                  // towards our links (nothing is forwarded there but replies).
                  "ip saddr " + to_string(spec.pool) + " oifname != " + any_link + " masquerade",
              });
    out += "}\n";
    return out;
}

std::string render_add_key(const EgressTableSpec& spec, const EgressKey& key) {
    validate_egress_spec(spec);
    validate_egress_key(spec, key);
    std::vector<std::string> c;
    c.push_back("create counter " + table() + " denied_" + key.id);
    c.push_back("create set " + table() + " allow_" + key.id + " { " + kAllowSetType + " }");
    if (const auto elements = allow_elements(key); !elements.empty())
        c.push_back("add element " + table() + " allow_" + key.id + " { " + join(elements) + " }");
    c.push_back("create chain " + table() + " deny_" + key.id);
    for (std::string& r : add_rules("deny_" + key.id, deny_chain_rules(key)))
        c.push_back(r);
    c.push_back("create chain " + table() + " key_" + key.id);
    for (std::string& r : add_rules("key_" + key.id, key_chain_rules(key)))
        c.push_back(r);
    // Last: from here on the link's packets reach the chains above.
    c.push_back("add element " + table() + " link_to_key { " + quoted(key.host_link) +
                " : goto key_" + key.id + " }");
    c.push_back("add element " + table() + " link_to_deny { " + quoted(key.host_link) +
                " : goto deny_" + key.id + " }");
    return lines(c);
}

std::string render_update_key(const EgressTableSpec& spec, const EgressKey& key) {
    validate_egress_spec(spec);
    validate_egress_key(spec, key);
    std::vector<std::string> c;
    c.push_back("flush set " + table() + " allow_" + key.id);
    if (const auto elements = allow_elements(key); !elements.empty())
        c.push_back("add element " + table() + " allow_" + key.id + " { " + join(elements) + " }");
    c.push_back("flush chain " + table() + " key_" + key.id);
    for (std::string& r : add_rules("key_" + key.id, key_chain_rules(key)))
        c.push_back(r);
    return lines(c);
}

std::string render_remove_key(std::string_view id, std::string_view host_link) {
    const std::string key(id);
    return lines({
        "delete element " + table() + " link_to_key { " + quoted(host_link) + " }",
        "delete element " + table() + " link_to_deny { " + quoted(host_link) + " }",
        "delete chain " + table() + " key_" + key,
        "delete chain " + table() + " deny_" + key,
        "delete set " + table() + " allow_" + key,
        "delete counter " + table() + " denied_" + key,
    });
}

std::string render_remove_table() {
    return "table " + table() + "\ndelete table " + table() + "\n";
}

std::string render_list_denied_counter(std::string_view id) {
    return "list counter " + table() + " denied_" + std::string(id) + "\n";
}

std::optional<std::uint64_t> parse_counter_packets(std::string_view nft_output) {
    constexpr std::string_view kWord = "packets ";
    const std::size_t at = nft_output.find(kWord);
    if (at == std::string_view::npos) return std::nullopt;
    const char* begin = nft_output.data() + at + kWord.size();
    const char* end = nft_output.data() + nft_output.size();
    std::uint64_t packets = 0;
    const auto [stop, ec] = std::from_chars(begin, end, packets);
    if (ec != std::errc{} || stop == begin || (stop != end && *stop != ' ' && *stop != '\n'))
        return std::nullopt;
    return packets;
}

}  // namespace sandbox
