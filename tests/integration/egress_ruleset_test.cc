// The egress table's text (sandbox/egress_ruleset.h): what it must contain,
// the disjoint allow elements, the counter parser, and every script accepted
// by nft's own checker (a dry run inside a netns the test creates).
#include "sandbox/egress_ruleset.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "netns_support.h"
#include "sandbox/error.h"
#include "sandbox/nft_context.h"

namespace sandbox {
namespace {

using Protocol = EgressAllow::Protocol;

Ipv4Address ip(const char* text) {
    return *parse_ipv4_address(text);
}
Ipv4Network net(const char* text) {
    return *parse_ipv4_network(text);
}

EgressAllow allow(Protocol p, const char* network, std::uint16_t first, std::uint16_t last) {
    return {p, net(network), first, last};
}

EgressElement element(Protocol p, const char* first, const char* last, std::uint16_t first_port,
                      std::uint16_t last_port) {
    return {p, ip(first), ip(last), first_port, last_port};
}

EgressKey key(std::string id, std::string link, const char* address,
              std::vector<EgressAllow> allowed) {
    return {std::move(id), std::move(link), ip(address), std::move(allowed)};
}

EgressKey key_a() {
    return key("a", "plk0", "10.213.0.1",
               {allow(Protocol::kTcp, "198.51.100.0/24", 443, 443),
                allow(Protocol::kTcp, "198.51.100.7/32", 400, 500),  // overlaps the first
                allow(Protocol::kUdp, "192.0.2.53/32", 53, 53)});
}
EgressKey key_b() {
    return key("key_2", "plk1", "10.213.0.3", {allow(Protocol::kTcp, "0.0.0.0/0", 0, 65535)});
}
EgressKey key_empty() {
    return key("empty", "plk7", "10.213.0.15", {});
}

bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

TEST(EgressRulesetTest, TableHasEveryPromise) {
    const std::string t = render_table({}, {key_a(), key_b()});
    // Replaced atomically: declared, deleted and defined in one script.
    EXPECT_EQ(t.rfind("table inet pattern_launcher\ndelete table inet pattern_launcher\n", 0), 0u)
        << t;
    EXPECT_TRUE(contains(t, "type filter hook forward priority filter; policy accept;")) << t;
    EXPECT_TRUE(contains(t, "type filter hook input priority filter; policy accept;")) << t;
    EXPECT_TRUE(contains(t, "type nat hook postrouting priority srcnat; policy accept;")) << t;
    EXPECT_TRUE(contains(t, "iifname \"plk*\" iifname vmap @link_to_key")) << t;
    EXPECT_TRUE(contains(t, "iifname \"plk*\" iifname vmap @link_to_deny")) << t;
    EXPECT_TRUE(contains(t, "\"plk0\" : goto key_a, \"plk1\" : goto key_key_2")) << t;
    EXPECT_TRUE(contains(t, "\"plk0\" : goto deny_a, \"plk1\" : goto deny_key_2")) << t;
    EXPECT_TRUE(contains(t, "ip saddr != 10.213.0.1 drop")) << t;
    EXPECT_TRUE(contains(t, "ip saddr != 10.213.0.3 drop")) << t;
    EXPECT_TRUE(contains(t, "ip daddr @never_reachable goto deny_a")) << t;
    EXPECT_TRUE(contains(t, "meta l4proto . ip daddr . th dport @allow_a accept")) << t;
    EXPECT_TRUE(contains(t, "counter denied_a {")) << t;
    EXPECT_TRUE(contains(t, "counter name \"denied_a\"")) << t;
    EXPECT_TRUE(contains(t, "meta l4proto tcp reject with tcp reset")) << t;
    EXPECT_TRUE(contains(t, "reject with icmpx admin-prohibited")) << t;
    EXPECT_TRUE(contains(t, "oifname \"plk*\" ct state established,related accept")) << t;
    EXPECT_TRUE(contains(t, "oifname \"plk*\" drop")) << t;
    EXPECT_TRUE(contains(t, "iifname \"plk*\" ct state invalid drop")) << t;
    EXPECT_TRUE(contains(t, "iifname \"plk*\" meta nfproto ipv6 drop")) << t;
    EXPECT_TRUE(contains(t, "ip saddr 10.213.0.0/16 oifname != \"plk*\" masquerade")) << t;
    // Never reachable: merged, the pool included.
    EXPECT_TRUE(contains(t,
                         "elements = { 0.0.0.0-0.255.255.255, 10.213.0.0-10.213.255.255, "
                         "127.0.0.0-127.255.255.255, 169.254.0.0-169.254.255.255, "
                         "224.0.0.0-239.255.255.255, 255.255.255.255 }"))
        << t;
    // The overlapping allows became disjoint elements.
    EXPECT_TRUE(contains(t,
                         "elements = { tcp . 198.51.100.0-198.51.100.6 . 443, "
                         "tcp . 198.51.100.7 . 400-500, tcp . 198.51.100.8-198.51.100.255 . "
                         "443, udp . 192.0.2.53 . 53 }"))
        << t;
    EXPECT_TRUE(contains(t, "tcp . 0.0.0.0-255.255.255.255 . 0-65535")) << t;
    EXPECT_FALSE(contains(t, "fwd")) << t;
}

TEST(EgressRulesetTest, PoolOverlappingANeverReachableRangeIsMerged) {
    EgressTableSpec spec{net("127.64.0.0/16"), "pl"};
    const std::string t = render_table(spec, {});
    EXPECT_TRUE(contains(t, "127.0.0.0-127.255.255.255, 169.254")) << t;
    EXPECT_FALSE(contains(t, "127.64.0.0-")) << t;
    EXPECT_TRUE(contains(t, "iifname \"pl*\"")) << t;
    EXPECT_FALSE(contains(t, "link_to_key {\n\t\ttype ifname : verdict;\n\t\telements")) << t;
}

TEST(EgressRulesetTest, KeyScripts) {
    const std::string add = render_add_key({}, key_a());
    EXPECT_TRUE(contains(add, "create counter inet pattern_launcher denied_a\n")) << add;
    EXPECT_TRUE(contains(add, "create chain inet pattern_launcher key_a\n")) << add;
    EXPECT_TRUE(contains(add, "add rule inet pattern_launcher key_a ip saddr != 10.213.0.1 drop\n"))
        << add;
    // The link is mapped last, once its chains exist.
    EXPECT_TRUE(
        add.ends_with("add element inet pattern_launcher link_to_deny { \"plk0\" : goto "
                      "deny_a }\n"))
        << add;
    const std::string update = render_update_key({}, key_a());
    EXPECT_EQ(update.rfind("flush set inet pattern_launcher allow_a\nadd element inet "
                           "pattern_launcher allow_a { tcp . 198.51.100.0-198.51.100.6 . 443",
                           0),
              0u)
        << update;
    EXPECT_TRUE(contains(update, "flush chain inet pattern_launcher key_a\n")) << update;
    EXPECT_FALSE(contains(render_update_key({}, key_empty()), "add element")) << "no elements";
    const std::string remove = render_remove_key("a", "plk0");
    EXPECT_EQ(remove.rfind("delete element inet pattern_launcher link_to_key { \"plk0\" }\n", 0),
              0u)
        << remove;
    EXPECT_TRUE(contains(remove, "delete counter inet pattern_launcher denied_a\n")) << remove;
    EXPECT_EQ(render_list_denied_counter("a"), "list counter inet pattern_launcher denied_a\n");
}

TEST(EgressRulesetTest, RefusesWhatCannotBeRendered) {
    const EgressTableSpec spec;
    auto bad = [&](EgressKey k) {
        EXPECT_THROW(validate_egress_key(spec, k), ConfigError) << k.id;
    };
    bad(key("", "plk0", "10.213.0.1", {}));
    bad(key("A", "plk0", "10.213.0.1", {}));
    bad(key("a b", "plk0", "10.213.0.1", {}));
    bad(key("a;", "plk0", "10.213.0.1", {}));
    bad(key(std::string(65, 'a'), "plk0", "10.213.0.1", {}));
    bad(key("a", "eth0", "10.213.0.1", {}));              // not our prefix
    bad(key("a", "plk", "10.213.0.1", {}));               // the prefix alone
    bad(key("a", "plk0123456789abc", "10.213.0.1", {}));  // 16 > IFNAMSIZ - 1
    bad(key("a", "plk\"0", "10.213.0.1", {}));
    bad(key("a", "plk0", "10.214.0.1", {}));  // outside the pool
    bad(key("a", "plk0", "10.213.0.1", {allow(Protocol::kTcp, "1.2.3.4/32", 90, 80)}));
    EXPECT_NO_THROW(validate_egress_key(spec, key("a_1", "plk0", "10.213.0.1", {})));
    EXPECT_THROW(render_table(spec, {key_a(), key_a()}), ConfigError);
    EgressKey same_link = key_b();
    same_link.host_link = "plk0";
    EXPECT_THROW(render_table(spec, {key_a(), same_link}), ConfigError);
    EXPECT_THROW(render_table({net("10.0.0.0/8"), "p_l"}, {}), ConfigError);
    EXPECT_THROW(render_table({net("10.0.0.0/8"), ""}, {}), ConfigError);
    EXPECT_THROW(render_table({net("0.0.0.0/0"), "plk"}, {}), ConfigError);
}

TEST(DisjointElementsTest, SimpleCases) {
    EXPECT_TRUE(disjoint_elements({}).empty());
    EXPECT_EQ(disjoint_elements({allow(Protocol::kTcp, "10.0.0.0/24", 80, 80)}),
              (std::vector{element(Protocol::kTcp, "10.0.0.0", "10.0.0.255", 80, 80)}));
    // Duplicates, overlapping and adjacent port ranges of one network merge.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kTcp, "10.0.0.1/32", 80, 80),
                                 allow(Protocol::kTcp, "10.0.0.1/32", 80, 80),
                                 allow(Protocol::kTcp, "10.0.0.1/32", 81, 90),
                                 allow(Protocol::kTcp, "10.0.0.1/32", 85, 100),
                                 allow(Protocol::kTcp, "10.0.0.1/32", 200, 200)}),
              (std::vector{element(Protocol::kTcp, "10.0.0.1", "10.0.0.1", 80, 100),
                           element(Protocol::kTcp, "10.0.0.1", "10.0.0.1", 200, 200)}));
    // Adjacent networks with the same ports merge into one address range.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kUdp, "10.0.0.128/25", 53, 53),
                                 allow(Protocol::kUdp, "10.0.0.0/25", 53, 53)}),
              (std::vector{element(Protocol::kUdp, "10.0.0.0", "10.0.0.255", 53, 53)}));
    // Protocols never mix; tcp first.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kUdp, "10.0.0.1/32", 53, 53),
                                 allow(Protocol::kTcp, "10.0.0.1/32", 53, 53)}),
              (std::vector{element(Protocol::kTcp, "10.0.0.1", "10.0.0.1", 53, 53),
                           element(Protocol::kUdp, "10.0.0.1", "10.0.0.1", 53, 53)}));
    // A network inside another with other ports splits the outer one.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kTcp, "10.0.0.0/8", 443, 443),
                                 allow(Protocol::kTcp, "10.1.0.0/16", 80, 80)}),
              (std::vector{element(Protocol::kTcp, "10.0.0.0", "10.0.255.255", 443, 443),
                           element(Protocol::kTcp, "10.1.0.0", "10.1.255.255", 80, 80),
                           element(Protocol::kTcp, "10.1.0.0", "10.1.255.255", 443, 443),
                           element(Protocol::kTcp, "10.2.0.0", "10.255.255.255", 443, 443)}));
    // A network inside another with ports inside its ports disappears.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kTcp, "0.0.0.0/0", 0, 65535),
                                 allow(Protocol::kTcp, "10.1.0.0/16", 80, 80)}),
              (std::vector{element(Protocol::kTcp, "0.0.0.0", "255.255.255.255", 0, 65535)}));
    // The top of the address space.
    EXPECT_EQ(disjoint_elements({allow(Protocol::kTcp, "255.255.255.255/32", 1, 1),
                                 allow(Protocol::kTcp, "255.255.255.254/31", 1, 2)}),
              (std::vector{element(Protocol::kTcp, "255.255.255.254", "255.255.255.255", 1, 2)}));
}

