// What the child can and cannot do: namespaces, capabilities, no_new_privs,
// seccomp, ids.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

using namespace std::chrono_literals;

std::string ns_id(const std::string& pid, const std::string& ns) {
    char buf[64] = {};
    std::string link = "/proc/" + pid + "/ns/" + ns;
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

std::string zero_caps() {
    return "0000000000000000";
}

TEST(Confinement, RequestedNamespacesDifferFromOurs) {
    auto spec = pltest::misbehave({"sleep"});
    spec.namespaces = {
        .mount = true, .pid = true, .ipc = true, .uts = true, .user = true, .net = true};
    // The spawned pid is the init, which lives in every namespace the pattern does.
    pltest::use_init(spec);
    sandbox::SpawnResult child = sandbox::spawn(spec);
    std::string pid = std::to_string(child.process.pid());
    for (const char* ns : {"mnt", "pid", "ipc", "uts", "user", "net"}) {
        std::string theirs = ns_id(pid, ns), ours = ns_id("self", ns);
        ASSERT_FALSE(theirs.empty()) << ns;
        EXPECT_NE(theirs, ours) << ns << " namespace must be new";
    }
    EXPECT_EQ(ns_id(pid, "cgroup"), ns_id("self", "cgroup")) << "not requested, so shared";
}

TEST(Confinement, UnrequestedNamespacesAreShared) {
    sandbox::SpawnResult child = sandbox::spawn(pltest::misbehave({"sleep"}));
    std::string pid = std::to_string(child.process.pid());
    for (const char* ns : {"mnt", "pid", "ipc", "uts", "user", "net"}) {
        EXPECT_EQ(ns_id(pid, ns), ns_id("self", ns)) << ns;
    }
}

TEST(Confinement, PidNamespaceWithMountNamespaceGetsItsOwnProc) {
    auto spec = pltest::misbehave({"report"});
    spec.namespaces = {.mount = true, .pid = true};
    // PID 1 is the init now and the pattern its child (pid 2); the own /proc
    // is part of the file view (its /sys/fs/cgroup needs a cgroup namespace,
    // which this test does not ask for).
    pltest::use_init(spec);
    pltest::enable_view(spec);
    spec.view.cgroup = false;
    auto report = pltest::parse_report(pltest::run_captured(spec).output);
    EXPECT_EQ(report["pid"], "2");
    EXPECT_EQ(report["ppid"], "1");
    // The report reads /proc/self/status: with the host's /proc mounted,
    // "self" would resolve to a pid that does not exist in the new namespace.
    EXPECT_EQ(report["NoNewPrivs"], "1");
}

TEST(Confinement, NetworkNamespaceHasOnlyLoopbackAndItIsUp) {
    auto spec = pltest::misbehave({"sleep"});
    spec.namespaces.net = true;
    sandbox::SpawnResult child = sandbox::spawn(spec);
    std::string pid = std::to_string(child.process.pid());

    std::ifstream dev("/proc/" + pid + "/net/dev");
    std::string line, names;
    std::getline(dev, line);
    std::getline(dev, line);  // two header lines
    while (std::getline(dev, line))
        names += line.substr(0, line.find(':')) + ";";
    EXPECT_EQ(names.find_first_not_of(' '), names.find("lo;"));
    EXPECT_EQ(std::count(names.begin(), names.end(), ';'), 1) << names;

    // Ask the kernel from inside that namespace (setns is per thread for net).
    short flags = 0;
    int err = 0;
    std::thread probe([&] {
        int nsfd = ::open(("/proc/" + pid + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) {
            err = errno;
            return;
        }
        ::close(nsfd);
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq req{};
        std::snprintf(req.ifr_name, sizeof req.ifr_name, "lo");
        if (::ioctl(s, SIOCGIFFLAGS, &req) != 0) err = errno;
        flags = req.ifr_flags;
        ::close(s);
    });
    probe.join();
    ASSERT_EQ(err, 0) << std::strerror(err);
    EXPECT_TRUE(flags & IFF_UP) << "lo must be up inside the namespace";
}

TEST(Confinement, CapabilitiesAreDroppedAndNoNewPrivsIsSet) {
    auto report = pltest::parse_report(pltest::run_captured(pltest::misbehave({"report"})).output);
    ASSERT_EQ(report["uid"], "0") << "the tests run as root; this checks root is defanged";
    for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
        EXPECT_EQ(report[set], zero_caps()) << set;
    }
    EXPECT_EQ(report["NoNewPrivs"], "1");
    EXPECT_EQ(report["Seccomp"], "0") << "no filter was asked for";
}

TEST(Confinement, KeepsOnlyTheCapabilitiesAskedFor) {
    auto spec = pltest::misbehave({"report"});
    spec.capabilities = sandbox::parse_capabilities({"CAP_NET_BIND_SERVICE"});
    auto report = pltest::parse_report(pltest::run_captured(spec).output);
    EXPECT_EQ(report["CapBnd"], "0000000000000400");
    EXPECT_EQ(report["CapEff"], "0000000000000400");
    EXPECT_EQ(report["CapPrm"], "0000000000000400");
    EXPECT_EQ(report["CapAmb"], zero_caps());
}

TEST(Confinement, NonRootChildKeepsAmbientCapabilities) {
    auto spec = pltest::misbehave({"report"});
    spec.credentials = sandbox::Credentials{65534, 65534, {65533}};
    spec.capabilities = sandbox::parse_capabilities({"net_bind_service"});
    spec.ambient_capabilities = spec.capabilities;
    auto report = pltest::parse_report(pltest::run_captured(spec).output);
    EXPECT_EQ(report["uid"], "65534");
    EXPECT_EQ(report["euid"], "65534");
    EXPECT_EQ(report["gid"], "65534");
    EXPECT_EQ(report["groups"], "65533");
    EXPECT_EQ(report["CapAmb"], "0000000000000400");
    EXPECT_EQ(report["CapEff"], "0000000000000400");
    EXPECT_EQ(report["CapBnd"], "0000000000000400");
}

TEST(Confinement, NonRootChildWithoutCapabilitiesHasNone) {
    auto spec = pltest::misbehave({"report"});
    spec.credentials = sandbox::Credentials{65534, 65534, {}};
    auto report = pltest::parse_report(pltest::run_captured(spec).output);
    EXPECT_EQ(report["uid"], "65534");
    EXPECT_EQ(report["groups"], "");
    EXPECT_EQ(report["CapEff"], zero_caps());
    EXPECT_EQ(report["CapPrm"], zero_caps());
}

TEST(Confinement, UserNamespaceMapsRootInsideToNobodyOutside) {
    auto spec = pltest::misbehave({"sleep"});
    spec.namespaces.user = true;
    sandbox::SpawnResult child = sandbox::spawn(spec);
    std::ifstream map("/proc/" + std::to_string(child.process.pid()) + "/uid_map");
    unsigned inside = 1, outside = 0, count = 0;
    map >> inside >> outside >> count;
    EXPECT_EQ(inside, 0u);
    EXPECT_EQ(outside, 65534u);
    EXPECT_EQ(count, 1u);
}

TEST(Confinement, UserNamespaceChildSeesItselfAsRoot) {
    auto spec = pltest::misbehave({"report"});
    spec.namespaces.user = true;
    pltest::Captured run = pltest::run_captured(spec);
    ASSERT_TRUE(run.status.success()) << run.status.describe();
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["uid"], "0");
    EXPECT_EQ(report["CapEff"], zero_caps());
}

