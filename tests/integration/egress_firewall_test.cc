// The egress firewall with real traffic, entirely inside network namespaces
// the test creates:
//
//   pattern (eth0 10.213.0.3/31) ── plkN ── router (firewall, forwarding) ── bkN ── backend
//   tenant2 (eth0 10.213.0.5/31) ── plkN+1 ─┘   10.213.0.2, .4, 198.51.100.1      198.51.100.2
//
// The backend listens on tcp 8080, 8081 and udp 9000, 9001 (echo); the router
// itself and tenant2 listen on tcp 7000, so a refusal there is the
// firewall's, not a closed port's.
#include "sandbox/egress_firewall.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "netns_support.h"
#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace sandbox {
namespace {

using Protocol = EgressAllow::Protocol;
using pltest::in_netns;
using pltest::sh;
using pltest::TestNetns;

Ipv4Address ip(const char* text) {
    return *parse_ipv4_address(text);
}
Ipv4Network net(const char* text) {
    return *parse_ipv4_network(text);
}

sockaddr_in endpoint(const char* address, std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, address, &sa.sin_addr);
    return sa;
}

UniqueFd socket_in(const std::string& netns, int type) {
    UniqueFd fd =
        in_netns(netns, [type] { return UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, 0)); });
    if (!fd) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    return fd;
}

UniqueFd bound_in(const std::string& netns, int type, const char* address, std::uint16_t port) {
    UniqueFd fd = socket_in(netns, type);
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in sa = endpoint(address, port);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    if (type == SOCK_STREAM && ::listen(fd.get(), 16) != 0)
        throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    return fd;
}

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
}

