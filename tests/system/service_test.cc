// pattern-launcher.service under a real systemd: socket activation, Type=notify,
// delegation, stop, SIGKILL and watchdog restarts, strict mode.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

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

TEST_F(Service, TenantCgroupsSitUnderTheUnitWithTheManifestsLimits) {
    Api api;
    auto launched = api.launch_running(kTenant, "limits", kSleep);
    const std::string unit_dir = service_cgroup_dir();
    // The daemon moved itself into "supervisor"; tenants are its siblings.
    EXPECT_EQ(cgroup_dir_of(main_pid()), unit_dir + "/supervisor");

    prism::launcher::PatternInfo info = api.status(launched.process_id());
    const std::string key_dir = info.cgroup();
    EXPECT_TRUE(key_dir.starts_with(unit_dir + "/")) << key_dir << " is not below " << unit_dir;
    EXPECT_TRUE(cgroup_dir_of(launched.pid()).starts_with(key_dir + "/"))
        << cgroup_dir_of(launched.pid());
    EXPECT_TRUE(info.limits_enforced());
    EXPECT_EQ(read_line(key_dir + "/memory.max"), "67108864");   // memory_limit: 64Mi
    EXPECT_EQ(read_line(key_dir + "/cpu.max"), "50000 100000");  // cpu_limit: 0.5
    EXPECT_EQ(read_line(key_dir + "/pids.max"), "32");           // pids_limit: 32
    // Delegate=yes: systemd gave the unit every controller the launcher uses.
    const std::string controllers = read_line(unit_dir + "/cgroup.controllers");
    for (const char* c : {"cpu", "memory", "pids"})
        EXPECT_NE(controllers.find(c), std::string::npos) << controllers;
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
    // SIGTERM ended both (the grace period was not needed).
    const std::string log = sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
    for (const auto& id : {a.process_id(), b.process_id()}) {
        EXPECT_NE(log.find(id + ": stopped: pattern killed by signal 15"), std::string::npos)
            << id << " not stopped by SIGTERM; journal:\n"
            << log;
    }
}

TEST_F(Service, AfterSigkillOfTheDaemonTheRestartedOneAdoptsItsPatterns) {
    Api api;
    auto launched = api.launch_running(kTenant, "adopt", kSleep);
    const pid_t old_main = main_pid();
    const int before = restarts();

    sh_ok("systemctl kill --kill-who=main -s KILL " + std::string(kService));
    ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 120s))
        << "systemd did not restart the launcher";
    EXPECT_NE(main_pid(), old_main);
    // Same process, same pid: adopted, not restarted; and still controllable.
    prism::launcher::PatternInfo info = api.status(launched.process_id());
    EXPECT_EQ(info.pid(), launched.pid());
    EXPECT_EQ(info.state(), prism::launcher::RUNNING);
    EXPECT_TRUE(process_exists(launched.pid()));
    api.terminate(launched.process_id());
    EXPECT_FALSE(process_exists(launched.pid()));
}

TEST_F(Service, AfterSigkillOfTheWholeUnitNothingIsLeftUntracked) {
    Api api;
    auto launched = api.launch_running(kTenant, "killall", kSleep);
    const std::string key_dir = api.status(launched.process_id()).cgroup();
    const int before = restarts();

    // systemctl kill signals every process of the unit: daemon and patterns.
    sh_ok("systemctl kill -s KILL " + std::string(kService));
    ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 120s))
        << "systemd did not restart the launcher";
    api.health();  // READY: recovery is done
    EXPECT_FALSE(process_exists(launched.pid()));
    // The dead process's key is not reported as running, and its cgroup and
    // state record are gone; only the new daemon's supervisor is left.
    EXPECT_FALSE(api.known(launched.process_id()) &&
                 api.status(launched.process_id()).state() == prism::launcher::RUNNING);
    EXPECT_FALSE(fs::exists(key_dir));
    EXPECT_EQ(cgroups_below(service_cgroup_dir()),
              std::vector<std::string>{service_cgroup_dir() + "/supervisor"});
    EXPECT_TRUE(sh("ls /run/pattern-launcher/state").output.empty());
    // The same key launches again.
    auto again = api.launch_running(kTenant, "killall", kSleep);
    EXPECT_NE(again.pid(), launched.pid());
    api.terminate(again.process_id());
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
    const std::string log = sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
    EXPECT_NE(log.find("Watchdog timeout"), std::string::npos) << log;
    prism::launcher::PatternInfo info = api.status(launched.process_id());
    EXPECT_EQ(info.pid(), launched.pid());
    EXPECT_EQ(info.state(), prism::launcher::RUNNING);
    api.terminate(launched.process_id());
}

TEST_F(Service, StrictModeRefusesALimitWhoseControllerIsNotDelegated) {
    // Only cpu and pids are delegated, in a slice of its own where no other
    // unit asks for memory accounting: the unit's cgroup has no memory
    // controller. The packaged config has limits_enforcement: strict.
    add_service_dropin("no-memory",
                       "[Service]\nSlice=pl-strict.slice\nDelegate=\nDelegate=cpu pids\n"
                       "MemoryAccounting=no\n");
    Api api;
    prism::launcher::LaunchResponse response;
    grpc::Status status = api.launch(kTenant, "strict", kSleep, &response);
    const std::string unit_dir = service_cgroup_dir();
    ASSERT_EQ(read_line(unit_dir + "/cgroup.controllers").find("memory"), std::string::npos)
        << "the test setup failed: memory is in " << unit_dir << "/cgroup.controllers";
    const std::string error = status.ok() ? response.error() : status.error_message();
    EXPECT_TRUE(!status.ok() || response.state() == prism::launcher::FAILED)
        << "launched although memory.max cannot be enforced";
    EXPECT_NE(error.find("limits_enforcement is strict"), std::string::npos) << error;
    EXPECT_NE(error.find("controller 'memory' is not delegated"), std::string::npos) << error;
    // Nothing of the refused launch is left.
    EXPECT_EQ(cgroups_below(unit_dir), std::vector<std::string>{unit_dir + "/supervisor"});
}

}  // namespace
}  // namespace plsys