TEST(Confinement, DefaultSeccompProfileDeniesAsDocumented) {
    sandbox::BpfProgram filter = sandbox::compile_builtin_profile("default");
    auto run_syscall = [&](const std::string& name) {
        auto spec = pltest::misbehave({"syscall", name});
        spec.seccomp = &filter;
        return pltest::run_captured(spec);
    };
    auto report = [&] {
        auto spec = pltest::misbehave({"report"});
        spec.seccomp = &filter;
        return pltest::parse_report(pltest::run_captured(spec).output);
    }();
    EXPECT_EQ(report["Seccomp"], "2");
    EXPECT_EQ(report["NoNewPrivs"], "1");

    for (const char* denied :
         {"init_module", "finit_module", "kexec_load", "reboot", "mount", "umount2", "pivot_root",
          "swapon", "bpf", "perf_event_open", "ptrace", "process_vm_readv", "keyctl", "add_key",
          "userfaultfd", "open_by_handle_at", "settimeofday", "acct", "unshare"}) {
        pltest::Captured run = run_syscall(denied);
        EXPECT_TRUE(run.status.success()) << denied << ": " << run.status.describe();
        EXPECT_NE(run.output.find("errno=EPERM"), std::string::npos)
            << denied << ": " << run.output;
    }
    // clone3 gets ENOSYS so that libc falls back to clone().
    EXPECT_NE(run_syscall("clone3").output.find("errno=ENOSYS"), std::string::npos);
    EXPECT_NE(run_syscall("getpid").output.find("errno=0"), std::string::npos);
}

TEST(Confinement, StrictSeccompProfileRunsADaemonAndDeniesTheRest) {
    sandbox::BpfProgram filter = sandbox::compile_builtin_profile("strict");
    pltest::Listener listener = pltest::listen_tcp();
    sandbox::SpawnSpec spec;
    spec.executable = PL_ECHO;
    spec.passed_fds = {{listener.fd.get(), "grpc"}};
    spec.seccomp = &filter;
    sandbox::SpawnResult child = sandbox::spawn(spec);
    EXPECT_EQ(pltest::echo_roundtrip(listener.port, "strict"), "strict");
    child.process.send_signal(SIGTERM);
    EXPECT_TRUE(sandbox::decode_exit(child.process.reap()).success());

    auto denied = pltest::misbehave({"syscall", "mount"});
    denied.seccomp = &filter;
    pltest::Captured run = pltest::run_captured(denied);
    EXPECT_NE(run.output.find("errno=E"), std::string::npos) << run.output;
    EXPECT_EQ(run.output.find("errno=0"), std::string::npos) << run.output;
}

}  // namespace
