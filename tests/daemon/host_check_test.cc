// `pattern-launcher check`'s egress section: a manifest with an egress list
// needs nftables and IPv4 forwarding, and check says so when forwarding is
// off. Run inside a network namespace of the test's own (pltest-<pid>-check)
// whose net.ipv4.ip_forward the test sets; the host's is only read, to show
// it was left alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "netns_support.h"
#include "test_daemon.h"

namespace {

std::string host_ip_forward() {
    std::ifstream in("/proc/sys/net/ipv4/ip_forward");
    std::string value;
    in >> value;
    return value;
}

// run_command() does not search PATH (posix_spawn).
constexpr const char* kNsenter = "/usr/bin/nsenter";

class HostCheckEgress : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string why = pltest::netns_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        host_forwarding_ = host_ip_forward();
        netns_ = std::make_unique<pltest::TestNetns>(pltest::netns_name("check"));
    }
    void TearDown() override {
        netns_.reset();
        if (!host_forwarding_.empty()) {
            EXPECT_EQ(host_ip_forward(), host_forwarding_) << "the host's sysctl changed";
        }
    }
    void set_forwarding(bool on) {
        pltest::sh(netns_->exec() + "sysctl -w net.ipv4.ip_forward=" + (on ? "1" : "0"));
    }
    // `check` in the test's netns. Through nsenter --net, not `ip netns
    // exec`: that one also remounts /sys in a new mount namespace, which
    // hides the cgroup2 mount below /sys/fs/cgroup that check needs.
    pltest::CommandResult check(const std::string& patterns_dir) {
        return pltest::run_command({kNsenter, "--net=/run/netns/" + netns_->name(), PL_LAUNCHER,
                                    "check", "--patterns-dir", patterns_dir});
    }

    std::string host_forwarding_;
    std::unique_ptr<pltest::TestNetns> netns_;
};

const std::string kEgress = "sandbox:\n  egress: [\"192.0.2.7:443\", \"192.0.2.0/24:53/udp\"]\n";

TEST_F(HostCheckEgress, ForwardingOffIsAProblemForAManifestWithAnEgressList) {
    pltest::TestDaemon d;  // only for its directory
    d.add_pattern("plain", pltest::misbehave_manifest("sleep"));
    d.add_pattern("outward", pltest::misbehave_manifest("sleep", "", kEgress));
    set_forwarding(false);
    const pltest::CommandResult r = check(d.patterns_dir());
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.out.find("egress:               lists in outward;"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pool 10.213.0.0/16 (32767 keys at once)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("egress nftables:      ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("egress forwarding:    FAILED: off (net.ipv4.ip_forward = 0)"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("fix: sysctl -w net.ipv4.ip_forward=1, or a file in /etc/sysctl.d/"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("result:               problems found"), std::string::npos) << r.out;
}

TEST_F(HostCheckEgress, ForwardingOffIsOnlyANoteWithoutEgressLists) {
    pltest::TestDaemon d;
    d.add_pattern("plain", pltest::misbehave_manifest("sleep"));
    set_forwarding(false);
    const pltest::CommandResult r = check(d.patterns_dir());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("egress:               no manifest has a list"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("egress forwarding:    note: off"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << r.out;
}

TEST_F(HostCheckEgress, ForwardingOnIsNoProblem) {
    pltest::TestDaemon d;
    d.add_pattern("outward", pltest::misbehave_manifest("sleep", "", kEgress));
    set_forwarding(true);
    const pltest::CommandResult r = check(d.patterns_dir());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("egress forwarding:    on (net.ipv4.ip_forward = 1)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("egress nftables:      ok"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("result:               ok"), std::string::npos) << r.out;
}

TEST_F(HostCheckEgress, ReportsTheConfiguredPoolIntervalAndTenants) {
    pltest::TestDaemon d;
    d.add_pattern("outward", pltest::misbehave_manifest("sleep", "", kEgress));
    const std::string config = d.patterns_dir() + "/../check-config.yaml";
    std::ofstream(config) << "launcher:\n  patterns_dir: " << d.patterns_dir()
                          << "\n  egress:\n    pool: 10.99.0.0/24\n    resolve_interval: 5s\n"
                             "    tenants:\n      tenant-a: [\"10.1.0.0/24:9000-9010/udp\"]\n";
    set_forwarding(true);
    const pltest::CommandResult r = pltest::run_command(
        {kNsenter, "--net=/run/netns/" + netns_->name(), PL_LAUNCHER, "check", "--config", config});
    std::filesystem::remove(config);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("pool 10.99.0.0/24 (127 keys at once), names resolved every 5s"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("tenant tenant-a      adds 10.1.0.0/24:9000-9010/udp"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("egress nftables:      ok"), std::string::npos) << r.out;
}

}  // namespace
