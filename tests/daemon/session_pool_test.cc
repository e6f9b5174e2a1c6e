// Session pools on the real daemon (warm_pool.sessions of a late-binding
// pattern, docs/late-binding.md): processes of a tenant are started ahead,
// invisible to List and Terminate; a SESSION launch of that tenant claims
// one (its pid, its cgroup, its identity told over the claim socket, which
// the real echo sample answers); a claimed
// process is never offered again and the pool refills; another tenant never
// gets one; a pattern that refuses, ignores or pre-empts its claim fails
// only that launch (or is never handed out); a daemon crash kills the
// unclaimed ones and keeps the claimed keys.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "http_client.h"
#include "sandbox/cgroup.h"
#include "sandbox/socket_recovery.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The groups of the unclaimed pool processes of `ns`: made by the pool
// ("pool:..." below ns:<ns>) and no listed key's (a claimed process keeps
// its group), and the processes in them.
std::vector<std::string> pool_groups(TestDaemon& d, const std::string& ns) {
    std::set<std::string> claimed;
    const pb::ListPatternsResponse listed = d.list();
    for (const pb::PatternInfo& p : listed.patterns())
        claimed.insert(p.cgroup());
    std::vector<std::string> out;
    const std::string dir = d.cgroup_root() + "/ns:" + ns;
    if (!fs::is_directory(dir)) return out;
    for (const std::string& name : sandbox::cgroup_child_names(dir)) {
        if (name.starts_with("pool:") && !claimed.count(dir + "/" + name))
            out.push_back(dir + "/" + name);
    }
    return out;
}

std::set<pid_t> pool_pids(TestDaemon& d, const std::string& ns) {
    std::set<pid_t> out;
    for (const std::string& group : pool_groups(d, ns)) {
        for (const std::string& leaf : sandbox::cgroup_child_names(group)) {
            for (pid_t pid : sandbox::cgroup_processes(group + "/" + leaf))
                out.insert(pid);
        }
    }
    return out;
}

// Pool groups with a process in them (started; maybe not yet ready).
std::size_t populated_pool_groups(TestDaemon& d, const std::string& ns) {
    std::size_t n = 0;
    for (const std::string& group : pool_groups(d, ns)) {
        for (const std::string& leaf : sandbox::cgroup_child_names(group)) {
            if (!sandbox::cgroup_processes(group + "/" + leaf).empty()) {
                ++n;
                break;
            }
        }
    }
    return n;
}

// What the echo process `pid` (the init of its pid namespace, which holds
// the same sockets) says on its health socket (fd 4) at GET /identity.
std::string identity_of(pid_t pid) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) return "pidfd_open failed";
    const int port = sandbox::listening_port_of(pidfd, 4);
    ::close(pidfd);
    if (port <= 0) return "no health socket";
    return http_get(port, "/identity").body;
}

std::string scrape(int port) {
    return http_get(port, "/metrics").body;
}

