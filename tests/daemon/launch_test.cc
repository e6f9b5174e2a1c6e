// LaunchPattern through the real API: get-or-create, keys, readiness gating.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "sandbox/cgroup_mount.h"
#include "test_daemon.h"

namespace {

using namespace pltest;

class LaunchTest : public ::testing::Test {
protected:
    void SetUp() override {
        d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
        d.add_pattern("echo-notify", echo_manifest("notify"), PL_ECHO);
        // The config keys PatternIsBornInItsCgroupWithTheReservedEnvironment sends.
        d.add_pattern("sleeper",
                      misbehave_manifest("sleep", "", "config_keys: [LOG_LEVEL, EXTRA]\n"));
        d.start();
    }
    TestDaemon d;
};

TEST_F(LaunchTest, ColdLaunchServesAndReuseReturnsTheSameProcess) {
    pb::LaunchResponse first, second;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &first).ok()) << d.log();
    EXPECT_EQ(first.process_id(), "ns:tenant-a:echo");
    EXPECT_EQ(first.state(), pb::STATE_RUNNING);
    EXPECT_TRUE(first.healthy());
    EXPECT_GT(first.pid(), 0);
    EXPECT_FALSE(first.reused());
    EXPECT_EQ(roundtrip(first.address(), "hello pattern"), "hello pattern");

    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &second).ok());
    EXPECT_EQ(second.process_id(), first.process_id());
    EXPECT_EQ(second.pid(), first.pid());
    EXPECT_EQ(second.address(), first.address());
    EXPECT_TRUE(second.reused());
    EXPECT_EQ(d.list().total_count(), 1);
}

TEST_F(LaunchTest, SixtyFourConcurrentLaunchesOfOneKeyMakeOneProcess) {
    std::vector<pb::LaunchResponse> responses(64);
    std::vector<grpc::Status> statuses(64);
    std::vector<std::thread> threads;
    for (int i = 0; i < 64; ++i) {
        threads.emplace_back([&, i] {
            statuses[i] =
                d.launch("echo-notify", pb::ISOLATION_NAMESPACE, "busy", "", &responses[i]);
        });
    }
    for (auto& t : threads)
        t.join();
    std::set<int> pids;
    std::set<std::string> addresses;
    int fresh = 0;
    for (int i = 0; i < 64; ++i) {
        ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
        pids.insert(responses[i].pid());
        addresses.insert(responses[i].address());
        fresh += responses[i].reused() ? 0 : 1;
    }
    EXPECT_EQ(pids.size(), 1u);
    EXPECT_EQ(addresses.size(), 1u);
    EXPECT_EQ(fresh, 1) << "exactly one caller started it";
    EXPECT_EQ(d.list().total_count(), 1);
}

// Cold starts overlap (the loop does not wait for a spawn's exec), and a
// pattern that says READY=1 before the loop has read its spawn pipe's EOF
// must still count as ready: the sleeper sends it first thing, so with
// eight clients some of the 96 do.
TEST_F(LaunchTest, ManyConcurrentColdLaunchesAllBecomeRunning) {
    constexpr int kKeys = 96, kClients = 8;
    std::vector<pb::LaunchResponse> responses(kKeys);
    std::vector<grpc::Status> statuses(kKeys);
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
        threads.emplace_back([&, c] {
            for (int i = c; i < kKeys; i += kClients) {
                statuses[i] = d.launch("sleeper", pb::ISOLATION_NAMESPACE,
                                       "many-" + std::to_string(i), "", &responses[i]);
            }
        });
    }
    for (auto& t : threads)
        t.join();
    std::set<int> pids;
    for (int i = 0; i < kKeys; ++i) {
        ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message() << d.log();
        EXPECT_EQ(responses[i].state(), pb::STATE_RUNNING) << i;
        pids.insert(responses[i].pid());
    }
    EXPECT_EQ(pids.size(), static_cast<std::size_t>(kKeys));
    EXPECT_EQ(d.list().total_count(), kKeys);
}

TEST_F(LaunchTest, IsolationKeysFollowTheRfc) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NONE, "", "", &r).ok());
    EXPECT_EQ(r.process_id(), "shared:echo");
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "tenant-a", "s1", &r).ok());
    EXPECT_EQ(r.process_id(), "session:s1:echo");
    // UNSPECIFIED falls back to the manifest's isolation_level (namespace).
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_LEVEL_UNSPECIFIED, "tenant-b", "", &r).ok());
    EXPECT_EQ(r.process_id(), "ns:tenant-b:echo");
}

