// Watching, signalling, killing and cleaning up: nothing may be lost or leaked.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using pltest::TestTree;

// True when `pid` no longer runs (gone, or a zombie waiting for its reaper).
bool ended(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("State:")) return line.find('Z') != std::string::npos;
    }
    return true;
}

std::vector<pid_t> child_pids(const std::string& output) {
    std::vector<pid_t> pids;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("child=")) pids.push_back(std::stoi(line.substr(6)));
    }
    return pids;
}

TEST(Lifecycle, PidfdSignalExitAndReap) {
    sandbox::SpawnResult child = sandbox::spawn(pltest::misbehave({"sleep"}));
    EXPECT_FALSE(child.process.has_exited());
    EXPECT_FALSE(child.process.try_reap().has_value());
    EXPECT_TRUE(child.process.send_signal(SIGTERM));
    EXPECT_TRUE(child.process.wait_exit(5s));
    sandbox::ExitStatus status = sandbox::decode_exit(child.process.reap());
    EXPECT_EQ(status.kind, sandbox::ExitStatus::Kind::kKilled);
    EXPECT_EQ(status.signal, SIGTERM);
    EXPECT_FALSE(child.process.send_signal(SIGKILL)) << "no signal after reaping";
}

TEST(Lifecycle, IgnoredSigtermNeedsSigkill) {
    pltest::Running running = pltest::start_captured(pltest::misbehave({"ignore-sigterm"}));
    ASSERT_NE(running.read_until("ignoring SIGTERM").find("ignoring"), std::string::npos);
    running.process.send_signal(SIGTERM);
    EXPECT_FALSE(running.process.wait_exit(200ms));
    running.process.send_signal(SIGKILL);
    EXPECT_EQ(sandbox::decode_exit(running.process.reap()).signal, SIGKILL);
}

TEST(Lifecycle, ParentSignalDispositionsDoNotLeakIntoTheChild) {
    // A daemon ignores SIGPIPE and blocks SIGTERM for its signalfd; children
    // must start with defaults or SIGTERM would never reach them.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction old_pipe {};
    ::sigaction(SIGPIPE, &ignore, &old_pipe);
    sigset_t term, old_mask;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &term, &old_mask);
    sandbox::SpawnResult child = sandbox::spawn(pltest::misbehave({"sleep"}));
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);

    std::ifstream status("/proc/" + std::to_string(child.process.pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("SigBlk:") || line.starts_with("SigIgn:")) {
            EXPECT_EQ(line.substr(line.find_first_not_of(" \t", 7)), "0000000000000000") << line;
        }
    }
    child.process.send_signal(SIGTERM);
    EXPECT_EQ(sandbox::decode_exit(child.process.reap()).signal, SIGTERM);
}

TEST(Lifecycle, CgroupKillEndsTheChildAndItsGrandchildren) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("kill-tree");
    auto spec = pltest::misbehave({"fork", "3"});
    spec.cgroup_fd = group.dir_fd();
    pltest::Running running = pltest::start_captured(spec);
    std::vector<pid_t> grandchildren = child_pids(running.read_until("forked 3"));
    ASSERT_EQ(grandchildren.size(), 3u);
    auto in_group = group.processes();
    std::sort(in_group.begin(), in_group.end());
    EXPECT_EQ(in_group.size(), 4u);

    group.kill();
    EXPECT_TRUE(group.wait_until_empty(5s));
    EXPECT_EQ(sandbox::decode_exit(running.process.reap()).signal, SIGKILL);
    for (pid_t pid : grandchildren)
        EXPECT_TRUE(ended(pid)) << pid;
    group.remove();
}

TEST(Lifecycle, DroppedProcessHandleKillsAndReaps) {
    pid_t pid;
    {
        sandbox::SpawnResult child = sandbox::spawn(pltest::misbehave({"sleep"}));
        pid = child.process.pid();
    }
    siginfo_t info{};
    EXPECT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD) << "already reaped by the handle";
}

TEST(Lifecycle, OomKillIsDecodedFromMemoryEvents) {
    siginfo_t info{};
    info.si_code = CLD_KILLED;
    info.si_status = SIGKILL;
    EXPECT_TRUE(sandbox::decode_exit(info, 1).oom_killed);
    EXPECT_EQ(sandbox::decode_exit(info, 1).describe(), "killed by the OOM killer");
    EXPECT_FALSE(sandbox::decode_exit(info, 0).oom_killed);
    info.si_status = SIGTERM;
    EXPECT_FALSE(sandbox::decode_exit(info, 1).oom_killed) << "the OOM killer only sends SIGKILL";
}

// Needs memory.max: skipped on hybrid hosts, run by the VM suite.
TEST(Lifecycle, MemoryLimitOomKillIsReported) {
    TestTree t;
    if (!pltest::cgroup_has_controller(t.root(), "memory")) {
        GTEST_SKIP() << "needs the memory controller on cgroup v2 (hybrid host); runs in the VM "
                        "suite";
    }
    sandbox::Cgroup group = t.tree().create_group("oom");
    sandbox::CgroupLimits limits;
    limits.memory_max = 32ULL << 20;
    limits.memory_swap_max = 0;
    t.tree().apply_limits(group, limits, sandbox::Enforcement::kStrict);
    auto spec = pltest::misbehave({"alloc-mib", "256"});
    spec.cgroup_fd = group.dir_fd();
    sandbox::SpawnResult child = sandbox::spawn(spec);
    siginfo_t info = child.process.reap();
    sandbox::ExitStatus status = sandbox::decode_exit(info, group.memory_events().oom_kill);
    EXPECT_TRUE(status.oom_killed) << status.describe();
}

TEST(Lifecycle, FiveHundredSpawnKillCyclesLeakNothing) {
    TestTree t;
    // Warm up once so that lazily opened fds (e.g. libseccomp, caches) exist.
    { sandbox::Cgroup warm = t.tree().create_group("warm"); }
    const int fds_before = pltest::count_open_fds();
    const auto tree_before = pltest::list_dir(t.root());
    for (int i = 0; i < 500; ++i) {
        sandbox::Cgroup group = t.tree().create_group("cycle");
        auto spec = pltest::misbehave({"sleep"});
        spec.cgroup_fd = group.dir_fd();
        sandbox::SpawnResult child = sandbox::spawn(spec);
        if (i % 2 == 0) {
            group.kill();
        } else {
            child.process.send_signal(SIGKILL);
        }
        child.process.reap();
        group.remove();
    }
    EXPECT_EQ(pltest::count_open_fds(), fds_before);
    EXPECT_EQ(pltest::list_dir(t.root()), tree_before);
    siginfo_t info{};
    EXPECT_EQ(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD) << "no zombie left";
}

}  // namespace
