#include "core/egress_plan.h"

#include <gtest/gtest.h>

namespace launcher {
namespace {

sandbox::Ipv4Address ip(const char* text) {
    return *sandbox::parse_ipv4_address(text);
}

Manifest manifest_with(const std::vector<std::string>& egress) {
    Manifest m;
    m.name = "db-proxy";
    for (const std::string& e : egress)
        m.sandbox.egress.push_back(parse_egress_destination(e));
    return m;
}

IsolationKey key(Isolation level, const char* ns) {
    IsolationKey k;
    k.level = level;
    k.pattern = "db-proxy";
    if (level != Isolation::kNone) k.namespace_id = ns;
    if (level == Isolation::kSession) k.session_id = "s1";
    return k;
}

std::vector<std::string> texts(const std::vector<EgressDestination>& list) {
    std::vector<std::string> out;
    for (const auto& d : list)
        out.push_back(d.text);
    return out;
}

TEST(EgressPlan, TenantAdditionsReachOnlyThatTenantsKeys) {
    const Manifest m = manifest_with({"10.20.0.7:443"});
    EgressSettings settings;
    settings.tenants["tenant-a"] = {parse_egress_destination("db-a.example:5432"),
                                    parse_egress_destination("10.20.0.7/32:443")};
    using V = std::vector<std::string>;
    // The tenant's duplicate of the manifest's entry is not listed twice.
    EXPECT_EQ(texts(effective_egress(m, key(Isolation::kNamespace, "tenant-a"), settings)),
              (V{"10.20.0.7:443", "db-a.example:5432"}));
    EXPECT_EQ(texts(effective_egress(m, key(Isolation::kSession, "tenant-a"), settings)),
              (V{"10.20.0.7:443", "db-a.example:5432"}));
    EXPECT_EQ(texts(effective_egress(m, key(Isolation::kNamespace, "tenant-b"), settings)),
              (V{"10.20.0.7:443"}));
    // A shared key serves every tenant: none of their additions.
    EXPECT_EQ(texts(effective_egress(m, key(Isolation::kNone, ""), settings)),
              (V{"10.20.0.7:443"}));
}

TEST(EgressPlan, NamesBecomeOneElementPerAddressAndUnresolvedOnesAreNamed) {
    const Manifest m = manifest_with(
        {"db.example:5432", "10.1.0.0/16:8000-8099/udp", "cache.example:6379", "db.example:6432"});
    EXPECT_EQ(egress_names(m.sandbox.egress),
              (std::vector<std::string>{"cache.example", "db.example"}));
    const ResolvedNames resolved{{"db.example", {ip("192.0.2.5"), ip("192.0.2.6")}},
                                 {"cache.example", {}}};
    const AllowedElements e = allowed_elements(m.sandbox.egress, resolved);
    EXPECT_EQ(e.unresolved, (std::vector<std::string>{"cache.example"}));
    ASSERT_EQ(e.allowed.size(), 5u);
    EXPECT_EQ(sandbox::to_string(e.allowed[0].network), "192.0.2.5/32");
    EXPECT_EQ(e.allowed[0].first_port, 5432);
    EXPECT_EQ(sandbox::to_string(e.allowed[1].network), "192.0.2.6/32");
    EXPECT_EQ(sandbox::to_string(e.allowed[2].network), "10.1.0.0/16");
    EXPECT_EQ(e.allowed[2].protocol, sandbox::EgressAllow::Protocol::kUdp);
    EXPECT_EQ(e.allowed[2].first_port, 8000);
    EXPECT_EQ(e.allowed[2].last_port, 8099);
    EXPECT_EQ(e.allowed[3].last_port, 6432);
    EXPECT_EQ(e.allowed[4].first_port, 6432);
    // The overlaps are the ruleset's to untangle; the result stays the same coverage.
    EXPECT_FALSE(sandbox::disjoint_elements(e.allowed).empty());
}

TEST(EgressPlan, HostsFileHoldsOnlyTheListedNames) {
    const ResolvedNames resolved{{"db.example", {ip("192.0.2.5")}},
                                 {"other.example", {ip("192.0.2.9")}}};
    const std::string hosts = render_hosts({"db.example"}, resolved);
    EXPECT_NE(hosts.find("127.0.0.1\tlocalhost\n"), std::string::npos);
    EXPECT_NE(hosts.find("192.0.2.5\tdb.example\n"), std::string::npos);
    EXPECT_EQ(hosts.find("other.example"), std::string::npos);
    EXPECT_EQ(render_resolv_conf().find("nameserver"), std::string::npos);
}

}  // namespace
}  // namespace launcher
