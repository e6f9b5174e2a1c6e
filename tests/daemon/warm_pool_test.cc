// The warm pool on the real daemon (warm_pool: in a manifest and in the
// config): its keys run before any launch, a tenant's first launch is a
// reuse of that very process, the metrics count it, a kept key that is
// terminated comes back, and one the daemon's SIGKILL left running is
// adopted, not started a second time.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "http_client.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

// The kept keys of the test's config.
const std::set<std::string> kKept = {"ns:w1:echo", "ns:w2:sleeper", "ns:w3:echo"};

// The ids of the RUNNING keys.
std::set<std::string> running_keys(TestDaemon& d) {
    std::set<std::string> out;
    const pb::ListPatternsResponse listed = d.list();
    for (const pb::PatternInfo& p : listed.patterns()) {
        if (p.state() == pb::STATE_RUNNING) out.insert(p.process_id());
    }
    return out;
}

TEST(WarmPool, KeptKeysRunBeforeAnyLaunchAreReusedComeBackAndSurviveTheDaemon) {
    TestDaemon d;
    const int metrics_port = test_port(0);
    d.add_pattern("echo", echo_manifest("notify") + "warm_pool:\n  namespaces: [w1]\n", PL_ECHO);
    d.add_pattern("sleeper", misbehave_manifest("sleep"));
    d.add_config("warm_pool: {tenants: {w2: [sleeper], w3: [echo, missing]}}");
    d.add_config("metrics: {port: " + std::to_string(metrics_port) + ", path: /metrics}");
    d.start();

    // No launch was made: the pool's own.
    ASSERT_TRUE(eventually([&] { return running_keys(d) == kKept; })) << d.log();
    EXPECT_NE(d.log().find("warm_pool.tenants.w3: pattern 'missing' is not discovered"),
              std::string::npos)
        << d.log();
    const pb::PatternInfo kept = d.status("ns:w1:echo");
    EXPECT_TRUE(kept.warm_pool());
    ASSERT_GT(kept.pid(), 0);

    pb::LaunchResponse first;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "w1", "", &first).ok()) << d.log();
    EXPECT_TRUE(first.reused()) << "the first launch of a kept key was not a reuse";
    EXPECT_EQ(first.pid(), kept.pid());
    pb::LaunchResponse other;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "cold", "", &other).ok()) << d.log();
    EXPECT_FALSE(other.reused());
    EXPECT_FALSE(d.status(other.process_id()).warm_pool());

    Reply scraped = http_get(metrics_port, "/metrics");
    ASSERT_EQ(scraped.status, 200) << scraped.raw;
    const std::string& m = scraped.body;
    EXPECT_EQ(metric_sample(
                  m, "pattern_launcher_warm_pool_hits_total{namespace=\"w1\",pattern=\"echo\"}"),
              1)
        << m;
    EXPECT_EQ(metric_sample(m, "pattern_launcher_warm_pool_keys{pattern=\"echo\"}"), 2) << m;
    EXPECT_EQ(metric_sample(m, "pattern_launcher_warm_pool_size{pattern=\"sleeper\"}"), 1) << m;
    EXPECT_EQ(metric_sample(m,
                            "pattern_launcher_warm_pool_refill_duration_seconds_count{pattern="
                            "\"echo\"}"),
              2)
        << m;

    // A client's terminate of a kept key: it is back within the pool's tick.
    const pid_t sleeper = d.status("ns:w2:sleeper").pid();
    pb::TerminateResponse stopped;
    ASSERT_TRUE(d.terminate("ns:w2:sleeper", &stopped).ok());
    ASSERT_TRUE(eventually([&] {
        const pb::PatternInfo s = d.status("ns:w2:sleeper");
        return s.state() == pb::STATE_RUNNING && s.pid() != sleeper;
    })) << d.log();

    // A crash of the daemon: the kept keys are adopted with their pids, and
    // the pool starts none of them again.
    const pid_t w1 = d.status("ns:w1:echo").pid();
    const pid_t w3 = d.status("ns:w3:echo").pid();
    d.kill_hard();
    ASSERT_TRUE(process_alive(w1));
    d.start();
    std::this_thread::sleep_for(1500ms);  // more than a tick of the pool
    EXPECT_EQ(d.status("ns:w1:echo").pid(), w1) << d.log();
    EXPECT_EQ(d.status("ns:w3:echo").pid(), w3) << d.log();
    EXPECT_EQ(d.list().patterns_size(), 4) << d.log();

    EXPECT_EQ(d.stop(), 0) << d.log();
    EXPECT_TRUE(d.tenant_cgroups().empty());
}

}  // namespace
