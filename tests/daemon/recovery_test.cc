// The launcher is SIGKILLed and started again: nothing is lost track of.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "test_daemon.h"

extern char** environ;

namespace {

using namespace pltest;
using namespace std::chrono_literals;

constexpr int kPatterns = 50;

std::map<std::string, int> launch_many(TestDaemon& d, int count) {
    std::map<std::string, int> pids;
    for (int i = 0; i < count; ++i) {
        pb::LaunchResponse r;
        const char* pattern = i % 2 ? "echo" : "sleeper";
        EXPECT_TRUE(
            d.launch(pattern, pb::ISOLATION_NAMESPACE, "t" + std::to_string(i), "", &r).ok())
            << d.log();
        pids[r.process_id()] = r.pid();
    }
    return pids;
}

void add_patterns(TestDaemon& d) {
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.add_pattern("sleeper", misbehave_manifest("sleep"));
}

TEST(Recovery, FiftyPatternsAreAdoptedWithTheirPidsAfterASigkill) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> before = launch_many(d, kPatterns);
    ASSERT_EQ(before.size(), static_cast<std::size_t>(kPatterns));
    std::map<std::string, std::string> addresses;
    const pb::ListPatternsResponse listed = d.list();
    for (const auto& p : listed.patterns())
        addresses[p.process_id()] = p.address();

    d.kill_hard();
    for (const auto& [id, pid] : before)
        ASSERT_TRUE(process_alive(pid)) << id << " died with the launcher";
    d.start();

    pb::ListPatternsResponse after = d.list();
    ASSERT_EQ(after.total_count(), kPatterns) << d.log();
    for (const auto& p : after.patterns()) {
        EXPECT_EQ(p.pid(), before[p.process_id()]) << p.process_id();
        EXPECT_EQ(p.address(), addresses[p.process_id()]) << p.process_id();
        EXPECT_EQ(p.state(), pb::RUNNING);
    }
    EXPECT_NE(d.log().find("recovery: adopted 50"), std::string::npos) << d.log();

    // Adopted processes are fully managed: reuse, terminate, and relaunch.
    pb::LaunchResponse again;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "t1", "", &again).ok());
    EXPECT_TRUE(again.reused());
    EXPECT_EQ(again.pid(), before["ns:t1:echo"]);
    for (const auto& [id, pid] : before) {
        pb::TerminateResponse t;
        ASSERT_TRUE(d.terminate(id, &t).ok()) << id;
        EXPECT_FALSE(process_alive(pid)) << id;
    }
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

TEST(Recovery, AnAdoptedPatternThatCrashesIsRestartedOnItsOldAddress) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    d.kill_hard();
    d.start();
    ::kill(r.pid(), SIGKILL);
    pb::PatternInfo back;
    for (int i = 0; i < 1000; ++i) {
        back = d.status(r.process_id());
        if (back.state() == pb::RUNNING && back.pid() != 0 && back.pid() != r.pid()) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(back.state(), pb::RUNNING) << d.log();
    EXPECT_NE(back.pid(), r.pid());
    EXPECT_EQ(back.address(), r.address());
    EXPECT_EQ(back.restart_count(), 1);
}

TEST(Recovery, OrphanPolicyKillLeavesACleanTree) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> before = launch_many(d, kPatterns);
    d.kill_hard();
    d.add_config("orphan_policy: kill");
    d.start();
    EXPECT_EQ(d.list().total_count(), 0);
    for (const auto& [id, pid] : before)
        EXPECT_FALSE(process_alive(pid)) << id;
    EXPECT_TRUE(d.tenant_cgroups().empty());
    EXPECT_TRUE(std::filesystem::is_empty(d.dir() + "/run/state"));
    EXPECT_NE(d.log().find("orphan_policy is kill"), std::string::npos);
}

TEST(Recovery, ACorruptStateRecordIsKilledAndSaidSo) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse good, bad;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "good", "", &good).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "bad", "", &bad).ok());
    d.kill_hard();
    std::string victim;
    for (const auto& entry : std::filesystem::directory_iterator(d.dir() + "/run/state")) {
        if (entry.path().filename().string().find("bad") != std::string::npos)
            victim = entry.path();
    }
    ASSERT_FALSE(victim.empty());
    std::ofstream(victim, std::ios::trunc)
        << "pattern-launcher-state 1\nprocess_id=ns:bad:sleeper\npid=";
    d.start();
    EXPECT_TRUE(process_alive(good.pid()));
    EXPECT_FALSE(process_alive(bad.pid())) << "an untrusted record's process is killed";
    EXPECT_EQ(d.list().total_count(), 1);
    std::string log = d.log();
    EXPECT_NE(log.find("untrusted state record " + victim), std::string::npos) << log;
    EXPECT_NE(log.find("killing 1 process(es) in " + d.cgroup_root() + "/ns:bad/ns:bad:sleeper"),
              std::string::npos)
        << log;
}

TEST(Recovery, AMissingStateDirectoryMeansEverythingIsKilled) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NONE, "", "", &r).ok());
    d.kill_hard();
    std::filesystem::remove_all(d.dir() + "/run/state");
    d.start();
    EXPECT_FALSE(process_alive(r.pid()));
    EXPECT_TRUE(d.tenant_cgroups().empty());
    EXPECT_NE(d.log().find("no state record describes it"), std::string::npos);
}

TEST(Recovery, ProcessesOutsideTheSubtreeAreNeverTouched) {
    // An unrelated process that looks like a pattern (the Go launcher killed
    // such processes by scanning /proc for PATTERN_NAME).
    std::vector<std::string> env_strings = {"PATTERN_NAME=sleeper", "PROCESS_ID=ns:t0:sleeper",
                                            "MISBEHAVE_MODE=sleep"};
    std::vector<char*> envp;
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(PL_MISBEHAVE), nullptr};
    pid_t stranger = 0;
    ASSERT_EQ(::posix_spawn(&stranger, PL_MISBEHAVE, nullptr, nullptr, argv, envp.data()), 0);

    TestDaemon d;
    add_patterns(d);
    d.start();
    launch_many(d, 4);
    d.kill_hard();
    d.start();
    d.stop();
    EXPECT_TRUE(process_alive(stranger));
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);
}

TEST(Shutdown, SigtermWithTwentyPatternsLeavesNothing) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> pids = launch_many(d, 20);
    std::string root = d.cgroup_root();
    EXPECT_EQ(d.stop(), 0) << d.log();
    for (const auto& [id, pid] : pids)
        EXPECT_FALSE(process_alive(pid)) << id;
    EXPECT_FALSE(std::filesystem::exists(root));
}

}  // namespace