// Random lists: the elements are pairwise disjoint and cover exactly the
// points the allows cover (checked on every point of a small universe).
TEST(DisjointElementsTest, RandomListsKeepCoverageAndAreDisjoint) {
    std::mt19937 random(12345);
    auto covered = [](const auto& items, Protocol p, std::uint32_t a, std::uint16_t port) {
        for (const auto& i : items) {
            if constexpr (std::is_same_v<std::decay_t<decltype(i)>, EgressAllow>) {
                if (i.protocol == p && i.network.contains({a}) && i.first_port <= port &&
                    port <= i.last_port)
                    return true;
            } else {
                if (i.protocol == p && i.first_address.value <= a && a <= i.last_address.value &&
                    i.first_port <= port && port <= i.last_port)
                    return true;
            }
        }
        return false;
    };
    for (int round = 0; round < 200; ++round) {
        std::vector<EgressAllow> allows;
        const int n = static_cast<int>(random() % 6);
        for (int i = 0; i < n; ++i) {
            const int prefix = 28 + static_cast<int>(random() % 5);  // within 10.0.0.0/27
            const Ipv4Network network{{static_cast<std::uint32_t>(0x0a000000u + random() % 32)},
                                      prefix};
            const Ipv4Network masked{{network.address.value & network.mask()}, prefix};
            const auto first = static_cast<std::uint16_t>(random() % 12);
            const auto last = static_cast<std::uint16_t>(first + random() % 6);
            allows.push_back({random() % 2 ? Protocol::kTcp : Protocol::kUdp, masked, first, last});
        }
        const std::vector<EgressElement> elements = disjoint_elements(allows);
        for (std::size_t i = 0; i < elements.size(); ++i)
            for (std::size_t j = i + 1; j < elements.size(); ++j) {
                const EgressElement& x = elements[i];
                const EgressElement& y = elements[j];
                const bool overlap = x.protocol == y.protocol &&
                                     x.first_address <= y.last_address &&
                                     y.first_address <= x.last_address &&
                                     x.first_port <= y.last_port && y.first_port <= x.last_port;
                ASSERT_FALSE(overlap) << "round " << round << ": " << i << " and " << j;
            }
        for (const Protocol p : {Protocol::kTcp, Protocol::kUdp})
            for (std::uint32_t a = 0x0a000000u - 1; a <= 0x0a000020u; ++a)
                for (std::uint16_t port = 0; port < 20; ++port)
                    ASSERT_EQ(covered(allows, p, a, port), covered(elements, p, a, port))
                        << "round " << round << " address " << to_string(Ipv4Address{a}) << " port "
                        << port;
    }
}