// 0 when connected, else the errno; ETIMEDOUT if nothing came back in
// `timeout_ms` (a refusal by the firewall is immediate: a reset).
int tcp_connect(const std::string& netns, const char* address, std::uint16_t port,
                const char* source = nullptr, int timeout_ms = 3000) {
    UniqueFd fd = socket_in(netns, SOCK_STREAM | SOCK_NONBLOCK);
    if (source != nullptr) {
        const sockaddr_in sa = endpoint(source, 0);
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return errno;
    }
    const sockaddr_in sa = endpoint(address, port);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

// Accepts the pending connection of `listener` and returns its peer's address.
std::string accept_peer(int listener) {
    if (!readable(listener, 2000)) return "(nothing to accept)";
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    UniqueFd conn(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!conn) return std::string("(accept: ") + std::strerror(errno) + ")";
    return to_string(Ipv4Address{ntohl(peer.sin_addr.s_addr)});
}

class EgressTrafficTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string why = pltest::netns_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        router_ = std::make_unique<TestNetns>(pltest::netns_name("router"));
        pattern_ = std::make_unique<TestNetns>(pltest::netns_name("pattern"));
        tenant2_ = std::make_unique<TestNetns>(pltest::netns_name("tenant2"));
        backend_ = std::make_unique<TestNetns>(pltest::netns_name("backend"));
        const std::string& r = router_->name();
        const int n = static_cast<int>(::getpid() % 1000);
        link_ = "plk" + std::to_string(n);
        tenant2_link_ = "plk" + std::to_string(n + 1000);
        // Created inside the router netns; the peers go straight to theirs.
        sh("ip -n " + r + " link add " + link_ + " type veth peer name eth0 netns " +
           pattern_->name());
        sh("ip -n " + r + " link add " + tenant2_link_ + " type veth peer name eth0 netns " +
           tenant2_->name());
        sh("ip -n " + r + " link add bk" + std::to_string(n) + " type veth peer name eth0 netns " +
           backend_->name());
        sh("ip -n " + r + " addr add 10.213.0.2/31 dev " + link_);
        sh("ip -n " + r + " addr add 10.213.0.4/31 dev " + tenant2_link_);
        sh("ip -n " + r + " addr add 198.51.100.1/24 dev bk" + std::to_string(n));
        for (const std::string& l : {link_, tenant2_link_, "bk" + std::to_string(n)})
            sh("ip -n " + r + " link set " + l + " up");
        auto side = [](const TestNetns& ns, const char* address, const char* gateway) {
            sh("ip -n " + ns.name() + " addr add " + address + " dev eth0");
            sh("ip -n " + ns.name() + " link set eth0 up");
            sh("ip -n " + ns.name() + " route add default via " + gateway);
        };
        side(*pattern_, "10.213.0.3/31", "10.213.0.2");
        side(*tenant2_, "10.213.0.5/31", "10.213.0.4");
        side(*backend_, "198.51.100.2/24", "198.51.100.1");
        // Only in the test's own router netns. rp_filter off so that the
        // anti-spoofing test checks our rule, not the kernel's.
        sh(router_->exec() + "sysctl -w net.ipv4.ip_forward=1");
        sh(router_->exec() + "sysctl -w net.ipv4.conf.all.rp_filter=0");
        sh(router_->exec() + "sysctl -w net.ipv4.conf.default.rp_filter=0");
        sh(router_->exec() + "sysctl -w net.ipv4.conf." + link_ + ".rp_filter=0");

        tcp8080_ = bound_in(backend_->name(), SOCK_STREAM, "198.51.100.2", 8080);
        tcp8081_ = bound_in(backend_->name(), SOCK_STREAM, "198.51.100.2", 8081);
        udp9000_ = bound_in(backend_->name(), SOCK_DGRAM, "198.51.100.2", 9000);
        udp9001_ = bound_in(backend_->name(), SOCK_DGRAM, "198.51.100.2", 9001);
        router7000_ = bound_in(r, SOCK_STREAM, "0.0.0.0", 7000);
        tenant7000_ = bound_in(tenant2_->name(), SOCK_STREAM, "10.213.0.5", 7000);

        firewall_ = in_netns(r, [] { return std::make_unique<EgressFirewall>(); });
    }

    void TearDown() override {
        // The netns go (and their tables with them) in the members' destructors.
        firewall_.reset();
    }

    // What the pattern's list says; the pool, the router's own addresses
    // are listed too, to show no list opens them.
    EgressKey pattern_key(std::vector<EgressAllow> allowed) const {
        return {"pat_1", link_, ip("10.213.0.3"), std::move(allowed)};
    }
    static std::vector<EgressAllow> default_allows() {
        return {{Protocol::kTcp, net("198.51.100.2/32"), 8080, 8080},
                {Protocol::kUdp, net("198.51.100.2/32"), 9000, 9000},
                {Protocol::kTcp, net("10.213.0.0/16"), 0, 65535},
                {Protocol::kTcp, net("10.213.0.2/32"), 7000, 7000},  // overlaps the pool
                {Protocol::kTcp, net("198.51.100.1/32"), 7000, 7000}};
    }
    EgressKey tenant2_key() const {
        return {"tenant_2",
                tenant2_link_,
                ip("10.213.0.5"),
                {{Protocol::kTcp, net("198.51.100.0/24"), 8080, 8081}}};
    }

    // Sends `payload` from the pattern to 198.51.100.2:port and has the
    // backend echo it; returns what came back, or "errno N" / "timeout".
    std::string udp_exchange(std::uint16_t port) {
        UniqueFd client = socket_in(pattern_->name(), SOCK_DGRAM);
        const sockaddr_in to = endpoint("198.51.100.2", port);
        if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
            return "connect errno " + std::to_string(errno);
        if (::send(client.get(), "ping", 4, 0) != 4) return "send errno " + std::to_string(errno);
        const int server = port == 9000 ? udp9000_.get() : udp9001_.get();
        if (readable(server, 1000)) {
            char buffer[16];
            sockaddr_in from{};
            socklen_t len = sizeof from;
            const ssize_t got = ::recvfrom(server, buffer, sizeof buffer, 0,
                                           reinterpret_cast<sockaddr*>(&from), &len);
            udp_source_ = to_string(Ipv4Address{ntohl(from.sin_addr.s_addr)});
            ::sendto(server, buffer, static_cast<std::size_t>(got), 0,
                     reinterpret_cast<sockaddr*>(&from), len);
        }
        pollfd p{client.get(), POLLIN, 0};
        if (::poll(&p, 1, 2000) != 1) return "timeout";
        char reply[16];
        const ssize_t got = ::recv(client.get(), reply, sizeof reply, 0);
        if (got < 0) return "errno " + std::to_string(errno);
        return std::string(reply, static_cast<std::size_t>(got));
    }

    std::string router_tables() { return pltest::sh_output(router_->exec() + "nft list tables"); }

    std::unique_ptr<TestNetns> router_, pattern_, tenant2_, backend_;
    std::string link_, tenant2_link_;
    UniqueFd tcp8080_, tcp8081_, udp9000_, udp9001_, router7000_, tenant7000_;
    std::string udp_source_;
    std::unique_ptr<EgressFirewall> firewall_;
};

