// Supervision through the real API: restarts, back-off, circuit breaker,
// liveness, quotas, the start queue.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

// Polls the key's status until `done` holds (or 20 s pass).
pb::PatternInfo wait_for(TestDaemon& d, const std::string& id,
                         const std::function<bool(const pb::PatternInfo&)>& done) {
    pb::PatternInfo info;
    for (int i = 0; i < 2000; ++i) {
        info = d.status(id);
        if (done(info)) return info;
        std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "timed out waiting on " << id << "; last state " << info.state() << "\n"
                  << d.log();
    return info;
}

TEST(Restart, ACrashedPatternComesBackAtTheSameAddress) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    ::kill(r.pid(), SIGKILL);
    pb::PatternInfo back = wait_for(d, r.process_id(), [&](const pb::PatternInfo& i) {
        return i.state() == pb::STATE_RUNNING && i.pid() != 0 && i.pid() != r.pid();
    });
    EXPECT_EQ(back.restart_count(), 1);
    EXPECT_EQ(back.address(), r.address());
    EXPECT_EQ(back.error_count(), 1);
    EXPECT_NE(back.last_error().find("killed by signal 9"), std::string::npos) << back.last_error();
    EXPECT_EQ(roundtrip(back.address(), "still here"), "still here");
}

TEST(Restart, ConnectionsQueueWhileThePatternRestarts) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    ASSERT_TRUE(kill_key_process(r.pid()));
    // Straight away, before the restart: the launcher's socket holds the
    // connection in its backlog until the new process accepts it.
    EXPECT_EQ(roundtrip(r.address(), "queued"), "queued");
}

// The restart delays as the launcher computed them, in order, from its
// "<id>: restarting in D ms (N consecutive failures)" lines: {N, D} each.
std::vector<std::pair<int, int>> logged_backoffs(const std::string& log, const std::string& id) {
    std::vector<std::pair<int, int>> out;
    const std::regex line(std::regex_replace(id, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                          R"(: restarting in (\d+) ms \((\d+) consecutive failure)");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
         ++it) {
        out.emplace_back(std::stoi((*it)[2]), std::stoi((*it)[1]));
    }
    return out;
}

