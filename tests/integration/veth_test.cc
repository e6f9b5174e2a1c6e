// Veth pairs, network namespaces and rtnetlink (sandbox/veth.h, netns.h,
// netlink.h, forwarding.h), against the real kernel. The "host" end of
// every pair lives in a pltest::TestHost namespace, never the real host's.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "sandbox/error.h"
#include "sandbox/forwarding.h"
#include "sandbox/netlink.h"
#include "sandbox/netns.h"
#include "sandbox/veth.h"
#include "test_host.h"
#include "test_support.h"

namespace {

using pltest::ip_in;
using sandbox::Ipv4Address;
using sandbox::UniqueFd;

Ipv4Address address(const char* text) {
    return *sandbox::parse_ipv4_address(text);
}

sandbox::VethSpec spec_for(int netns_fd, std::uint32_t index = 7) {
    sandbox::VethSpec spec;
    spec.host_name = sandbox::veth_host_name("plk", index);
    spec.netns_fd = netns_fd;
    spec.host_address = address("10.77.0.0");
    spec.peer_address = address("10.77.0.1");
    spec.prefix = 31;
    return spec;
}

// The fd of the calling thread's network namespace.
UniqueFd current_netns() {
    return UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
}

void set_receive_timeout(int fd) {
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

TEST(Netns, CreateNetworkNamespaceLeavesTheCallerWhereItWas) {
    struct stat before {};
    ASSERT_EQ(::stat("/proc/thread-self/ns/net", &before), 0);
    UniqueFd netns = sandbox::create_network_namespace();
    ASSERT_TRUE(netns);
    struct stat after {};
    ASSERT_EQ(::stat("/proc/thread-self/ns/net", &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "the calling thread must not move";
    EXPECT_NE(sandbox::network_namespace_inode(netns.get()),
              static_cast<unsigned long>(before.st_ino));
    // Only lo, and it is up (so 127.0.0.1 is there).
    pltest::CommandResult links = ip_in(netns.get(), "-o link show");
    ASSERT_EQ(links.status, 0) << links.output;
    EXPECT_EQ(pltest::count_lines(links.output), 1) << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "lo: <LOOPBACK,UP,LOWER_UP>"), 1)
        << links.output;
    EXPECT_EQ(pltest::count_lines_with(ip_in(netns.get(), "-o -4 addr show dev lo").output,
                                       "inet 127.0.0.1/8"),
              1);
}

TEST(Netns, RunInNetworkNamespaceJoinsAndPropagatesErrors) {
    UniqueFd netns = sandbox::create_network_namespace();
    unsigned long seen = 0;
    sandbox::run_in_network_namespace(netns.get(), [&] {
        UniqueFd self = current_netns();
        seen = sandbox::network_namespace_inode(self.get());
    });
    EXPECT_EQ(seen, sandbox::network_namespace_inode(netns.get()));
    EXPECT_THROW(sandbox::run_on_own_thread([] { throw std::runtime_error("boom"); }),
                 std::runtime_error);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    try {
        sandbox::run_in_network_namespace(pipe_fds[0], [] {});
        ADD_FAILURE() << "a pipe is no namespace";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), EINVAL) << e.what();
    }
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

TEST(Netlink, SocketInANamespaceSeesThatNamespace) {
    UniqueFd netns = sandbox::create_network_namespace();
    sandbox::NetlinkSocket inside = sandbox::NetlinkSocket::open_in_netns(netns.get());
    EXPECT_EQ(sandbox::link_index(inside, "lo"), 1);
    try {
        sandbox::link_index(inside, "nosuchlink0");
        ADD_FAILURE() << "nosuchlink0 exists";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENODEV) << e.what();
        EXPECT_NE(std::string(e.what()).find("RTM_GETLINK nosuchlink0"), std::string::npos)
            << e.what();
    }
    try {
        sandbox::set_link_up(inside, "nosuchlink0");
        ADD_FAILURE() << "nosuchlink0 was set up";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENODEV) << e.what();
        EXPECT_TRUE(std::string(e.what()).starts_with("RTM_NEWLINK nosuchlink0")) << e.what();
    }
}

TEST(Veth, HostNameIsCheckedAgainstIfnamsiz) {
    EXPECT_EQ(sandbox::veth_host_name("plk", 3), "plk3");
    EXPECT_EQ(sandbox::veth_host_name("plk", 4294967295u), "plk4294967295");
    EXPECT_EQ(sandbox::veth_host_name("patternlnk", 99999), "patternlnk99999");  // 15
    EXPECT_THROW(sandbox::veth_host_name("patternlnk", 100000), sandbox::ConfigError);
    EXPECT_THROW(sandbox::veth_host_name("", 1), sandbox::ConfigError);
    EXPECT_THROW(sandbox::veth_host_name("a/b", 1), sandbox::ConfigError);
}

