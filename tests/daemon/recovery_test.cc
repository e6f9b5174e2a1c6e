// The launcher is SIGKILLed and started again: nothing is lost track of.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
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
    EXPECT_NE(log.find("killing 2 process(es) in " + d.cgroup_root() + "/ns:bad/ns:bad:sleeper"),
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

// ---- identities (launcher.identity_range) ---------------------------------------

constexpr std::uint32_t kFirstId = 1879048192;  // the default identity_range
constexpr std::uint32_t kLastId = 1879113727;
// A pattern that names its user (a plain uid outside the range) takes no identity.
constexpr const char* kFixedUser = "sandbox:\n  user: \"65533\"\n";

// <run>/state/<process id, bytes outside [a-z0-9._-] as %hh>.state
std::string record_of(TestDaemon& d, const std::string& process_id) {
    std::string name;
    for (const char c : process_id) {
        const bool plain =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02x", static_cast<unsigned char>(c));
        name += plain ? std::string(1, c) : std::string(hex);
    }
    return d.dir() + "/run/state/" + name + ".state";
}

// The record's identity, 0 when it has no identity line.
std::uint32_t recorded_identity(const std::string& record) {
    std::ifstream in(record);
    EXPECT_TRUE(in.good()) << record;
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("identity="))
            return static_cast<std::uint32_t>(std::stoul(line.substr(9)));
    }
    return 0;
}

// Replaces the record's identity line by `line` ("" removes it).
void rewrite_identity(const std::string& record, const std::string& line) {
    std::ifstream in(record);
    std::string text;
    for (std::string l; std::getline(in, l);) {
        if (l.starts_with("identity=")) {
            if (!line.empty()) text += line + "\n";
        } else {
            text += l + "\n";
        }
    }
    in.close();
    std::ofstream(record, std::ios::trunc) << text;
}

// Real and effective uid and gid, as "uid/euid/gid/egid".
std::string runs_as(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string out;
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("Uid:") && !line.starts_with("Gid:")) continue;
        std::istringstream fields(line.substr(4));
        std::string real, effective;
        fields >> real >> effective;
        out += (out.empty() ? "" : "/") + real + "/" + effective;
    }
    return out;
}

std::string as(std::uint32_t id) {
    const std::string n = std::to_string(id);
    return n + "/" + n + "/" + n + "/" + n;
}

TEST(Identity, EveryKeyRunsAsItsOwnAndAFixedUserTakesNone) {
    TestDaemon d;
    add_patterns(d);
    d.add_pattern("fixed", misbehave_manifest("sleep", "", kFixedUser));
    d.start();
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 4; ++i) {
        pb::LaunchResponse r;
        const std::string pattern = i % 2 ? "echo" : "sleeper";
        ASSERT_TRUE(
            d.launch(pattern, pb::ISOLATION_NAMESPACE, "t" + std::to_string(i), "", &r).ok())
            << d.log();
        const std::uint32_t id = recorded_identity(record_of(d, r.process_id()));
        EXPECT_GE(id, kFirstId) << r.process_id();
        EXPECT_LE(id, kLastId) << r.process_id();
        EXPECT_TRUE(seen.insert(id).second) << "identity " << id << " given twice";
        EXPECT_EQ(runs_as(r.pid()), as(id)) << r.process_id();
    }
    pb::LaunchResponse fixed;
    ASSERT_TRUE(d.launch("fixed", pb::ISOLATION_NAMESPACE, "r", "", &fixed).ok()) << d.log();
    EXPECT_EQ(recorded_identity(record_of(d, fixed.process_id())), 0u);
    EXPECT_EQ(runs_as(fixed.pid()).substr(0, 12), "65533/65533/");
}