TEST(EgressRulesetTest, ParsesCounterListings) {
    EXPECT_EQ(parse_counter_packets("table inet pattern_launcher {\n\tcounter denied_a {\n\t\t"
                                    "packets 17 bytes 1020\n\t}\n}\n"),
              17u);
    EXPECT_EQ(parse_counter_packets("packets 0 bytes 0"), 0u);
    EXPECT_EQ(parse_counter_packets("packets 18446744073709551615 bytes 0"), 18446744073709551615u);
    EXPECT_EQ(parse_counter_packets(""), std::nullopt);
    EXPECT_EQ(parse_counter_packets("packets x"), std::nullopt);
    EXPECT_EQ(parse_counter_packets("packets 12x"), std::nullopt);
    EXPECT_EQ(parse_counter_packets("packets 18446744073709551616 bytes 0"), std::nullopt);
}

TEST(NftErrorTest, NamesTheScriptLine) {
    const NftError e =
        make_nft_error("<script>:2:4-7: Error: syntax error, unexpected junk\njunk here\n   ^^^^\n",
                       "add table inet x\n   junk here\n");
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.script_line(), "junk here");
    EXPECT_TRUE(contains(e.what(), "(script line 2: junk here)")) << e.what();
    const NftError none = make_nft_error("Error: no location", "x\n");
    EXPECT_EQ(none.line(), 0);
    EXPECT_EQ(none.nft_message(), "Error: no location");
}

