// pattern-launcher.service under a real systemd: socket activation, Type=notify,
// delegation, stop, SIGKILL and watchdog restarts, strict mode.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "system_support.h"

namespace plsys {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The test pattern (tests/system/patterns/tenant): pl-misbehave, mode from
// the launch request's config, limits cpu 0.5, memory 64Mi, pids 32.
constexpr const char* kTenant = "tenant";
const std::map<std::string, std::string> kSleep = {{"MISBEHAVE_MODE", "sleep"}};

class Service : public ::testing::Test {
protected:
    void SetUp() override { reset_service(); }
    // Every test ends with a stop that must leave nothing behind.
    void TearDown() override { EXPECT_EQ(stop_service_and_clean_up(), ""); }
};

TEST_F(Service, FirstApiCallSocketActivatesItAndNotifyBringsItToActive) {
    ASSERT_EQ(unit_property(kService, "ActiveState"), "inactive");
    ASSERT_EQ(unit_property(kSocketUnit, "ActiveState"), "active");
    EXPECT_EQ(unit_property(kService, "Type"), "notify");

    Api api;
    prism::launcher::HealthResponse health = api.health();  // the socket starts the service
    EXPECT_TRUE(health.healthy());
    EXPECT_GE(health.patterns_loaded(), 2);  // echo (packaged) and the test patterns
    EXPECT_EQ(unit_property(kService, "ActiveState"), "active");
    EXPECT_EQ(unit_property(kService, "SubState"), "running");
    // READY=1 came with a STATUS= line; systemd keeps the latest.
    EXPECT_NE(unit_property(kService, "StatusText"), "");
    EXPECT_EQ(unit_property(kService, "TriggeredBy"), kSocketUnit);
}

TEST_F(Service, TenantCgroupsSitInTheDelegatedScopeWithTheManifestsLimits) {
    Api api;
    auto launched = api.launch_running(kTenant, "limits", kSleep);
    // The daemon stays in its unit's cgroup, which has no children: systemd
    // can always put a restarted main process back there.
    const std::string unit_dir = service_cgroup_dir();
    EXPECT_EQ(cgroup_dir_of(main_pid()), unit_dir);
    EXPECT_TRUE(cgroups_below(unit_dir).empty());
    // Tenants live in the delegated scope, kept by its placeholder.
    EXPECT_EQ(unit_property(kScopeUnit, "ActiveState"), "active");
    EXPECT_EQ(unit_property(kScopeUnit, "Delegate"), "yes");
    const std::string holders = read_file(std::string(kScopeDir) + "/supervisor/cgroup.procs");
    ASSERT_FALSE(holders.empty());
    EXPECT_EQ(read_line("/proc/" + holders.substr(0, holders.find('\n')) + "/cmdline"),
              std::string("pattern-launcher\0hold", 21) + '\0');

    prism::launcher::PatternInfo info = api.status(launched.process_id());
    const std::string key_dir = info.cgroup();
    EXPECT_EQ(key_dir, std::string(kScopeDir) + "/ns:limits/ns:limits:tenant");
    EXPECT_TRUE(cgroup_dir_of(launched.pid()).starts_with(key_dir + "/"))
        << cgroup_dir_of(launched.pid());
    EXPECT_TRUE(info.limits_enforced());
    EXPECT_EQ(read_line(key_dir + "/memory.max"), "67108864");   // memory_limit: 64Mi
    EXPECT_EQ(read_line(key_dir + "/cpu.max"), "50000 100000");  // cpu_limit: 0.5
    EXPECT_EQ(read_line(key_dir + "/pids.max"), "32");           // pids_limit: 32
    api.terminate(launched.process_id());
    EXPECT_FALSE(fs::exists(key_dir));
}

TEST_F(Service, StopEndsEveryPatternGracefullyAndLeavesNoCgroup) {
    Api api;
    auto a = api.launch_running(kTenant, "stop-a", kSleep);
    auto b = api.launch_running("echo", "stop-b");
    const std::string unit_dir = service_cgroup_dir();

    sh_ok("systemctl stop " + std::string(kService));
    EXPECT_EQ(unit_property(kService, "Result"), "success");
    EXPECT_EQ(unit_property(kService, "ExecMainStatus"), "0");
    EXPECT_FALSE(process_exists(a.pid()));
    EXPECT_FALSE(process_exists(b.pid()));
    EXPECT_TRUE(!fs::exists(unit_dir) || cgroups_below(unit_dir).empty());
    // The placeholder is gone with the tenants, and systemd with it the scope.
    EXPECT_TRUE(wait_until([] { return !fs::exists(kScopeDir); }, 30s))
        << sh(std::string("find ") + kScopeDir).output;
    EXPECT_EQ(unit_property(kScopeUnit, "ActiveState"), "inactive");
    // SIGTERM ended both: the tenant dies of it, echo handles it and exits 0.
    // A SIGKILL at the end of the grace period would read "killed by signal 9".
    const std::string log = sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
    EXPECT_NE(log.find(a.process_id() + ": stopped: pattern killed by signal 15"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find(b.process_id() + ": stopped: pattern exited with code 0"), std::string::npos)
        << log;
}

// Kills the daemon with `systemctl kill ARGS`, waits for systemd's restart
// and gives `api` a new channel (the old connection died with the daemon).
void kill_and_wait_for_restart(const std::string& args, Api& api) {
    const pid_t old_main = main_pid();
    const int before = restarts();
    sh_ok("systemctl kill " + args + " " + kService);
    ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 120s))
        << "systemd did not restart the launcher";
    EXPECT_NE(main_pid(), old_main);
    api = Api();
}