TEST_F(EgressTrafficTest, ReachesExactlyItsListAndCountsEveryRefusal) {
    firewall_->rebuild({pattern_key(default_allows()), tenant2_key()});
    EXPECT_EQ(firewall_->denied_count("pat_1"), 0u);

    ASSERT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), 0);
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1") << "masqueraded";
    // A listening port that is not listed: a reset, at once.
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), ECONNREFUSED);
    // Another tenant (the pool), the host through its link and through
    // another of its addresses: refused whatever the list says.
    EXPECT_EQ(tcp_connect(pattern_->name(), "10.213.0.5", 7000), ECONNREFUSED);
    EXPECT_EQ(tcp_connect(pattern_->name(), "10.213.0.2", 7000), ECONNREFUSED);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.1", 7000), ECONNREFUSED);
    EXPECT_FALSE(readable(tenant7000_.get(), 0));
    EXPECT_FALSE(readable(router7000_.get(), 0));
    EXPECT_FALSE(readable(tcp8081_.get(), 0));

    EXPECT_EQ(udp_exchange(9000), "ping");
    EXPECT_EQ(udp_source_, "198.51.100.1") << "masqueraded";
    // ICMP admin-prohibited (code 13) is EHOSTUNREACH to a connected socket.
    EXPECT_EQ(udp_exchange(9001), "errno " + std::to_string(EHOSTUNREACH));
    EXPECT_FALSE(readable(udp9001_.get(), 0)) << "the datagram never reached the backend";

    EXPECT_EQ(firewall_->denied_count("pat_1"), 5u);
    EXPECT_EQ(firewall_->denied_count("tenant_2"), 0u);
    // tenant2's own list works through the same table.
    EXPECT_EQ(tcp_connect(tenant2_->name(), "198.51.100.2", 8081), 0);
    EXPECT_EQ(accept_peer(tcp8081_.get()), "198.51.100.1");
    EXPECT_EQ(firewall_->denied_count("pat_1"), 5u);
}

TEST_F(EgressTrafficTest, UpdateChangesWhatIsReachableAndRemoveRefusesEverything) {
    firewall_->rebuild({});
    firewall_->add_key(pattern_key(default_allows()));
    ASSERT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), 0);
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1");

    // Overlapping entries (a range and a port inside it), applied as one.
    firewall_->update_key(pattern_key({{Protocol::kTcp, net("198.51.100.0/24"), 8081, 8090},
                                       {Protocol::kTcp, net("198.51.100.2/32"), 8081, 8081}}));
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), ECONNREFUSED);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), 0);
    EXPECT_EQ(accept_peer(tcp8081_.get()), "198.51.100.1");
    EXPECT_EQ(udp_exchange(9000), "errno " + std::to_string(EHOSTUNREACH));
    EXPECT_EQ(firewall_->denied_count("pat_1"), 2u);

    firewall_->remove_key("pat_1");
    EXPECT_THROW(firewall_->denied_count("pat_1"), NftError) << "its counter went with it";
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), ECONNREFUSED);
    EXPECT_EQ(tcp_connect(pattern_->name(), "10.213.0.2", 7000), ECONNREFUSED);
    EXPECT_FALSE(readable(tcp8081_.get(), 0));
    EXPECT_NO_THROW(firewall_->remove_key("pat_1")) << "already gone";

    // Added back with the same name: a fresh counter.
    firewall_->add_key(pattern_key(default_allows()));
    EXPECT_EQ(firewall_->denied_count("pat_1"), 0u);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), 0);
    EXPECT_THROW(firewall_->add_key(pattern_key({})), NftError) << "already there";
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), 0)
        << "a failed transaction changed nothing";
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1");
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1");

    firewall_->remove_table();
    EXPECT_EQ(router_tables(), "");
    EXPECT_NO_THROW(firewall_->remove_table()) << "absent is fine";
    EXPECT_EQ(router_tables(), "");
}