TEST(Veth, SpecsThatCannotBeRightAreConfigErrors) {
    sandbox::VethSpec spec = spec_for(0);
    spec.prefix = 29;
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
    spec = spec_for(0);
    spec.peer_address = address("10.77.0.2");  // not in 10.77.0.0/31
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
    spec = spec_for(0);
    spec.peer_address = spec.host_address;
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
    spec = spec_for(0);
    spec.prefix = 30;  // 10.77.0.0 is the network address of the /30
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
    spec = spec_for(-1);
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
    spec = spec_for(0);
    spec.host_name = "far-too-long-link-name";
    EXPECT_THROW(sandbox::create_veth(spec), sandbox::ConfigError);
}

TEST(Veth, PairIsAddressedUpRoutedAndIpv4Only) {
    pltest::TestHost host;
    UniqueFd pattern = sandbox::create_network_namespace();
    host.run([&] { sandbox::create_veth(spec_for(pattern.get())); });

    // The host end: its address, up, no IPv6 address, address generation off.
    pltest::CommandResult link = ip_in(host.fd(), "-o -d link show dev plk7");
    ASSERT_EQ(link.status, 0) << link.output;
    EXPECT_NE(link.output.find("UP,LOWER_UP"), std::string::npos) << link.output;
    EXPECT_NE(link.output.find("veth"), std::string::npos) << link.output;
    EXPECT_NE(link.output.find("addrgenmode none"), std::string::npos) << link.output;
    pltest::CommandResult addresses = ip_in(host.fd(), "-o addr show dev plk7");
    EXPECT_EQ(pltest::count_lines_with(addresses.output, "inet 10.77.0.0/31"), 1)
        << addresses.output;
    EXPECT_EQ(pltest::count_lines_with(addresses.output, "inet6"), 0) << addresses.output;
    EXPECT_EQ(pltest::count_lines(addresses.output), 1) << addresses.output;

    // The peer: eth0 inside the pattern's namespace, next to lo and nothing else.
    pltest::CommandResult links = ip_in(pattern.get(), "-o -d link show");
    EXPECT_EQ(pltest::count_lines(links.output), 2) << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "lo: <LOOPBACK,UP,LOWER_UP>"), 1)
        << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "eth0@"), 1) << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "UP,LOWER_UP"), 2) << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "addrgenmode none"), 1) << links.output;
    pltest::CommandResult peer = ip_in(pattern.get(), "-o addr show dev eth0");
    EXPECT_EQ(pltest::count_lines_with(peer.output, "inet 10.77.0.1/31"), 1) << peer.output;
    EXPECT_EQ(pltest::count_lines_with(peer.output, "inet6"), 0) << peer.output;
    EXPECT_EQ(pltest::count_lines(peer.output), 1) << peer.output;
    pltest::CommandResult routes = ip_in(pattern.get(), "-4 route show");
    EXPECT_EQ(pltest::count_lines_with(routes.output, "default via 10.77.0.0 dev eth0"), 1)
        << routes.output;
    EXPECT_EQ(pltest::count_lines(ip_in(pattern.get(), "-6 route show dev eth0").output), 0);
    // Nothing of this reached the namespace the test runs in.
    EXPECT_TRUE(sandbox::list_links("plk").empty());
}

TEST(Veth, TcpFromThePatternNamespaceReachesTheHostEnd) {
    pltest::TestHost host;
    UniqueFd pattern = sandbox::create_network_namespace();
    UniqueFd listener;
    sockaddr_in bound{};
    host.run([&] {
        sandbox::create_veth(spec_for(pattern.get()));
        listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(listener);
        bound.sin_family = AF_INET;
        bound.sin_addr.s_addr = htonl(address("10.77.0.0").value);
        ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&bound), sizeof bound), 0)
            << std::strerror(errno);
        socklen_t length = sizeof bound;
        ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &length), 0);
        ASSERT_EQ(::listen(listener.get(), 1), 0);
    });
    ASSERT_TRUE(listener);

    UniqueFd client;
    int connect_errno = 0;
    sandbox::run_in_network_namespace(pattern.get(), [&] {
        client = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        set_receive_timeout(client.get());
        if (::connect(client.get(), reinterpret_cast<sockaddr*>(&bound), sizeof bound) != 0)
            connect_errno = errno;
    });
    ASSERT_EQ(connect_errno, 0) << std::strerror(connect_errno);
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    UniqueFd accepted(
        ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted) << std::strerror(errno);
    EXPECT_EQ(ntohl(peer.sin_addr.s_addr), address("10.77.0.1").value)
        << "the connection comes from the pattern's address";
    set_receive_timeout(accepted.get());
    ASSERT_EQ(::write(client.get(), "ping", 4), 4);
    char buffer[8] = {};
    ASSERT_EQ(::read(accepted.get(), buffer, sizeof buffer), 4);
    EXPECT_EQ(std::string(buffer, 4), "ping");
    ASSERT_EQ(::write(accepted.get(), "pong", 4), 4);
    ASSERT_EQ(::read(client.get(), buffer, sizeof buffer), 4);
    EXPECT_EQ(std::string(buffer, 4), "pong");
}