TEST_F(Service, AfterSigkillOfTheDaemonTheRestartedOneAdoptsItsPatterns) {
    Api api;
    auto launched = api.launch_running(kTenant, "adopt", kSleep);
    kill_and_wait_for_restart("--kill-who=main -s KILL", api);
    // Same process, same pid: adopted, not restarted; and still controllable.
    prism::launcher::PatternInfo info = api.status(launched.process_id());
    EXPECT_EQ(info.pid(), launched.pid());
    EXPECT_EQ(info.state(), prism::launcher::STATE_RUNNING);
    EXPECT_EQ(echo_roundtrip(api.launch_running("echo", "adopt").address(), "x").reply, "x");
    api.terminate(launched.process_id());
    EXPECT_FALSE(process_exists(launched.pid()));
}

TEST_F(Service, SystemctlKillOfTheUnitLeavesTheTenantsWhichTheRestartAdopts) {
    Api api;
    auto tenant = api.launch_running(kTenant, "killall", kSleep);
    auto echo = api.launch_running("echo", "killall");
    // Every process of the unit gets SIGKILL; the tenants are not in it.
    kill_and_wait_for_restart("-s KILL", api);
    for (const auto& launched : {tenant, echo}) {
        prism::launcher::PatternInfo info = api.status(launched.process_id());
        EXPECT_EQ(info.pid(), launched.pid()) << launched.process_id();
        EXPECT_EQ(info.state(), prism::launcher::STATE_RUNNING) << launched.process_id();
    }
    // The adopted echo still serves on the address it had (its socket was
    // recovered), and a relaunch of its key reuses it.
    EXPECT_EQ(echo_roundtrip(echo.address(), "after").reply, "after");
    auto again = api.launch_running("echo", "killall");
    EXPECT_TRUE(again.reused());
    EXPECT_EQ(again.pid(), echo.pid());
}

TEST_F(Service, WithOrphanPolicyKillTheRestartedDaemonKillsWhatItFinds) {
    set_config_value("orphan_policy", "kill");
    Api api;
    auto launched = api.launch_running(kTenant, "orphans", kSleep);
    const std::string key_dir = api.status(launched.process_id()).cgroup();
    kill_and_wait_for_restart("--kill-who=main -s KILL", api);
    api.health();  // READY: recovery is done
    EXPECT_FALSE(process_exists(launched.pid()));
    // The process is killed, the key is not lost: it starts again, on its address.
    ASSERT_TRUE(api.known(launched.process_id()));
    prism::launcher::PatternInfo info;
    ASSERT_TRUE(wait_until(
        [&] {
            info = api.status(launched.process_id());
            return info.state() == prism::launcher::STATE_RUNNING && info.pid() != 0;
        },
        60s))
        << info.DebugString();
    EXPECT_NE(info.pid(), launched.pid());
    EXPECT_EQ(info.address(), launched.address());
    EXPECT_NE(info.recovery().find("orphan_policy is kill"), std::string::npos) << info.recovery();
    api.terminate(launched.process_id());
    EXPECT_FALSE(fs::exists(key_dir));
    EXPECT_TRUE(sh("ls /run/pattern-launcher/state").output.empty());
}

TEST_F(Service, AFrozenDaemonIsRestartedByTheWatchdogAndAdoptsItsPatterns) {
    // A short watchdog; SIGABRT cannot end a stopped process, so the abort
    // timeout's SIGKILL does.
    add_service_dropin("watchdog", "[Service]\nWatchdogSec=6s\nTimeoutAbortSec=5s\n");
    Api api;
    auto launched = api.launch_running(kTenant, "watchdog", kSleep);
    const pid_t frozen = main_pid();
    const int before = restarts();

    ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
    ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 180s))
        << "the watchdog did not restart the frozen launcher";
    EXPECT_NE(main_pid(), frozen);
    api = Api();
    const std::string log = sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
    EXPECT_NE(log.find("Watchdog timeout"), std::string::npos) << log;
    prism::launcher::PatternInfo info = api.status(launched.process_id());
    EXPECT_EQ(info.pid(), launched.pid());
    EXPECT_EQ(info.state(), prism::launcher::STATE_RUNNING);
    api.terminate(launched.process_id());
}