TEST_F(EgressTrafficTest, RebuildReplacesTheTable) {
    firewall_->rebuild({pattern_key(default_allows()), tenant2_key()});
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), ECONNREFUSED);
    firewall_->rebuild({pattern_key({{Protocol::kTcp, net("198.51.100.2/32"), 8081, 8081}})});
    EXPECT_EQ(firewall_->denied_count("pat_1"), 0u) << "a new table, new counters";
    EXPECT_THROW(firewall_->denied_count("tenant_2"), NftError);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), 0);
    EXPECT_EQ(accept_peer(tcp8081_.get()), "198.51.100.1");
    // tenant2's link is ours but no longer mapped: refused.
    EXPECT_EQ(tcp_connect(tenant2_->name(), "198.51.100.2", 8081), ECONNREFUSED);
    EXPECT_EQ(router_tables(), "table inet pattern_launcher\n");
}

TEST_F(EgressTrafficTest, NeverReachableRangesStayClosedUnderAnAllowAllList) {
    // Link-local (where cloud metadata services answer) behind the backend,
    // with a listener: only the firewall stands between them.
    sh("ip -n " + backend_->name() + " addr add 169.254.1.1/16 dev eth0");
    sh("ip -n " + router_->name() + " route add 169.254.0.0/16 via 198.51.100.2");
    const UniqueFd metadata = bound_in(backend_->name(), SOCK_STREAM, "169.254.1.1", 8080);
    firewall_->rebuild({pattern_key({{Protocol::kTcp, net("0.0.0.0/0"), 0, 65535},
                                     {Protocol::kUdp, net("0.0.0.0/0"), 0, 65535}})});
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8081), 0);
    EXPECT_EQ(accept_peer(tcp8081_.get()), "198.51.100.1");
    EXPECT_EQ(tcp_connect(pattern_->name(), "169.254.1.1", 8080), ECONNREFUSED);
    EXPECT_FALSE(readable(metadata.get(), 0));
    EXPECT_EQ(tcp_connect(pattern_->name(), "10.213.0.5", 7000), ECONNREFUSED);
    EXPECT_EQ(tcp_connect(pattern_->name(), "10.213.0.2", 7000), ECONNREFUSED);
    EXPECT_EQ(firewall_->denied_count("pat_1"), 3u);
}

// IPv6 from a pattern goes nowhere: neither to the host nor through it.
TEST_F(EgressTrafficTest, Ipv6FromOurLinksIsDropped) {
    sh("ip -n " + router_->name() + " addr add fd00:213::2/64 dev " + link_ + " nodad");
    sh("ip -n " + pattern_->name() + " addr add fd00:213::3/64 dev eth0 nodad");
    UniqueFd listener = in_netns(router_->name(), [] {
        return UniqueFd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    });
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(7001);
    ::inet_pton(AF_INET6, "fd00:213::2", &sa.sin6_addr);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    auto connect6 = [&] {
        UniqueFd fd = in_netns(pattern_->name(), [] {
            return UniqueFd(::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        });
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return 0;
        if (errno != EINPROGRESS) return errno;
        pollfd p{fd.get(), POLLOUT, 0};
        if (::poll(&p, 1, 1000) != 1) return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        return err;
    };
    // Without the table the host answers (so the next refusal is the firewall's).
    ASSERT_EQ(connect6(), 0);
    ASSERT_TRUE(readable(listener.get(), 1000));
    ::close(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));

    firewall_->rebuild({pattern_key(default_allows())});
    EXPECT_EQ(connect6(), ETIMEDOUT);
    EXPECT_FALSE(readable(listener.get(), 0));
}