TEST(SessionPool, ASessionLaunchClaimsAPooledProcessOfItsTenantOnceAndThePoolRefills) {
    TestDaemon d;
    const int metrics_port = test_port(0);
    d.add_pattern("echo",
                  echo_manifest("http") +
                      "accept_any_config: true\n"
                      "late_binding: true\n"
                      "warm_pool:\n  sessions: {t1: 2}\n",
                  PL_ECHO);
    d.add_config("metrics: {port: " + std::to_string(metrics_port) + ", path: /metrics}");
    d.start();
    const std::string ready_t1 =
        "pattern_launcher_session_pool_size{namespace=\"t1\",pattern=\"echo\"}";
    ASSERT_TRUE(eventually([&] { return metric_sample(scrape(metrics_port), ready_t1) == 2; }))
        << scrape(metrics_port) << d.log();
    const std::set<pid_t> pooled = pool_pids(d, "t1");
    ASSERT_GE(pooled.size(), 2u);
    const std::vector<std::string> groups_before = pool_groups(d, "t1");
    // No client asked for them: List, Health and Terminate do not know them.
    EXPECT_EQ(d.list().patterns_size(), 0);
    const std::string pool_id = fs::path(pool_groups(d, "t1").at(0)).filename();
    pb::TerminateResponse refused;
    EXPECT_EQ(d.terminate(pool_id, &refused).error_code(), grpc::StatusCode::NOT_FOUND);

    pb::LaunchResponse first;
    ASSERT_TRUE(
        d.launch("echo", pb::ISOLATION_SESSION, "t1", "s1", &first, {{"GREETING", "hi"}}).ok())
        << d.log();
    EXPECT_FALSE(first.reused());
    EXPECT_EQ(first.process_id(), "session:s1:echo");
    EXPECT_TRUE(pooled.count(first.pid())) << "the launch did not take a pooled process";
    // Its cgroup (in the tenant's group, named as the pool made it: cgroup
    // v2 cannot rename one) is the session key's now, with it inside.
    const pb::PatternInfo s1 = d.status("session:s1:echo");
    EXPECT_TRUE(std::find(groups_before.begin(), groups_before.end(), s1.cgroup()) !=
                groups_before.end())
        << s1.cgroup();
    EXPECT_EQ(s1.session_id(), "s1");
    EXPECT_EQ(s1.namespace_(), "t1");
    EXPECT_GT(s1.uid(), 0u);
    bool inside = false;
    for (const std::string& leaf : sandbox::cgroup_child_names(s1.cgroup())) {
        for (pid_t pid : sandbox::cgroup_processes(s1.cgroup() + "/" + leaf))
            inside = inside || pid == first.pid();
    }
    EXPECT_TRUE(inside);
    // The process itself was told who it is now (the echo sample's answer).
    EXPECT_EQ(identity_of(first.pid()),
              "namespace=t1\nsession_id=s1\nprocess_id=session:s1:echo\nconfig_keys=1\n");

    // Never offered again: the next session gets another process, and the
    // first session's next launch is an ordinary reuse of its own.
    pb::LaunchResponse second;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "t1", "s2", &second).ok()) << d.log();
    EXPECT_NE(second.pid(), first.pid());
    pb::LaunchResponse again;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "t1", "s1", &again).ok());
    EXPECT_TRUE(again.reused());
    EXPECT_EQ(again.pid(), first.pid());

    // Another tenant never gets t1's processes: its session is a cold start.
    pb::LaunchResponse other;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "t2", "s3", &other).ok()) << d.log();
    EXPECT_FALSE(pooled.count(other.pid()));
    EXPECT_EQ(identity_of(other.pid()),
              "namespace=t2\nsession_id=s3\nprocess_id=session:s3:echo\nconfig_keys=0\n");

    // The pool refills with fresh processes.
    ASSERT_TRUE(eventually([&] { return metric_sample(scrape(metrics_port), ready_t1) == 2; }))
        << scrape(metrics_port);
    for (pid_t pid : pool_pids(d, "t1")) {
        EXPECT_NE(pid, first.pid());
        EXPECT_NE(pid, second.pid());
    }
    const std::string m = scrape(metrics_port);
    EXPECT_EQ(metric_sample(m,
                            "pattern_launcher_session_pool_hits_total{namespace=\"t1\",pattern="
                            "\"echo\"}"),
              2)
        << m;
    EXPECT_EQ(metric_sample(m,
                            "pattern_launcher_session_pool_wanted{namespace=\"t1\",pattern="
                            "\"echo\"}"),
              2)
        << m;
    EXPECT_GE(metric_sample(m,
                            "pattern_launcher_session_pool_refill_duration_seconds_count{pattern="
                            "\"echo\"}"),
              4)
        << m;
    EXPECT_EQ(d.list().patterns_size(), 3);

    // A daemon crash: the claimed keys are adopted with their processes; the
    // unclaimed ones cannot be claimed any more (their claim sockets died
    // with the daemon), so they are killed and the pool starts new ones.
    const std::set<pid_t> before_crash = pool_pids(d, "t1");
    d.kill_hard();
    d.start();
    EXPECT_EQ(d.status("session:s1:echo").pid(), first.pid()) << d.log();
    EXPECT_EQ(d.status("session:s2:echo").pid(), second.pid()) << d.log();
    ASSERT_TRUE(eventually([&] {
        const std::set<pid_t> now = pool_pids(d, "t1");
        for (pid_t pid : before_crash)
            if (now.count(pid)) return false;
        return metric_sample(scrape(metrics_port), ready_t1) == 2;
    })) << d.log();
    pb::LaunchResponse after;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_SESSION, "t1", "s4", &after).ok()) << d.log();
    EXPECT_FALSE(before_crash.count(after.pid()));
    EXPECT_EQ(identity_of(after.pid()),
              "namespace=t1\nsession_id=s4\nprocess_id=session:s4:echo\nconfig_keys=0\n");

    EXPECT_EQ(d.stop(), 0) << d.log();
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