// A session pool under the real service (docs/late-binding.md): its
// processes wait in the delegated scope below their tenant's group, each
// with the manifest's limits enforced by the kernel; a SESSION launch claims
// one, which keeps that group and those limits; the pool refills; the stop
// leaves nothing of either. The pattern is added for this test only (a pool
// would start processes in every other test).
TEST_F(Service, SessionPoolProcessesWaitInTheScopeWithTheirLimitsAndAClaimKeepsThem) {
    const std::string dir = "/usr/lib/pattern-launcher/patterns/pooled";
    struct RemovedAtTheEnd {
        std::string dir;
        ~RemovedAtTheEnd() { fs::remove_all(dir); }
    } removed{dir};
    fs::create_directories(dir);
    fs::copy_file("/usr/lib/pattern-launcher/patterns/tenant/pl-misbehave", dir + "/pl-misbehave",
                  fs::copy_options::overwrite_existing);
    std::ofstream(dir + "/manifest.yaml")
        << ("name: pooled\nversion: 1.0.0\nexecutable: ./pl-misbehave\n"
            "isolation_level: session\nlate_binding: true\n"
            "warm_pool:\n  sessions: {pool-t: 2}\n"
            "healthcheck:\n  type: notify\n  start_timeout: 60s\n"
            "resources:\n  cpu_limit: 0.5\n  memory_limit: 64Mi\n  pids_limit: 32\n"
            "environment:\n  MISBEHAVE_MODE: claim\n  MISBEHAVE_ARGS: ready\n");
    Api api;
    api.health();  // starts the service, which starts the pool
    const std::string tenant_dir = std::string(kScopeDir) + "/ns:pool-t";
    auto pool_groups = [&] {
        std::vector<std::string> out;
        for (const std::string& group : cgroups_below(tenant_dir)) {
            const std::string name = fs::path(group).filename();
            if (name.starts_with("pool:") && group.find("/run.") == std::string::npos)
                out.push_back(group);
        }
        return out;
    };
    ASSERT_TRUE(wait_until([&] { return pool_groups().size() == 2; }, 60s))
        << sh("find " + tenant_dir).output;
    for (const std::string& group : pool_groups()) {
        EXPECT_EQ(read_line(group + "/memory.max"), "67108864") << group;
        EXPECT_EQ(read_line(group + "/cpu.max"), "50000 100000") << group;
        EXPECT_EQ(read_line(group + "/pids.max"), "32") << group;
    }
    std::this_thread::sleep_for(2s);  // both past READY=1: pooled

    prism::launcher::LaunchResponse claimed;
    grpc::Status status = api.launch_session("pooled", "pool-t", "s1", &claimed);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(claimed.state(), prism::launcher::STATE_RUNNING) << claimed.error();
    const prism::launcher::PatternInfo info = api.status(claimed.process_id());
    EXPECT_TRUE(fs::path(info.cgroup()).filename().string().starts_with("pool:")) << info.cgroup();
    EXPECT_TRUE(info.limits_enforced());
    EXPECT_EQ(read_line(info.cgroup() + "/memory.max"), "67108864");
    EXPECT_TRUE(cgroup_dir_of(claimed.pid()).starts_with(info.cgroup() + "/"))
        << cgroup_dir_of(claimed.pid());
    // Refilled: two unclaimed groups again, besides the claimed one.
    EXPECT_TRUE(wait_until([&] { return pool_groups().size() == 3; }, 60s))
        << sh("find " + tenant_dir).output;
    api.terminate(claimed.process_id());
    EXPECT_FALSE(fs::exists(info.cgroup()));

    EXPECT_EQ(stop_service_and_clean_up(), "");
}

TEST_F(Service, StrictModeRefusesALimitWhoseControllerIsNotDelegated) {
    // Only cpu and pids are delegated; the packaged config is strict.
    add_service_dropin("no-memory", "[Service]\nDelegate=\nDelegate=cpu pids\n");
    Api api;
    prism::launcher::LaunchResponse response;
    grpc::Status status = api.launch(kTenant, "strict", kSleep, &response);
    EXPECT_EQ(unit_property(kScopeUnit, "DelegateControllers"), "cpu pids");
    const std::string error = status.ok() ? response.error() : status.error_message();
    EXPECT_TRUE(!status.ok() || response.state() == prism::launcher::STATE_FAILED)
        << "launched although memory.max cannot be enforced";
    EXPECT_NE(error.find("limits_enforcement is strict and cannot enforce memory.max=67108864: "
                         "controller 'memory' is not delegated to " +
                         std::string(kScopeDir) + " (delegated: cpu pids)"),
              std::string::npos)
        << error;
    // Nothing of the refused launch is left.
    EXPECT_EQ(cgroups_below(kScopeDir),
              std::vector<std::string>{std::string(kScopeDir) + "/supervisor"});
}

}  // namespace
}  // namespace plsys