TEST(Veth, ListAndRemoveBothEnds) {
    pltest::TestHost host;
    UniqueFd pattern = sandbox::create_network_namespace();
    const int fds = pltest::count_open_fds();
    host.run([&] {
        sandbox::create_veth(spec_for(pattern.get(), 7));
        EXPECT_EQ(sandbox::list_links("plk"), std::vector<std::string>{"plk7"});
        EXPECT_EQ(sandbox::list_links("lo"), std::vector<std::string>{"lo"});
        EXPECT_TRUE(sandbox::list_links("nothing").empty());
        sandbox::remove_link("plk7");
        EXPECT_TRUE(sandbox::list_links("plk").empty());
        EXPECT_NO_THROW(sandbox::remove_link("plk7")) << "already gone is no error";
    });
    EXPECT_EQ(pltest::count_open_fds(), fds) << "netlink sockets must be closed";
    pltest::CommandResult links = ip_in(pattern.get(), "-o link show");
    EXPECT_EQ(pltest::count_lines(links.output), 1) << "the peer went with the host end:\n"
                                                    << links.output;
    EXPECT_EQ(pltest::count_lines_with(links.output, "lo:"), 1) << links.output;
}

TEST(Veth, DuplicateNameFailsNamingTheLinkAndKeepsTheExistingPair) {
    pltest::TestHost host;
    UniqueFd first = sandbox::create_network_namespace();
    UniqueFd second = sandbox::create_network_namespace();
    host.run([&] {
        sandbox::create_veth(spec_for(first.get()));
        try {
            sandbox::create_veth(spec_for(second.get()));
            ADD_FAILURE() << "a second plk7 was made";
        } catch (const sandbox::SysError& e) {
            EXPECT_EQ(e.code(), EEXIST) << e.what();
            EXPECT_NE(std::string(e.what()).find("RTM_NEWLINK plk7"), std::string::npos)
                << e.what();
        }
        EXPECT_EQ(sandbox::list_links("plk"), std::vector<std::string>{"plk7"});
    });
    // The failed attempt neither removed the first pair nor left a peer behind.
    EXPECT_EQ(pltest::count_lines_with(ip_in(first.get(), "-o addr show dev eth0").output,
                                       "inet 10.77.0.1/31"),
              1);
    EXPECT_EQ(pltest::count_lines(ip_in(second.get(), "-o link show").output), 1);
}

TEST(Veth, FailureAfterCreationRemovesThePair) {
    pltest::TestHost host;
    UniqueFd pattern = sandbox::create_network_namespace();
    // A default route that is there already makes the last step (the
    // pattern's default route, NLM_F_EXCL) fail after the pair exists.
    pltest::CommandResult route = ip_in(pattern.get(), "route add default dev lo");
    ASSERT_EQ(route.status, 0) << route.output;
    const int fds = pltest::count_open_fds();
    host.run([&] {
        try {
            sandbox::create_veth(spec_for(pattern.get()));
            ADD_FAILURE() << "the second default route was accepted";
        } catch (const sandbox::SysError& e) {
            EXPECT_EQ(e.code(), EEXIST) << e.what();
            EXPECT_NE(std::string(e.what()).find("RTM_NEWROUTE default via 10.77.0.0"),
                      std::string::npos)
                << e.what();
            EXPECT_NE(std::string(e.what()).find("plk7"), std::string::npos) << e.what();
        }
        EXPECT_TRUE(sandbox::list_links("plk").empty());
    });
    EXPECT_EQ(pltest::count_open_fds(), fds) << "netlink sockets must be closed";
    EXPECT_EQ(pltest::count_lines(ip_in(pattern.get(), "-o link show").output), 1);
}

TEST(Veth, BadNamespaceFdCreatesNothing) {
    pltest::TestHost host;
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    host.run([&] {
        EXPECT_THROW(sandbox::create_veth(spec_for(pipe_fds[0])), sandbox::SysError);
        EXPECT_TRUE(sandbox::list_links("plk").empty());
    });
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

void write_forwarding(const char* value) {
    std::ofstream("/proc/sys/net/ipv4/ip_forward") << value;
}

TEST(Forwarding, ReadsTheCallersNamespace) {
    // Written only inside the test's own namespace, which is the point: the
    // launcher itself never writes it.
    pltest::TestHost host;
    host.run([] {
        write_forwarding("1");
        EXPECT_TRUE(sandbox::ipv4_forwarding_enabled());
        write_forwarding("0");
        EXPECT_FALSE(sandbox::ipv4_forwarding_enabled());
    });
}

}  // namespace