// Asserts on what the launcher decided (its counters, its logged delays)
// and on lower bounds of what it waited, which no load can undercut; none
// on how fast a loaded machine got there.
TEST(Restart, ACrashLoopOpensTheCircuitBreakerWithGrowingBackoff) {
    TestDaemon d;
    d.add_config("process_manager: {circuit_breaker_threshold: 4, backoff_period: 5s}");
    d.add_pattern("crasher", misbehave_manifest("crash-after-ms", "300"));
    d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
    d.start();
    pb::LaunchResponse other, r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "bystander", "", &other).ok());
    ASSERT_TRUE(d.launch("crasher", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();

    // When each incarnation started, by restart count (a poll may miss one).
    std::map<int, std::int64_t> started;
    pb::PatternInfo info;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
        info = d.status(r.process_id());
        if (info.state() == pb::STATE_FAILED) break;
        if (info.started_at_unix_ms() != 0)
            started[info.restart_count()] = info.started_at_unix_ms();
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(info.state(), pb::STATE_FAILED) << d.log();
    EXPECT_EQ(info.error_count(), 4);
    EXPECT_EQ(info.restart_count(), 3);
    EXPECT_EQ(info.consecutive_failures(), 4);
    EXPECT_NE(info.last_error().find("circuit breaker open after 4 consecutive failures"),
              std::string::npos)
        << info.last_error();
    EXPECT_EQ(info.pid(), 0);

    // Three restarts, after 1, 2 and 3 failures, each after 100 ms doubled
    // per failure, ±20 % jitter: 80-120, 160-240, 320-480 ms, so each longer
    // than the one before whatever the jitter drew.
    const auto backoffs = logged_backoffs(d.log(), r.process_id());
    ASSERT_EQ(backoffs.size(), 3u) << d.log();
    for (int i = 0; i < 3; ++i) {
        const int nominal = 100 << i;
        EXPECT_EQ(backoffs[i].first, i + 1) << "consecutive failures before restart " << i + 1;
        EXPECT_GE(backoffs[i].second, nominal * 8 / 10) << "restart " << i + 1;
        EXPECT_LE(backoffs[i].second, nominal * 12 / 10) << "restart " << i + 1;
    }
    // And it waited them: an incarnation lives at least its 300 ms, then
    // the back-off passes before the next one starts (1 ms of rounding).
    int checked = 0;
    for (const auto& [count, at] : started) {
        auto next = started.find(count + 1);
        if (next == started.end() || count >= 3) continue;
        EXPECT_GE(next->second - at, 300 + backoffs[count].second - 1)
            << "restart " << count + 1 << " came before its back-off was over";
        ++checked;
    }
    EXPECT_GE(checked, 1) << "no two consecutive incarnations observed";
    EXPECT_EQ(d.status(other.process_id()).pid(), other.pid()) << "other tenants are untouched";

    // FAILED sticks until terminated; then the key can start afresh.
    pb::LaunchResponse again;
    EXPECT_EQ(d.launch("crasher", pb::ISOLATION_NAMESPACE, "a", "", &again).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    EXPECT_TRUE(d.launch("crasher", pb::ISOLATION_NAMESPACE, "a", "", &again).ok());
    EXPECT_TRUE(d.tenant_cgroups().size() >= 2u);
}

TEST(Restart, NeverPolicyLeavesTheKeyFailed) {
    TestDaemon d;
    d.add_pattern("once", misbehave_manifest("crash-after-ms", "100", "restart: never\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("once", pb::ISOLATION_NONE, "", "", &r).ok());
    pb::PatternInfo info = wait_for(
        d, r.process_id(), [](const pb::PatternInfo& i) { return i.state() == pb::STATE_FAILED; });
    EXPECT_EQ(info.restart_count(), 0);
    EXPECT_TRUE(d.tenant_cgroups().empty()) << "a FAILED key keeps no cgroup";
}

TEST(Liveness, AnUnresponsivePatternIsRestarted) {
    TestDaemon d;
    d.add_pattern("echo",
                  "version: 1.0.0\n"
                  // A timeout no loaded machine makes a healthy echo miss twice.
                  "healthcheck: {type: http, interval: 100ms, timeout: 1s, "
                  "failure_threshold: 2, start_timeout: 30s}\n",
                  PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    // The pattern itself (the init's child) is alive, but answers nothing.
    ASSERT_GT(pattern_pid(r.pid()), 0);
    ::kill(pattern_pid(r.pid()), SIGSTOP);
    pb::PatternInfo back = wait_for(d, r.process_id(), [&](const pb::PatternInfo& i) {
        return i.state() == pb::STATE_RUNNING && i.pid() != 0 && i.pid() != r.pid();
    });
    EXPECT_EQ(back.restart_count(), 1);
    EXPECT_NE(back.last_error().find("liveness check failed 2 times"), std::string::npos)
        << back.last_error();
    EXPECT_FALSE(process_alive(r.pid())) << "the stopped process was killed";
}

TEST(Quotas, LauncherAndNamespaceLimits) {
    TestDaemon d;
    d.add_config("quotas: {max_processes: 4, max_processes_per_namespace: 2}");
    d.add_config("namespace_quotas: {small: {max_processes: 1}}");
    d.add_pattern("p", misbehave_manifest("sleep"));
    d.add_pattern("q", misbehave_manifest("sleep"));
    d.add_pattern("r", misbehave_manifest("sleep"));
    d.start();
    pb::LaunchResponse out;
    ASSERT_TRUE(d.launch("p", pb::ISOLATION_NAMESPACE, "a", "", &out).ok());
    ASSERT_TRUE(d.launch("q", pb::ISOLATION_NAMESPACE, "a", "", &out).ok());
    grpc::Status s = d.launch("r", pb::ISOLATION_NAMESPACE, "a", "", &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("namespace 'a' runs 2 processes, its max_processes (2)"),
              std::string::npos)
        << s.error_message();

    ASSERT_TRUE(d.launch("p", pb::ISOLATION_NAMESPACE, "small", "", &out).ok());
    s = d.launch("q", pb::ISOLATION_NAMESPACE, "small", "", &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("namespace 'small' runs 1 processes, its max_processes (1)"),
              std::string::npos)
        << s.error_message();

    ASSERT_TRUE(d.launch("p", pb::ISOLATION_NAMESPACE, "b", "", &out).ok());
    s = d.launch("q", pb::ISOLATION_NAMESPACE, "b", "", &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("its max_processes (4)"), std::string::npos)
        << s.error_message();
    // Reuse of a running key is never refused.
    EXPECT_TRUE(d.launch("p", pb::ISOLATION_NAMESPACE, "a", "", &out).ok());
    EXPECT_EQ(d.list().total_count(), 4);
}

TEST(StartQueue, StartsBeyondTheLimitWaitInsteadOfFailing) {
    TestDaemon d;
    d.add_config("process_manager: {max_concurrent_starts: 1}");
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.start();
    std::vector<std::thread> threads;
    std::vector<grpc::Status> statuses(8);
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&, i] {
            pb::LaunchResponse r;
            statuses[i] =
                d.launch("echo", pb::ISOLATION_NAMESPACE, "q" + std::to_string(i), "", &r);
        });
    }
    for (auto& t : threads)
        t.join();
    for (const auto& s : statuses)
        EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(d.list().total_count(), 8);
}

TEST(Concurrency, AThousandLaunchesOverAHundredKeysMakeAHundredProcesses) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.start();
    constexpr int kThreads = 50, kPerThread = 20, kKeys = 100;
    std::vector<std::thread> threads;
    std::vector<std::map<std::string, std::set<int>>> seen(kThreads);
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                int key = (t * kPerThread + i * 7) % kKeys;
                pb::LaunchResponse r;
                if (!d.launch("echo", pb::ISOLATION_NAMESPACE, "k" + std::to_string(key), "", &r)
                         .ok()) {
                    ++failures;
                    continue;
                }
                seen[t][r.process_id()].insert(r.pid());
            }
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(failures.load(), 0);
    std::map<std::string, std::set<int>> merged;
    for (auto& m : seen) {
        for (auto& [id, pids] : m)
            merged[id].insert(pids.begin(), pids.end());
    }
    EXPECT_EQ(merged.size(), static_cast<std::size_t>(kKeys));
    for (auto& [id, pids] : merged)
        EXPECT_EQ(pids.size(), 1u) << id << " got several processes";
    EXPECT_EQ(d.list().total_count(), kKeys);
    EXPECT_EQ(d.tenant_cgroups().size(), static_cast<std::size_t>(3 * kKeys))
        << "namespace, key and run groups";
}

}  // namespace

