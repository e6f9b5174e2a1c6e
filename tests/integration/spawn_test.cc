// spawn(): placement, fd plan, environment and failure reporting.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/error.h"
#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using pltest::TestTree;

TEST(Spawn, ChildIsBornInItsCgroup) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("born-here");
    auto spec = pltest::misbehave({"report"});
    spec.cgroup_fd = group.dir_fd();
    pltest::Captured run = pltest::run_captured(spec);
    ASSERT_TRUE(run.status.success()) << run.status.describe();
    EXPECT_EQ(pltest::parse_report(run.output)["cgroup"], t.relative(group.path()));
    EXPECT_TRUE(sandbox::clone_into_cgroup_available())
        << "this kernel (6.x) should accept CLONE_INTO_CGROUP";
}

TEST(Spawn, ReportsPlacementAtClone) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("placement");
    auto spec = pltest::misbehave({"exit", "0"});
    spec.cgroup_fd = group.dir_fd();
    sandbox::SpawnResult result = sandbox::spawn(spec);
    EXPECT_TRUE(result.joined_cgroup_at_clone);
    result.process.reap();
}

TEST(Spawn, StdinIsDevNullAndOnlyPlannedFdsAreOpen) {
    // An fd the parent leaks without O_CLOEXEC must not reach the child.
    int leaked = ::dup(STDERR_FILENO);
    ASSERT_GE(leaked, 0);
    auto report = pltest::parse_report(pltest::run_captured(pltest::misbehave({"report"})).output);
    ::close(leaked);
    EXPECT_EQ(report["fd0"], "/dev/null");
    EXPECT_EQ(report["fd2"], "/dev/null");
    EXPECT_EQ(report["fds"], "0,1,2");
    EXPECT_EQ(report.count("env.LISTEN_FDS"), 0u);
}

TEST(Spawn, EnvironmentWorkingDirectoryAndSession) {
    auto spec = pltest::misbehave({"report"});
    spec.environment.push_back("PATTERN_NAME=echo");
    spec.working_directory = "/tmp";
    pltest::Captured run = pltest::run_captured(spec);
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["env.PATTERN_NAME"], "echo");
    EXPECT_EQ(report["env.TEST_MARKER"], "sandbox");
    EXPECT_EQ(report.count("env.HOME"), 0u) << "only the given environment is passed";
    EXPECT_EQ(report["cwd"], "/tmp");
    EXPECT_EQ(report["sid"], report["pid"]) << "the child leads a new session";
}

TEST(Spawn, ResourceLimits) {
    auto spec = pltest::misbehave({"report"});
    spec.resource_limits = {{RLIMIT_NOFILE, 64, 128}, {RLIMIT_CORE, 0, 0}};
    auto report = pltest::parse_report(pltest::run_captured(spec).output);
    EXPECT_EQ(report["rlimit_nofile"], "64:128");
    EXPECT_EQ(report["rlimit_core"], "0:0");
}

TEST(Spawn, PassedFdsFollowTheSocketActivationProtocol) {
    pltest::Listener grpc = pltest::listen_tcp();
    pltest::Listener health = pltest::listen_tcp();
    auto spec = pltest::misbehave({"report"});
    spec.passed_fds = {{grpc.fd.get(), "grpc"}, {health.fd.get(), "health"}};
    pltest::Captured run = pltest::run_captured(spec);
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["fds"], "0,1,2,3,4");
    EXPECT_EQ(report["fd3.type"], "tcp-listen");
    EXPECT_EQ(report["fd4.type"], "tcp-listen");
    EXPECT_EQ(report["env.LISTEN_FDS"], "2");
    EXPECT_EQ(report["env.LISTEN_FDNAMES"], "grpc:health");
    EXPECT_EQ(report["env.LISTEN_PID"], report["pid"]);
}

TEST(Spawn, HandedOverSocketIsServedByTheChild) {
    pltest::Listener listener = pltest::listen_tcp();
    auto spec = pltest::misbehave({"echo-listen-fds"});
    spec.passed_fds = {{listener.fd.get(), "grpc"}};
    sandbox::SpawnResult child = sandbox::spawn(spec);
    EXPECT_EQ(pltest::echo_roundtrip(listener.port, "hello sandbox"), "hello sandbox");
    child.process.send_signal(SIGTERM);
    EXPECT_TRUE(sandbox::decode_exit(child.process.reap()).success());
}

TEST(Spawn, EchoPatternServesItsSocketFromAnIsolatedNetworkNamespace) {
    pltest::Listener listener = pltest::listen_tcp();
    sandbox::SpawnSpec spec;
    spec.executable = PL_ECHO;
    spec.namespaces.net = true;
    spec.namespaces.mount = true;
    spec.namespaces.pid = true;
    // The spawned process is the init; it forwards the SIGTERM below to echo
    // and exits with echo's status.
    pltest::use_init(spec);
    spec.passed_fds = {{listener.fd.get(), "grpc"}};
    sandbox::SpawnResult child = sandbox::spawn(spec);
    EXPECT_EQ(pltest::echo_roundtrip(listener.port, "across namespaces"), "across namespaces");
    child.process.send_signal(SIGTERM);
    EXPECT_TRUE(sandbox::decode_exit(child.process.reap()).success());
}