TEST_F(LaunchTest, TwoPatternsInOneNamespaceAreTwoProcesses) {
    pb::LaunchResponse echo, sleeper;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "shared-ns", "", &echo).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "shared-ns", "", &sleeper).ok());
    EXPECT_EQ(echo.process_id(), "ns:shared-ns:echo");
    EXPECT_EQ(sleeper.process_id(), "ns:shared-ns:sleeper");
    EXPECT_NE(echo.pid(), sleeper.pid());
    // Each key has its own cgroup below its namespace's.
    auto groups = d.tenant_cgroups();
    EXPECT_NE(std::find(groups.begin(), groups.end(), "ns:shared-ns/ns:shared-ns:echo/run.0"),
              groups.end());
    EXPECT_NE(std::find(groups.begin(), groups.end(), "ns:shared-ns/ns:shared-ns:sleeper/run.0"),
              groups.end());
}

TEST_F(LaunchTest, ASessionBelongsToTheNamespaceThatFirstLaunchedIt) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_SESSION, "tenant-a", "sess-1", &r).ok());
    grpc::Status other = d.launch("sleeper", pb::ISOLATION_SESSION, "tenant-b", "sess-1", &r);
    EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(other.error_message().find("sess-1"), std::string::npos) << other.error_message();
    // The owner may start other patterns in its session.
    EXPECT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "tenant-a", "sess-1", &r).ok());
}

TEST_F(LaunchTest, PatternIsBornInItsCgroupWithTheReservedEnvironment) {
    pb::LaunchResponse r;
    const grpc::Status s = d.launch("sleeper", pb::ISOLATION_SESSION, "tenant-a", "s-9", &r,
                                    {{"LOG_LEVEL", "debug"}, {"EXTRA", "1"}});
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d.log();
    std::ifstream cg("/proc/" + std::to_string(r.pid()) + "/cgroup");
    std::string line, self;
    while (std::getline(cg, line)) {
        if (line.starts_with("0::")) self = line.substr(3);
    }
    std::string mount = sandbox::find_cgroup2_mount().path;
    EXPECT_EQ(mount + self, d.cgroup_root() + "/ns:tenant-a/session:s-9:sleeper/run.0")
        << "each process runs in a leaf of its key's group";
    EXPECT_EQ(read_environ(r.pid(), "PATTERN_NAME"), "sleeper");
    EXPECT_EQ(read_environ(r.pid(), "NAMESPACE"), "tenant-a");
    EXPECT_EQ(read_environ(r.pid(), "SESSION_ID"), "s-9");
    EXPECT_EQ(read_environ(r.pid(), "PROCESS_ID"), "session:s-9:sleeper");
    EXPECT_EQ(read_environ(r.pid(), "GRPC_PORT"), r.address().substr(r.address().rfind(':') + 1));
    EXPECT_EQ(read_environ(r.pid(), "LOG_LEVEL"), "debug");
    EXPECT_EQ(read_environ(r.pid(), "EXTRA"), "1");
    EXPECT_EQ(read_environ(r.pid(), "LISTEN_FDNAMES"), "grpc");
}

TEST_F(LaunchTest, ReservedEnvironmentCannotBeOverridden) {
    pb::LaunchResponse r;
    for (const char* reserved : {"GRPC_PORT", "PROCESS_ID", "LISTEN_FDS", "NOTIFY_SOCKET"}) {
        grpc::Status s =
            d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &r, {{reserved, "1"}});
        EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << reserved;
        EXPECT_NE(s.error_message().find(reserved), std::string::npos) << s.error_message();
    }
    EXPECT_EQ(d.list().total_count(), 0);
}

TEST_F(LaunchTest, IsolatedPatternIsReachableThroughItsHandedOverSocket) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "netns", "", &r).ok());
    char self_ns[64] = {}, their_ns[64] = {};
    ::readlink("/proc/self/ns/net", self_ns, sizeof self_ns - 1);
    ::readlink(("/proc/" + std::to_string(r.pid()) + "/ns/net").c_str(), their_ns,
               sizeof their_ns - 1);
    EXPECT_STRNE(self_ns, their_ns) << "network: isolated gives the pattern its own namespace";
    EXPECT_EQ(roundtrip(r.address(), "through the wall"), "through the wall");
}

TEST_F(LaunchTest, StatusListAndHealthTellTheTruth) {
    pb::LaunchResponse a, b;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "t1", "", &a).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NONE, "", "", &b).ok());

    grpc::ClientContext ctx;
    pb::GetProcessStatusRequest req;
    req.set_process_id(a.process_id());
    pb::GetProcessStatusResponse status;
    ASSERT_TRUE(d.api().GetProcessStatus(&ctx, req, &status).ok());
    EXPECT_FALSE(status.not_found());
    EXPECT_EQ(status.process().pid(), a.pid());
    EXPECT_EQ(status.process().state(), pb::STATE_RUNNING);
    EXPECT_TRUE(status.process().healthy());
    EXPECT_EQ(status.process().namespace_(), "t1");
    EXPECT_EQ(status.process().isolation(), pb::ISOLATION_NAMESPACE);
    EXPECT_EQ(status.process().cgroup(), d.cgroup_root() + "/ns:t1/ns:t1:echo");

    grpc::ClientContext ctx2;
    pb::ListPatternsRequest filter;
    filter.set_namespace_("t1");
    pb::ListPatternsResponse listed;
    ASSERT_TRUE(d.api().ListPatterns(&ctx2, filter, &listed).ok());
    ASSERT_EQ(listed.total_count(), 1);
    EXPECT_EQ(listed.patterns(0).process_id(), "ns:t1:echo");

    grpc::ClientContext ctx3;
    pb::HealthRequest hreq;
    hreq.set_include_processes(true);
    pb::HealthResponse health;
    ASSERT_TRUE(d.api().Health(&ctx3, hreq, &health).ok());
    EXPECT_TRUE(health.healthy());
    EXPECT_EQ(health.total_processes(), 2);
    EXPECT_EQ(health.running_processes(), 2);
    EXPECT_EQ(health.isolation_distribution().at("namespace"), 1);
    EXPECT_EQ(health.isolation_distribution().at("none"), 1);
    EXPECT_EQ(health.isolation_distribution().at("session"), 0);
    EXPECT_EQ(health.processes_size(), 2);
    EXPECT_EQ(health.patterns_loaded(), 3);
}