namespace {

// Needs cgroup v2 controllers: skipped on hybrid hosts, run in the VM suite.
TEST(Quotas, ANamespaceCeilingIsItsParentCgroupsLimit) {
    pltest::TestDaemon d;
    d.add_config("limits_enforcement: strict");
    d.add_config(
        "namespace_quotas: {tenant-a: {memory_limit: 256Mi, pids_limit: 100, cpu_limit: 1}}");
    d.add_pattern("p", pltest::misbehave_manifest("sleep"));
    d.start();
    std::string controllers;
    std::getline(std::ifstream(d.cgroup_root() + "/cgroup.controllers"), controllers);
    for (const char* c : {"memory", "pids", "cpu"}) {
        if (controllers.find(c) == std::string::npos) {
            GTEST_SKIP() << "needs the " << c << " controller on cgroup v2 (hybrid host); the VM "
                         << "suite runs this test";
        }
    }
    pltest::pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("p", pltest::pb::ISOLATION_NAMESPACE, "tenant-a", "", &r).ok()) << d.log();
    auto read = [&](const std::string& file) {
        std::string v;
        std::getline(std::ifstream(d.cgroup_root() + "/ns:tenant-a/" + file), v);
        return v;
    };
    EXPECT_EQ(read("memory.max"), "268435456");
    EXPECT_EQ(read("pids.max"), "100");
    EXPECT_EQ(read("cpu.max"), "100000 100000");
}

}  // namespace
