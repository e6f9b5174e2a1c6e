// Issue 10's hostile tenant: pl-misbehave's `hostile` mode, launched with the
// default sandbox (no `sandbox` section) next to a victim tenant that holds a
// secret, tries every way out it knows (tests/fixtures/hostile.cc). Every
// attempt must be DENIED and the victim untouched. Each attempt is reported
// by name, so a failure says which wall is missing.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "../fixtures/hostile_report.h"
#include "sandbox/unique_fd.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// No `sandbox` section: what every tenant gets by default. `extra` adds one.
std::string tenant_manifest(const std::string& mode, const std::string& extra = "") {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck:\n"
           "  type: notify\n"
           "  start_timeout: 30s\n"
           "environment:\n"
           "  MISBEHAVE_MODE: " +
           mode + "\n" + extra +
           // What run_scenario's launches send: the victim's secret, the
           // hostile mode's targets.
           "config_keys: [SECRET, \"VICTIM_*\", LAUNCHER_CGROUP_ROOT, API_SOCKET, RUNTIME_DIR,\n"
           "              STATE_DIR, LOG_DIR, MARKER, ABSTRACT_SOCKET]\n";
}

std::string random_hex() {
    std::random_device rd;
    std::uniform_int_distribution<std::uint64_t> dist;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
    return buf;
}

// "Uid:" or "Gid:" of /proc/PID/status: the real id, read on the host side.
std::string status_id(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(key + ":")) {
            std::istringstream fields(line.substr(key.size() + 1));
            std::string real;
            fields >> real;
            return real;
        }
    }
    return "<none>";
}

// What a pattern process wrote: its log file, or its journal stream where
// journald runs (src/pattern_logs.h).
std::string pattern_output(const TestDaemon& d, const std::string& process_id) {
    if (::access("/run/systemd/journal/stdout", W_OK) == 0)
        return run_command({"/usr/bin/journalctl", "--no-pager", "-o", "cat", "-t", process_id})
            .out;
    std::ifstream in(d.dir() + "/run/logs/" + process_id + ".log");
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A listening abstract unix socket in the host's network namespace, for the
// fixture to try to reach (Landlock's scoping must stop it under `network: host`).
class AbstractListener {
public:
    explicit AbstractListener(const std::string& name)
        : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        name.copy(addr.sun_path + 1, sizeof addr.sun_path - 2);
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        ok_ = fd_ && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
              ::listen(fd_.get(), 8) == 0;
    }
    bool ok() const { return ok_; }
    // True if anyone connected (the listener never accepts otherwise).
    bool reached() const {
        int conn = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) return false;
        ::close(conn);
        return true;
    }

private:
    sandbox::UniqueFd fd_;
    bool ok_ = false;
};

class HostileTenant : public ::testing::Test {
protected:
    // Launches the victim and the hostile tenant (manifest `hostile_extra`
    // added to the default one), then checks every outcome: only the names
    // in `may_be_allowed` may be anything but DENIED (or CREATED, for the
    // markers).
    void run_scenario(const std::string& hostile_extra,
                      const std::set<std::string>& may_be_allowed) {
        const std::string marker = "pl-hostile-" + std::to_string(::getpid()) + "-" + random_hex();
        const std::string secret = "s3cr3t-" + random_hex();
        AbstractListener abstract(marker);
        ASSERT_TRUE(abstract.ok()) << "binding @" << marker;

        d.add_pattern("victim", tenant_manifest("sleep"));
        d.add_pattern("hostile", tenant_manifest("hostile", hostile_extra));
        d.start();

        pb::LaunchResponse victim;
        ASSERT_TRUE(d.launch("victim", pb::ISOLATION_NAMESPACE, "tenant-victim", "", &victim,
                             {{"SECRET", secret}})
                        .ok())
            << d.log();
        const pb::PatternInfo victim_before = d.status(victim.process_id());
        ASSERT_EQ(read_environ(victim.pid(), "SECRET"), secret);
        const std::string victim_port = victim.address().substr(victim.address().rfind(':') + 1);

        pb::LaunchResponse evil;
        grpc::Status launched =
            d.launch("hostile", pb::ISOLATION_NAMESPACE, "tenant-evil", "", &evil,
                     {{"VICTIM_PID", std::to_string(victim.pid())},
                      {"VICTIM_PORT", victim_port},
                      {"VICTIM_CGROUP", victim_before.cgroup()},
                      {"LAUNCHER_CGROUP_ROOT", d.cgroup_root()},
                      {"API_SOCKET", d.socket()},
                      {"RUNTIME_DIR", d.dir() + "/run"},
                      {"STATE_DIR", d.dir() + "/run/state"},
                      {"LOG_DIR", d.dir() + "/run/logs"},
                      {"MARKER", marker},
                      {"ABSTRACT_SOCKET", "@" + marker}});
        std::string output = pattern_output(d, "ns:tenant-evil:hostile");
        ASSERT_TRUE(launched.ok()) << launched.error_message() << "\nits output:\n"
                                   << output << "\nlauncher log:\n"
                                   << d.log();
        // READY=1 comes after "HOSTILE done"; the log file may still lag.
        for (int i = 0; i < 300 && output.find("HOSTILE done") == std::string::npos; ++i) {
            std::this_thread::sleep_for(100ms);
            output = pattern_output(d, "ns:tenant-evil:hostile");
        }
        report_ = hostile_report::parse(output);
        const hostile_report::Report& report = report_;

        // The markers were made in the pattern's own temp dirs, not the host's.
        for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"}) {
            const std::string path = std::string(dir) + "/" + marker;
            EXPECT_FALSE(fs::exists(path)) << path << " is visible on the host";
            std::error_code ec;
            fs::remove(path, ec);
        }