TEST(Identity, AnExhaustedRangeRefusesNewKeysUntilOneIsGone) {
    TestDaemon d;
    add_patterns(d);
    d.add_pattern("fixed", misbehave_manifest("sleep", "", kFixedUser));
    d.add_config("identity_range: 1879048192-1879048193");
    d.start();
    pb::LaunchResponse a, b, c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(record_of(d, a.process_id()));
    const grpc::Status refused = d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(refused.error_message().find(
                  "no free identity in identity_range 1879048192-1879048193 (2 in use)"),
              std::string::npos)
        << refused.error_message();
    // A key that names its user needs no identity.
    pb::LaunchResponse fixed;
    EXPECT_TRUE(d.launch("fixed", pb::ISOLATION_NAMESPACE, "r", "", &fixed).ok()) << d.log();

    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(a.process_id(), &t).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    EXPECT_EQ(recorded_identity(record_of(d, c.process_id())), id_a);
    EXPECT_EQ(runs_as(c.pid()), as(id_a));
}

TEST(Recovery, AdoptedKeysKeepTheirIdentitiesAndNewKeysGetOthers) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a, b;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(record_of(d, a.process_id()));
    const std::uint32_t id_b = recorded_identity(record_of(d, b.process_id()));
    d.kill_hard();
    d.start();
    ASSERT_EQ(d.list().total_count(), 2) << d.log();
    EXPECT_EQ(recorded_identity(record_of(d, a.process_id())), id_a);
    EXPECT_EQ(recorded_identity(record_of(d, b.process_id())), id_b);

    // Held by the adopted keys: a new key gets another id.
    pb::LaunchResponse c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    const std::uint32_t id_c = recorded_identity(record_of(d, c.process_id()));
    EXPECT_NE(id_c, id_a);
    EXPECT_NE(id_c, id_b);

    // An adopted key's restarted process runs as the same identity.
    ::kill(a.pid(), SIGKILL);
    pb::PatternInfo back;
    for (int i = 0; i < 1000; ++i) {
        back = d.status(a.process_id());
        if (back.state() == pb::RUNNING && back.pid() != 0 && back.pid() != a.pid()) break;
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(back.state(), pb::RUNNING) << d.log();
    EXPECT_EQ(runs_as(back.pid()), as(id_a));
    EXPECT_EQ(recorded_identity(record_of(d, a.process_id())), id_a);
}

TEST(Recovery, AProcessThatDoesNotRunAsItsRecordedIdentityIsKilled) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a, b, c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(record_of(d, a.process_id()));
    const std::uint32_t id_b = recorded_identity(record_of(d, b.process_id()));
    const std::uint32_t id_c = recorded_identity(record_of(d, c.process_id()));
    d.kill_hard();
    // a claims b's identity; c claims none although it runs as one of the range.
    rewrite_identity(record_of(d, a.process_id()), "identity=" + std::to_string(id_b));
    rewrite_identity(record_of(d, c.process_id()), "");
    d.start();
    EXPECT_FALSE(process_alive(a.pid()));
    EXPECT_TRUE(process_alive(b.pid()));
    EXPECT_FALSE(process_alive(c.pid()));
    EXPECT_EQ(d.list().total_count(), 1);
    const std::string log = d.log();
    EXPECT_NE(log.find("not adopting ns:a:sleeper (pid " + std::to_string(a.pid()) +
                       "): runs as uid " + std::to_string(id_a) + " (effective " +
                       std::to_string(id_a) + "), not as its identity " + std::to_string(id_b)),
              std::string::npos)
        << log;
    EXPECT_NE(
        log.find("not adopting ns:c:sleeper (pid " + std::to_string(c.pid()) + "): runs as uid " +
                 std::to_string(id_c) + " (effective " + std::to_string(id_c) +
                 ") from identity_range, but its state record names no identity"),
        std::string::npos)
        << log;
}

TEST(Recovery, AnIdentityOutsideTheNewRangeIsNotAdopted) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(record_of(d, a.process_id()));
    d.kill_hard();
    d.add_config("identity_range: 1879113728-1879179263");
    d.start();
    EXPECT_FALSE(process_alive(a.pid()));
    EXPECT_EQ(d.list().total_count(), 0);
    EXPECT_NE(
        d.log().find("not adopting ns:a:sleeper (pid " + std::to_string(a.pid()) + "): identity " +
                     std::to_string(id_a) + " is outside identity_range 1879113728-1879179263"),
        std::string::npos)
        << d.log();
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
