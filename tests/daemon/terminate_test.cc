// TerminatePattern and daemon shutdown: nothing survives, nothing leaks.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

class TerminateTest : public ::testing::Test {
protected:
    void SetUp() override {
        d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
        d.add_pattern("stubborn", misbehave_manifest("ignore-sigterm", "", "grace_period: 1s\n"));
        d.add_pattern("forker", misbehave_manifest("fork", "3"));
        d.start();
    }
    TestDaemon d;
};

TEST_F(TerminateTest, GracefulTerminateRemovesProcessAndCgroup) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    EXPECT_TRUE(t.success());
    EXPECT_EQ(t.exit_cause(), "exited with code 0") << "echo exits 0 on SIGTERM";
    EXPECT_FALSE(process_alive(r.pid()));
    EXPECT_EQ(d.list().total_count(), 0);
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

TEST_F(TerminateTest, SigtermIgnoringPatternIsKilledAtTheGracePeriod) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("stubborn", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    auto begin = std::chrono::steady_clock::now();
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    auto took = std::chrono::steady_clock::now() - begin;
    EXPECT_TRUE(t.success());
    EXPECT_EQ(t.exit_cause(), "killed by signal 9 (Killed)");
    EXPECT_GE(took, 900ms) << "the manifest's 1 s grace period was not honoured";
    EXPECT_FALSE(process_alive(r.pid()));
    EXPECT_NE(d.log().find("still running after the grace period of 1000 ms"), std::string::npos);
}

TEST_F(TerminateTest, ForceKillsAtOnce) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("stubborn", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t, 0, true).ok());
    EXPECT_EQ(t.exit_cause(), "killed by signal 9 (Killed)");
    EXPECT_EQ(d.log().find("still running after the grace period"), std::string::npos);
}

TEST_F(TerminateTest, DescendantsDieWithThePattern) {
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("forker", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    // The pattern reports ready before it forks: wait for its three children.
    std::vector<pid_t> pids;
    for (int i = 0; i < 500 && pids.size() < 5; ++i) {
        std::this_thread::sleep_for(10ms);
        pids.clear();
        std::ifstream procs(d.cgroup_root() + "/ns:a/ns:a:forker/run.0/cgroup.procs");
        for (pid_t pid; procs >> pid;)
            pids.push_back(pid);
    }
    ASSERT_EQ(pids.size(), 5u) << "the init, the pattern and its three children";
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    for (pid_t pid : pids)
        EXPECT_FALSE(process_alive(pid)) << pid;
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

TEST_F(TerminateTest, TheKeyCanBeLaunchedAgainAtOnce) {
    pb::LaunchResponse first, second;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "a", "s1", &first).ok());
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(first.process_id(), &t).ok());
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "b", "s1", &second).ok())
        << "the session is free again once its processes are gone";
    EXPECT_EQ(second.process_id(), first.process_id());
    EXPECT_NE(second.pid(), first.pid());
    EXPECT_FALSE(second.reused());
}

TEST_F(TerminateTest, UnknownProcessIsNotFound) {
    pb::TerminateResponse t;
    grpc::Status s = d.terminate("ns:nobody:echo", &t);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "process not found: ns:nobody:echo");
}

TEST(Shutdown, SigtermStopsEveryPatternAndRemovesTheCgroupTree) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.add_pattern("stubborn", misbehave_manifest("ignore-sigterm", "", "grace_period: 1s\n"));
    d.start();
    std::vector<int> pids;
    for (int i = 0; i < 6; ++i) {
        pb::LaunchResponse r;
        ASSERT_TRUE(d.launch(i % 2 ? "echo" : "stubborn", pb::ISOLATION_NAMESPACE,
                             "tenant-" + std::to_string(i), "", &r)
                        .ok());
        pids.push_back(r.pid());
    }
    std::string root = d.cgroup_root();
    EXPECT_EQ(d.stop(), 0) << d.log();
    for (int pid : pids)
        EXPECT_FALSE(process_alive(pid)) << pid;
    EXPECT_FALSE(std::filesystem::exists(root)) << "cgroup tree left behind";
    EXPECT_FALSE(std::filesystem::exists(d.socket())) << "API socket left behind";
}

}  // namespace