TEST_F(EgressTrafficTest, UpdateNeedsAKnownKeyOnItsOwnLink) {
    firewall_->rebuild({pattern_key(default_allows()), tenant2_key()});
    EgressKey moved = pattern_key({});
    moved.host_link = tenant2_link_;
    EXPECT_THROW(firewall_->update_key(moved), ConfigError);
    EgressKey unknown = pattern_key({});
    unknown.id = "unknown";
    EXPECT_THROW(firewall_->update_key(unknown), ConfigError);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080), 0) << "nothing changed";
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1");
}

TEST_F(EgressTrafficTest, CannotSpoofAnotherSource) {
    firewall_->rebuild({pattern_key(default_allows()), tenant2_key()});
    // A second address in the pattern, and a route back to it on the
    // router: without the anti-spoofing rule the handshake would complete.
    sh("ip -n " + pattern_->name() + " addr add 10.213.0.7/32 dev eth0");
    sh("ip -n " + router_->name() + " route add 10.213.0.7/32 dev " + link_);
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080, "10.213.0.7", 1000), ETIMEDOUT);
    EXPECT_FALSE(readable(tcp8080_.get(), 0)) << "nothing reached the backend";
    // Dropped, not refused (a reset would go to the forged address), so not counted.
    EXPECT_EQ(firewall_->denied_count("pat_1"), 0u);
    // Its own address still works.
    EXPECT_EQ(tcp_connect(pattern_->name(), "198.51.100.2", 8080, "10.213.0.3"), 0);
    EXPECT_EQ(accept_peer(tcp8080_.get()), "198.51.100.1");
}

TEST(NftContextTest, StaysInTheNamespaceItWasCreatedIn) {
    if (const std::string why = pltest::netns_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    TestNetns a(pltest::netns_name("ctxa"));
    TestNetns b(pltest::netns_name("ctxb"));
    auto nft = in_netns(a.name(), [] { return std::make_unique<NftContext>(); });
    // Used from a thread in b: the table still lands in a.
    in_netns(b.name(), [&] { return nft->run("add table inet pltest_where"); });
    EXPECT_EQ(pltest::sh_output(a.exec() + "nft list tables"), "table inet pltest_where\n");
    EXPECT_EQ(pltest::sh_output(b.exec() + "nft list tables"), "");
    // Listings come back as output, one run's only.
    EXPECT_EQ(nft->run("list tables"), "table inet pltest_where\n");
    EXPECT_EQ(nft->run("list tables"), "table inet pltest_where\n");
    EXPECT_THROW(nft->run("delete table inet pltest_absent"), NftError);
    nft->run("delete table inet pltest_where");
    EXPECT_EQ(pltest::sh_output(a.exec() + "nft list tables"), "");
}

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

TEST(NftContextTest, LeavesNoDescriptorBehind) {
    if (const std::string why = pltest::netns_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    TestNetns a(pltest::netns_name("ctxfd"));
    const std::size_t before = open_fds();
    for (int i = 0; i < 3; ++i) {
        auto nft = in_netns(a.name(), [] { return std::make_unique<NftContext>(); });
        nft->run("add table inet pltest_fd");
        // A refusal also dry-runs the script from a memfd, to be closed too.
        EXPECT_THROW(nft->run("delete table inet pltest_absent"), NftError);
        nft->run("delete table inet pltest_fd");
    }
    EXPECT_EQ(open_fds(), before);
}

}  // namespace
}  // namespace sandbox