// A pool's process is the tenant's own code: it may refuse its claim, never
// answer it, or answer before it was asked. Each fails at most that one
// launch, with the reason, and never leaves its process or key behind.
TEST(SessionPool, APatternThatRefusesIgnoresOrPreemptsItsClaimFailsOnlyThatLaunch) {
    TestDaemon d;
    auto pooled_misbehave = [](const std::string& how, const std::string& ns) {
        return misbehave_manifest("claim", how,
                                  "late_binding: true\nwarm_pool:\n  sessions: {" + ns + ": 1}\n");
    };
    d.add_pattern("refuses", pooled_misbehave("refuse", "t1"));
    d.add_pattern("ignores", pooled_misbehave("ignore", "t2"));
    d.add_pattern("early", pooled_misbehave("early", "t3"));
    d.start();
    for (const char* ns : {"t1", "t2", "t3"}) {
        ASSERT_TRUE(eventually([&] { return populated_pool_groups(d, ns) == 1; })) << ns << "\n"
                                                                                   << d.log();
    }
    std::this_thread::sleep_for(300ms);  // READY=1 read: pooled

    const std::set<pid_t> refusing = pool_pids(d, "t1");
    pb::LaunchResponse response;
    grpc::Status refused = d.launch("refuses", pb::ISOLATION_SESSION, "t1", "a", &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INTERNAL) << d.log();
    EXPECT_NE(refused.error_message().find("refused the claim: pl-misbehave refuses every claim"),
              std::string::npos)
        << refused.error_message();
    EXPECT_EQ(d.status("session:a:refuses").process_id(), "") << "a failed key stayed listed";
    for (pid_t pid : refusing) {
        EXPECT_TRUE(eventually([&] { return !process_alive(pid); }, 5s)) << pid;
    }

    const auto asked = std::chrono::steady_clock::now();
    grpc::Status ignored = d.launch("ignores", pb::ISOLATION_SESSION, "t2", "b", &response);
    EXPECT_EQ(ignored.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(ignored.error_message().find("did not become healthy within 2000 ms"),
              std::string::npos)
        << ignored.error_message();
    EXPECT_GE(std::chrono::steady_clock::now() - asked, 1900ms);

    // An answer queued before any claim: the process is not handed out; the
    // launch is a cold start of its own, with its session in the environment.
    const std::set<pid_t> preempting = pool_pids(d, "t3");
    ASSERT_TRUE(d.launch("early", pb::ISOLATION_SESSION, "t3", "c", &response).ok()) << d.log();
    EXPECT_FALSE(preempting.count(response.pid()));
    EXPECT_NE(d.log().find("wrote to its claim socket before being claimed"), std::string::npos)
        << d.log();

    EXPECT_EQ(d.stop(), 0) << d.log();
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

}  // namespace