bool no_children_left() {
    siginfo_t info{};
    return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

TEST(Spawn, ExecFailureReturnsStepAndErrnoAndLeavesNothing) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("exec-fails");
    int fds_before = pltest::count_open_fds();
    sandbox::SpawnSpec spec;
    spec.executable = "/nonexistent/pattern";
    spec.cgroup_fd = group.dir_fd();
    try {
        sandbox::spawn(spec);
        FAIL() << "spawn of a missing executable must throw";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kExec);
        EXPECT_EQ(e.error_code(), ENOENT);
        EXPECT_NE(std::string(e.what()).find("execve failed"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("/nonexistent/pattern"), std::string::npos);
    }
    EXPECT_TRUE(no_children_left()) << "the failed child must be reaped";
    EXPECT_EQ(pltest::count_open_fds(), fds_before);
    EXPECT_FALSE(group.populated());
    std::string path = group.path();
    group.remove();
    EXPECT_TRUE(pltest::list_dir(path).empty());
}

TEST(Spawn, EarlierStepFailureNamesTheStep) {
    auto spec = pltest::misbehave({"report"});
    spec.working_directory = "/nonexistent-dir";
    try {
        sandbox::spawn(spec);
        FAIL() << "chdir to a missing directory must fail";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kWorkingDirectory);
        EXPECT_EQ(e.error_code(), ENOENT);
        EXPECT_NE(std::string(e.what()).find("chdir"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(no_children_left());
}

TEST(Spawn, InvalidSpecsAreRejectedBeforeCloning) {
    auto relative = pltest::misbehave({});
    relative.executable = "pl-misbehave";
    EXPECT_THROW(sandbox::spawn(relative), sandbox::ConfigError);

    auto listen = pltest::misbehave({});
    listen.environment.push_back("LISTEN_FDS=5");
    EXPECT_THROW(sandbox::spawn(listen), sandbox::ConfigError);

    auto bad_env = pltest::misbehave({});
    bad_env.environment.push_back("NOEQUALS");
    EXPECT_THROW(sandbox::spawn(bad_env), sandbox::ConfigError);

    auto ambient = pltest::misbehave({});
    ambient.ambient_capabilities = sandbox::parse_capabilities({"net_bind_service"});
    EXPECT_THROW(sandbox::spawn(ambient), sandbox::ConfigError);

    auto fd_name = pltest::misbehave({});
    fd_name.passed_fds = {{0, "has:colon"}};
    EXPECT_THROW(sandbox::spawn(fd_name), sandbox::ConfigError);
    EXPECT_TRUE(no_children_left());
}

TEST(Spawn, ExitStatusIsDecoded) {
    EXPECT_EQ(pltest::run_captured(pltest::misbehave({"exit", "3"})).status.code, 3);
    auto crash = pltest::misbehave({"crash-after-ms", "0"});
    crash.resource_limits = {{RLIMIT_CORE, 0, 0}};
    sandbox::ExitStatus status = pltest::run_captured(crash).status;
    EXPECT_EQ(status.kind, sandbox::ExitStatus::Kind::kKilled);
    EXPECT_EQ(status.signal, SIGABRT);
    EXPECT_EQ(status.describe(), "killed by signal 6 (Aborted)");
}

}  // namespace

namespace {

// A launcher with thousands of keys has a nearly full fd table, which the
// child inherits: the fd plan must still find room.
TEST(Spawn, WorksWhenTheParentsFdTableIsFull) {
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    pltest::Listener listener = pltest::listen_tcp();
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(pltest::count_open_fds() + 16);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    std::vector<int> filler;
    for (int fd; (fd = ::dup(STDERR_FILENO)) >= 0;)
        filler.push_back(fd);
    // Room for spawn's own pipes and /dev/null, nothing more.
    for (int i = 0; i < 6 && !filler.empty(); ++i) {
        ::close(filler.back());
        filler.pop_back();
    }
    auto spec = pltest::misbehave({"report"});
    spec.passed_fds = {{listener.fd.get(), "grpc"}};
    pltest::Captured run;
    std::string error;
    try {
        run = pltest::run_captured(spec);
    } catch (const std::exception& e) {
        error = e.what();
    }
    for (int fd : filler)
        ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved);
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_TRUE(run.status.success()) << run.status.describe();
    EXPECT_EQ(pltest::parse_report(run.output)["fds"], "0,1,2,3");
}

}  // namespace