// Every script, through nft's checker (kernel validation, nothing applied)
// in a netns of the test's own: without a table, and with one.
class EgressScriptCheckTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string why = pltest::netns_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        netns_ = std::make_unique<pltest::TestNetns>(pltest::netns_name("check"));
        nft_ = pltest::in_netns(netns_->name(), [] { return std::make_unique<NftContext>(); });
    }
    std::string tables() { return pltest::sh_output(netns_->exec() + "nft list tables"); }

    std::unique_ptr<pltest::TestNetns> netns_;
    std::unique_ptr<NftContext> nft_;
};

TEST_F(EgressScriptCheckTest, EveryScriptPassesTheChecker) {
    const EgressTableSpec spec;
    // The longest id: its names (deny_<64 chars>) fit the kernel's 256.
    const EgressKey longest = key(std::string(64, 'z'), "plk15", "10.213.0.31",
                                  {allow(Protocol::kUdp, "203.0.113.0/24", 1, 65535)});
    const std::vector<std::vector<EgressKey>> tables_of = {
        {}, {key_a()}, {key_a(), key_b(), key_empty(), longest}};
    for (const auto& keys : tables_of) {
        SCOPED_TRACE(keys.size());
        EXPECT_NO_THROW(nft_->check(render_table(spec, keys))) << render_table(spec, keys);
        EXPECT_EQ(tables(), "") << "a dry run applies nothing";
    }
    EXPECT_NO_THROW(nft_->check(render_remove_table())) << "no table yet";

    nft_->run(render_table(spec, {key_a()}));
    for (const auto& keys : tables_of)
        EXPECT_NO_THROW(nft_->check(render_table(spec, keys))) << "replacing a table";
    for (const EgressKey& k : {key_b(), key_empty()})
        EXPECT_NO_THROW(nft_->check(render_add_key(spec, k))) << render_add_key(spec, k);
    EgressKey single_port = key_a();
    single_port.allowed = {allow(Protocol::kUdp, "203.0.113.9/32", 123, 123)};
    for (const EgressKey& k : {key_a(), single_port, [] {
                                   EgressKey e = key_a();
                                   e.allowed.clear();
                                   return e;
                               }()})
        EXPECT_NO_THROW(nft_->check(render_update_key(spec, k))) << render_update_key(spec, k);
    EXPECT_NO_THROW(nft_->check(render_remove_key("a", "plk0")));
    EXPECT_NO_THROW(nft_->check(render_list_denied_counter("a")));
    EXPECT_NO_THROW(nft_->check(render_remove_table()));

    // And the checker does refuse: a key added twice, a key that is not there.
    EXPECT_THROW(nft_->check(render_add_key(spec, key_a())), NftError);
    EXPECT_THROW(nft_->check(render_remove_key("key_2", "plk1")), NftError);
    EXPECT_THROW(nft_->check(render_update_key(spec, key_b())), NftError);
    nft_->run(render_remove_table());
    EXPECT_EQ(tables(), "");
}

