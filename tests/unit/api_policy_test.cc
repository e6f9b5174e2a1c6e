// The API policy's decisions, without sockets: which grants match which
// identity, namespaces and patterns as globs, shared keys only under "*",
// the token's namespaces claim narrowing a grant, and the refusals.
#include "auth/api_policy.h"

#include <gtest/gtest.h>

namespace launcher::auth {
namespace {

CallerIdentity unix_peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {},
                         bool in_tenant_cgroup = false) {
    CallerIdentity id;
    id.method = AuthMethod::kUnixPeer;
    id.transport = "unix";
    UnixPeer peer;
    peer.pid = 42;
    peer.uid = uid;
    peer.gid = gid;
    peer.groups = std::move(groups);
    peer.in_tenant_cgroup = in_tenant_cgroup;
    peer.cgroup = in_tenant_cgroup ? "/pl/ns-a/echo" : "/user.slice";
    id.unix_peer = peer;
    return id;
}

CallerIdentity certificate(const std::string& uri, const std::string& dns = "",
                           const std::string& cn = "") {
    CallerIdentity id;
    id.method = AuthMethod::kCertificate;
    id.transport = "tls";
    CertificateIdentity c;
    if (!uri.empty()) c.uris.push_back(uri);
    if (!dns.empty()) c.dns_names.push_back(dns);
    c.common_name = cn;
    id.certificate = c;
    return id;
}

CallerIdentity token(const std::string& sub, std::map<std::string, std::vector<std::string>> claims,
                     std::optional<std::vector<std::string>> namespaces = std::nullopt) {
    CallerIdentity id;
    id.method = AuthMethod::kToken;
    VerifiedToken t;
    t.subject = sub;
    t.issuer = "https://issuer.test";
    t.string_claims = std::move(claims);
    if (namespaces) {
        t.has_namespaces_claim = true;
        t.namespaces = *namespaces;
    }
    id.token = t;
    return id;
}

Grant grant(std::string name, GrantMatch match, std::set<Rpc> rpcs,
            std::vector<std::string> namespaces = {"*"},
            std::vector<std::string> patterns = {"*"}) {
    Grant g;
    g.name = std::move(name);
    g.match = std::move(match);
    g.rpcs = std::move(rpcs);
    g.namespaces = std::move(namespaces);
    g.patterns = std::move(patterns);
    return g;
}

TEST(ApiPolicy, DefaultAllowsRootAndTheGroupOnlyAndNeverATenantProcess) {
    const ApiPolicy policy = ApiPolicy::local_default(gid_t{990});
    for (Rpc rpc : kAllRpcs) {
        EXPECT_TRUE(policy.permissions_for(unix_peer(0, 0)).allows(rpc, "a", "echo"));
        EXPECT_TRUE(policy.permissions_for(unix_peer(1000, 1000, {990})).allows(rpc, "", "echo"));
        EXPECT_TRUE(policy.permissions_for(unix_peer(1000, 990)).check(rpc).allowed);
        EXPECT_FALSE(policy.permissions_for(unix_peer(1000, 1000, {991})).check(rpc).allowed);
    }
    // Root inside the tenants' subtree: nothing, and the message says why.
    const Decision d = policy.permissions_for(unix_peer(0, 0, {}, true)).check(Rpc::kHealth);
    EXPECT_FALSE(d.allowed);
    EXPECT_FALSE(d.unauthenticated);
    EXPECT_NE(d.message.find("inside the tenants' cgroup subtree (/pl/ns-a/echo)"),
              std::string::npos)
        << d.message;
    // Without the group, only root.
    EXPECT_FALSE(ApiPolicy::local_default(std::nullopt)
                     .permissions_for(unix_peer(1000, 990))
                     .check(Rpc::kHealth)
                     .allowed);
}

TEST(ApiPolicy, NoIdentityIsUnauthenticatedNotDenied) {
    CallerIdentity nobody;
    nobody.failure = "token refused: expired";
    const Decision d =
        ApiPolicy::local_default(std::nullopt).permissions_for(nobody).check(Rpc::kListPatterns);
    EXPECT_FALSE(d.allowed);
    EXPECT_TRUE(d.unauthenticated);
    EXPECT_NE(d.message.find("token refused: expired"), std::string::npos);
}

TEST(ApiPolicy, NamespaceAndPatternGlobsAndSharedKeysOnlyUnderStar) {
    GrantMatch m;
    m.certificate = "spiffe://x/tenant-a";
    const ApiPolicy policy(
        {grant("a", m, {Rpc::kLaunchPattern}, {"team-*", "tenant-a"}, {"echo", "kv-*"})});
    const Permissions p = policy.permissions_for(certificate("spiffe://x/tenant-a"));
    EXPECT_TRUE(p.allows(Rpc::kLaunchPattern, "tenant-a", "echo"));
    EXPECT_TRUE(p.allows(Rpc::kLaunchPattern, "team-blue", "kv-redis"));
    EXPECT_FALSE(p.allows(Rpc::kLaunchPattern, "tenant-b", "echo"));
    EXPECT_FALSE(p.allows(Rpc::kLaunchPattern, "tenant-a", "queue"));
    // A shared key has no namespace: "team-*" does not reach it (nor does "*" match "" by glob
    // alone).
    EXPECT_FALSE(p.allows(Rpc::kLaunchPattern, "", "echo"));
    EXPECT_FALSE(p.allows(Rpc::kListPatterns, "tenant-a", "echo"));
    const Decision d = p.check(Rpc::kLaunchPattern, "tenant-b", "echo");
    EXPECT_NE(d.message.find("cert spiffe://x/tenant-a"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("namespace 'tenant-b'"), std::string::npos) << d.message;

    const ApiPolicy everything({grant("all", m, {Rpc::kLaunchPattern})});
    EXPECT_TRUE(everything.permissions_for(certificate("spiffe://x/tenant-a"))
                    .allows(Rpc::kLaunchPattern, "", "echo"));
}

TEST(ApiPolicy, CertificatesMatchTheirPrimaryNameOnly) {
    GrantMatch by_dns;
    by_dns.certificate = "*.clients.test";
    GrantMatch by_cn;
    by_cn.certificate = "cn-client";
    const ApiPolicy policy(
        {grant("dns", by_dns, {Rpc::kHealth}), grant("cn", by_cn, {Rpc::kListPatterns})});
    EXPECT_TRUE(
        policy.permissions_for(certificate("", "b.clients.test")).check(Rpc::kHealth).allowed);
    // A URI SAN comes first: the DNS SAN of the same certificate does not count.
    EXPECT_FALSE(policy.permissions_for(certificate("spiffe://x/y", "b.clients.test"))
                     .check(Rpc::kHealth)
                     .allowed);
    EXPECT_TRUE(
        policy.permissions_for(certificate("", "", "cn-client")).check(Rpc::kListPatterns).allowed);
    EXPECT_FALSE(policy.permissions_for(certificate("", "x.test", "cn-client"))
                     .check(Rpc::kListPatterns)
                     .allowed);
    // A unix peer never matches a certificate grant, nor the reverse.
    EXPECT_FALSE(policy.permissions_for(unix_peer(0, 0)).check(Rpc::kHealth).allowed);
    const ApiPolicy root = ApiPolicy::local_default(std::nullopt);
    EXPECT_FALSE(root.permissions_for(certificate("", "", "root")).check(Rpc::kHealth).allowed);
}

TEST(ApiPolicy, TokensMatchSubjectAndClaimsAndTheirNamespacesClaimNarrows) {
    GrantMatch proxies;
    proxies.token_subject = "proxy-*";
    GrantMatch admins;
    admins.token_claims = {{"role", "admin"}, {"team", "ops*"}};
    const ApiPolicy policy({grant("proxies", proxies, {Rpc::kLaunchPattern}),
                            grant("admins", admins, {Rpc::kReload})});
    EXPECT_TRUE(
        policy.permissions_for(token("proxy-1", {})).allows(Rpc::kLaunchPattern, "any", "echo"));
    EXPECT_FALSE(
        policy.permissions_for(token("intruder", {})).allows(Rpc::kLaunchPattern, "any", "echo"));
    EXPECT_TRUE(
        policy.permissions_for(token("bob", {{"role", {"viewer", "admin"}}, {"team", {"ops-eu"}}}))
            .check(Rpc::kReload)
            .allowed);
    EXPECT_FALSE(
        policy.permissions_for(token("bob", {{"role", {"admin"}}})).check(Rpc::kReload).allowed);

    const Permissions narrowed =
        policy.permissions_for(token("proxy-1", {}, std::vector<std::string>{"tenant-a", "lab-*"}));
    EXPECT_TRUE(narrowed.allows(Rpc::kLaunchPattern, "tenant-a", "echo"));
    EXPECT_TRUE(narrowed.allows(Rpc::kLaunchPattern, "lab-3", "echo"));
    EXPECT_FALSE(narrowed.allows(Rpc::kLaunchPattern, "tenant-b", "echo"));
    EXPECT_FALSE(narrowed.allows(Rpc::kLaunchPattern, "", "echo"));
    EXPECT_NE(
        narrowed.check(Rpc::kLaunchPattern, "tenant-b", "echo").message.find("namespaces claim"),
        std::string::npos);
}

TEST(ApiPolicy, RpcNamesRoundTripAndGlobsRefuseNul) {
    for (Rpc rpc : kAllRpcs)
        EXPECT_EQ(parse_rpc(rpc_name(rpc)), rpc);
    EXPECT_FALSE(parse_rpc("launchpattern"));
    EXPECT_TRUE(glob_match("spiffe://x/*", "spiffe://x/a/b"));
    EXPECT_FALSE(glob_match("a*", std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace launcher::auth
