// spawn() with SpawnSpec::netns_fd: the child joins a prepared network
// namespace (with its veth pair) before anything else depends on it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/error.h"
#include "sandbox/netns.h"
#include "sandbox/spawn.h"
#include "sandbox/veth.h"
#include "test_host.h"
#include "test_support.h"

namespace {

using pltest::TestTree;
using sandbox::UniqueFd;

// A pattern namespace with eth0 (peer of plk5 in `host`).
UniqueFd prepared_namespace(const pltest::TestHost& host) {
    UniqueFd pattern = sandbox::create_network_namespace();
    host.run([&] {
        sandbox::VethSpec spec;
        spec.host_name = "plk5";
        spec.netns_fd = pattern.get();
        spec.host_address = *sandbox::parse_ipv4_address("10.78.0.0");
        spec.peer_address = *sandbox::parse_ipv4_address("10.78.0.1");
        sandbox::create_veth(spec);
    });
    return pattern;
}

TEST(SpawnNetns, ChildIsInThePreparedNamespace) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("netns-join");
    pltest::TestHost host;
    UniqueFd pattern = prepared_namespace(host);
    auto spec = pltest::misbehave({"sleep"});
    spec.cgroup_fd = group.dir_fd();
    spec.netns_fd = pattern.get();
    sandbox::SpawnResult child = sandbox::spawn(spec);
    struct stat st {};
    const std::string path = "/proc/" + std::to_string(child.process.pid()) + "/ns/net";
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(static_cast<unsigned long>(st.st_ino),
              sandbox::network_namespace_inode(pattern.get()));
    child.process.send_signal(SIGKILL);
    child.process.reap();
}

TEST(SpawnNetns, ChildSeesThePreparedInterfacesAndNoLeakedFd) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("netns-devs");
    pltest::TestHost host;
    UniqueFd pattern = prepared_namespace(host);
    auto spec = pltest::misbehave({"report"});
    spec.cgroup_fd = group.dir_fd();
    spec.netns_fd = pattern.get();
    pltest::Captured run = pltest::run_captured(spec);
    ASSERT_TRUE(run.status.success()) << run.status.describe();
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["netdevs"], "lo,eth0");
    EXPECT_EQ(report["fds"], "0,1,2") << "the namespace fd must not reach the pattern";
}

TEST(SpawnNetns, JoinsBeforeTheUserNamespace) {
    // In the pattern's user namespace the child would have no rights over a
    // network namespace owned by the initial one (EPERM): the order matters.
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("netns-userns");
    pltest::TestHost host;
    UniqueFd pattern = prepared_namespace(host);
    auto spec = pltest::misbehave({"report"});
    spec.cgroup_fd = group.dir_fd();
    spec.netns_fd = pattern.get();
    spec.namespaces.user = true;
    spec.namespaces.mount = true;
    pltest::Captured run = pltest::run_captured(spec);
    ASSERT_TRUE(run.status.success()) << run.status.describe();
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["netdevs"], "lo,eth0");
    EXPECT_EQ(report["uid"], "0");
}

TEST(SpawnNetns, PreparedAndNewNamespaceAreAConfigError) {
    UniqueFd pattern = sandbox::create_network_namespace();
    auto spec = pltest::misbehave({"exit", "0"});
    spec.netns_fd = pattern.get();
    spec.namespaces.net = true;
    EXPECT_THROW(sandbox::spawn(spec), sandbox::ConfigError);
}

TEST(SpawnNetns, FdThatIsNoNamespaceFailsAtJoinNetwork) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("netns-bad-fd");
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    auto spec = pltest::misbehave({"exit", "0"});
    spec.cgroup_fd = group.dir_fd();
    spec.netns_fd = pipe_fds[0];
    try {
        sandbox::spawn(spec);
        ADD_FAILURE() << "spawn joined a pipe";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kJoinNetwork) << e.what();
        EXPECT_EQ(e.error_code(), EINVAL) << e.what();
        EXPECT_NE(std::string(e.what()).find("join the network namespace"), std::string::npos)
            << e.what();
    }
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

}  // namespace