        ASSERT_TRUE(report.done.has_value()) << "no 'HOSTILE done' in its output:\n" << output;
        EXPECT_EQ(*report.done, static_cast<int>(report.attempts.size())) << output;
        EXPECT_GE(report.attempts.size(), 30u) << output;
        for (const std::string& name : hostile_report::marker_attempts()) {
            const hostile_report::Attempt* a = report.find(name);
            ASSERT_NE(a, nullptr) << name << " missing:\n" << output;
        }
        const std::string breaches = hostile_report::breaches(report, may_be_allowed);
        EXPECT_TRUE(breaches.empty())
            << "attempts that got through (of " << report.attempts.size() << "):\n"
            << breaches << "\nfull output:\n"
            << output;
        EXPECT_FALSE(abstract.reached()) << "the hostile tenant reached @" << marker;

        // Its own identity: neither root nor the victim's.
        const std::string evil_uid = status_id(evil.pid(), "Uid");
        const std::string evil_gid = status_id(evil.pid(), "Gid");
        EXPECT_NE(evil_uid, "0");
        EXPECT_NE(evil_gid, "0");
        EXPECT_NE(evil_uid, status_id(victim.pid(), "Uid"));
        EXPECT_NE(evil_gid, status_id(victim.pid(), "Gid"));

        // The victim is untouched: same process, healthy, its secret intact.
        const pb::PatternInfo victim_after = d.status(victim.process_id());
        EXPECT_EQ(victim_after.pid(), victim_before.pid());
        EXPECT_EQ(victim_after.state(), pb::STATE_RUNNING);
        EXPECT_TRUE(victim_after.healthy());
        EXPECT_TRUE(process_alive(victim.pid()));
        EXPECT_EQ(read_environ(victim.pid(), "SECRET"), secret);
        for (const std::string& group : d.tenant_cgroups())
            EXPECT_EQ(group.find(marker), std::string::npos) << "left behind: " << group;
    }

    TestDaemon d;
    hostile_report::Report report_;
};

TEST_F(HostileTenant, TheDefaultSandboxDeniesEveryWayOut) {
    run_scenario("", {});
}

// `network: host` gives up the network wall, and only that: the victim's
// port on the host's loopback is reachable, nothing else is (abstract unix
// sockets stay out of reach through Landlock's scoping).
TEST_F(HostileTenant, WithHostNetworkOnlyTheVictimsPortIsReachable) {
    run_scenario("sandbox:\n  network: host\n", {"victim_port_connect"});
    // Proves the variant really ran with the host's network.
    const hostile_report::Attempt* port = report_.find("victim_port_connect");
    ASSERT_NE(port, nullptr);
    EXPECT_EQ(port->outcome, "ALLOWED") << port->detail;
}

}  // namespace