// ---- failures leave nothing behind -----------------------------------------

class FailedStartTest : public ::testing::Test {
protected:
    void SetUp() override {
        d.add_pattern("never", misbehave_manifest("never-healthy", "", ""));
        d.add_pattern("quitter", misbehave_manifest("exit", "3"));
        std::filesystem::create_directories(d.patterns_dir() + "/badexec");
        std::ofstream script(d.patterns_dir() + "/badexec/run.sh");
        script << "#!/nonexistent/interpreter\n";
        script.close();
        // Executable by the key's own uid, which is not the file's owner.
        std::filesystem::permissions(
            d.patterns_dir() + "/badexec/run.sh",
            std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                std::filesystem::perms::others_exec);
        d.add_pattern("badexec", misbehave_manifest("sleep"), "./run.sh");
        d.start();
    }
    void expect_nothing_left() {
        EXPECT_EQ(d.list().total_count(), 0);
        EXPECT_TRUE(d.tenant_cgroups().empty());
        std::filesystem::path notify = d.dir() + "/run/notify";
        EXPECT_TRUE(std::filesystem::is_empty(notify)) << "notify sockets left behind";
    }
    TestDaemon d;
};

TEST_F(FailedStartTest, NeverHealthyFailsAtItsStartTimeoutAndLeaksNothing) {
    pb::LaunchResponse r;
    grpc::Status s = d.launch("never", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(s.error_message().find("did not become healthy within 2000 ms"), std::string::npos)
        << s.error_message();
    expect_nothing_left();
}

TEST_F(FailedStartTest, ExitBeforeHealthyReportsTheExitCode) {
    pb::LaunchResponse r;
    grpc::Status s = d.launch("quitter", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(s.error_message().find("exited with code 3"), std::string::npos) << s.error_message();
    expect_nothing_left();
}

TEST_F(FailedStartTest, ExecFailureReportsStepAndErrno) {
    pb::LaunchResponse r;
    grpc::Status s = d.launch("badexec", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
    // The init (PID 1 of the pattern's pid namespace) execs the pattern.
    EXPECT_NE(s.error_message().find("execve from the init failed: No such file or directory"),
              std::string::npos)
        << s.error_message();
    expect_nothing_left();
    // The key can be launched again (and fails again the same way).
    EXPECT_EQ(d.launch("badexec", pb::ISOLATION_NAMESPACE, "a", "", &r).error_code(),
              grpc::StatusCode::INTERNAL);
}

// ---- limits -------------------------------------------------------------------

TEST(Limits, StrictModeRefusesLimitsItCannotEnforce) {
    TestDaemon d;
    d.add_pattern("limited", misbehave_manifest("sleep", "", "resources:\n  memory_limit: 64Mi\n"));
    d.add_config("limits_enforcement: strict");
    d.start();
    std::string root_controllers;
    std::ifstream(d.cgroup_root() + "/cgroup.controllers") >> root_controllers;
    if (root_controllers.find("memory") != std::string::npos) {
        GTEST_SKIP() << "this host can enforce memory.max; the refusal is for hosts that cannot";
    }
    pb::LaunchResponse r;
    grpc::Status s = d.launch("limited", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(s.error_message().find("controller 'memory'"), std::string::npos)
        << s.error_message();
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

TEST(Limits, WarnModeLaunchesAndSaysLimitsAreNotEnforced) {
    TestDaemon d;
    d.add_pattern("limited", misbehave_manifest("sleep", "", "resources:\n  memory_limit: 64Mi\n"));
    d.add_config("limits_enforcement: warn");
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("limited", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    std::string controllers;
    std::getline(std::ifstream(d.cgroup_root() + "/cgroup.controllers"), controllers);
    EXPECT_EQ(r.limits_enforced(), controllers.find("memory") != std::string::npos);
    if (!r.limits_enforced()) {
        EXPECT_NE(d.log().find("launched without some limits"), std::string::npos);
    }
}

}  // namespace