TEST_F(EgressScriptCheckTest, ErrorsCarryNftsTextAndLine) {
    try {
        nft_->check("add table inet pattern_launcher\nadd chain inet pattern_launcher fwd\n");
        FAIL() << "fwd is an nft keyword";
    } catch (const NftError& e) {
        EXPECT_EQ(e.line(), 2) << e.what();
        EXPECT_EQ(e.script_line(), "add chain inet pattern_launcher fwd");
        EXPECT_TRUE(contains(e.nft_message(), "<script>:2:33-35: Error: syntax error"))
            << e.nft_message();
        EXPECT_TRUE(contains(e.nft_message(), "\nadd chain inet pattern_launcher fwd\n"))
            << "the right line echoed: " << e.nft_message();
    }
    // The kernel's refusal, in a real run: nothing of the transaction applies.
    try {
        nft_->run(
            "add table inet pltest_x\nadd table inet pltest_y\ndelete table inet pltest_absent\n");
        FAIL() << "no such table";
    } catch (const NftError& e) {
        EXPECT_EQ(e.line(), 3) << e.what();
        EXPECT_EQ(e.script_line(), "delete table inet pltest_absent");
        EXPECT_TRUE(contains(e.nft_message(), "No such file or directory")) << e.nft_message();
    }
    EXPECT_EQ(tables(), "") << "one transaction: all or nothing";
}

}  // namespace
}  // namespace sandbox
