// spawn_bench: spawn-to-exit latency of /bin/true, one spawn per iteration.
//
// Variants, from no sandbox to the full per-start cost a launcher pays:
//   posix_spawn                 posix_spawn + waitpid, the baseline
//   sandbox/no-cgroup           sandbox::spawn with the default spec, child left
//                               in the caller's cgroup (isolates the cgroup cost)
//   sandbox/cgroup              sandbox::spawn into a pre-made group (clone3
//                               CLONE_PIDFD | CLONE_INTO_CGROUP), caps dropped,
//                               no_new_privs (the default spec) + Process::reap
//   sandbox/cgroup+ns           + mount, pid, ipc, uts namespaces, under
//                               pattern-launcher-init (no file view)
//   sandbox/cgroup+ns+net       + net namespace (lo brought up)
//   sandbox/cgroup+ns+net+user  + user namespace: all six
//   sandbox/cgroup+seccomp      sandbox/cgroup + the `default` seccomp profile
//                               (compiled once, outside the timed loop)
//   sandbox/lifecycle           per iteration: create a group, spawn into it,
//                               reap, remove the group
//   sandbox/default-sandbox     sandbox/lifecycle with the daemon's default
//                               compartment (default_sandbox.h): mount, pid, ipc,
//                               uts, cgroup and net namespaces, the private file
//                               view, pattern-launcher-init as PID 1 (its exit
//                               report taken), an unprivileged uid/gid, seccomp
//                               `default`, Landlock scoping
//   sandbox/default-sandbox/without-<part>
//                               the same with one part left out (file-view,
//                               pid+init, net, cgroup-ns, seccomp, landlock):
//                               what that part costs; filter
//                               'default-sandbox/real' for the full one alone
//   sandbox/default-sandbox/fork-mode
//                               the default compartment cloned in fork mode
//                               (CloneMode::kFork) instead of with CLONE_VM:
//                               what copying our address space costs. Set
//                               PL_BENCH_BALLAST_MIB=N to give this process N
//                               MiB of written memory first, as a daemon with
//                               many keys has (fork mode copies its page
//                               tables; CLONE_VM does not)
//
// Needs root: it opens a private cgroup tree at <cgroup2 mount>/pl-bench.<pid>
// (moving itself into its supervisor leaf) and closes it again at the end.
// Without root it prints why and exits 0. Unless given on the command line,
// --benchmark_repetitions=10 and --benchmark_report_aggregates_only=true are
// used, so the median over the repetitions is reported. Exits 1 if any spawn
// failed. See docs/performance.md.
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "default_sandbox.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/process.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"

#ifndef PL_INIT
#error "PL_INIT (the path of pattern-launcher-init) must be defined by the build"
#endif

namespace {

constexpr const char* kTrue = "/bin/true";

// Set once for the whole run in main(), before any benchmark runs.
struct Fixture {
    std::optional<sandbox::CgroupTree> tree;
    std::optional<sandbox::Cgroup> group;  // the shared group of the non-lifecycle variants
    sandbox::BpfProgram default_profile;
    std::optional<bench::DefaultSandbox> default_sandbox;  // opened once, as the daemon does
};
Fixture g_fixture;
bool g_failed = false;  // any benchmark reported an error

void fail(benchmark::State& state, const std::string& message) {
    g_failed = true;
    state.SkipWithError(message.c_str());
}

// Reaps `result` and checks that /bin/true exited 0; false (after reporting
// the error) otherwise.
bool reap_ok(benchmark::State& state, sandbox::SpawnResult& result) {
    sandbox::ExitStatus status = sandbox::decode_exit(result.process.reap());
    if (!status.success()) {
        fail(state, std::string(kTrue) + " " + status.describe());
        return false;
    }
    return true;
}

void BM_PosixSpawn(benchmark::State& state) {
    char arg0[] = "true";
    char* argv[] = {arg0, nullptr};
    char* envp[] = {nullptr};  // sandbox::spawn passes only the given (empty) environment
    for (auto _ : state) {
        pid_t pid = -1;
        int err = ::posix_spawn(&pid, kTrue, nullptr, nullptr, argv, envp);
        if (err != 0) {
            fail(state, std::string("posix_spawn ") + kTrue + ": " + std::strerror(err));
            break;
        }
        int wstatus = 0;
        pid_t got;
        do {
            got = ::waitpid(pid, &wstatus, 0);
        } while (got < 0 && errno == EINTR);
        if (got != pid || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
            fail(state, std::string(kTrue) + " did not exit 0 (wait status " +
                            std::to_string(wstatus) + ")");
            break;
        }
    }
}

sandbox::SpawnSpec base_spec() {
    sandbox::SpawnSpec spec;
    spec.executable = kTrue;
    spec.argv = {"true"};
    return spec;
}

// One spawn + reap per iteration with `spec`, into the shared group unless
// `into_group` is false (then the child stays in the caller's cgroup).
void BM_Sandbox(benchmark::State& state, sandbox::SpawnSpec spec, bool into_group) {
    if (into_group) spec.cgroup_fd = g_fixture.group->dir_fd();
    bool fell_back = false;
    for (auto _ : state) {
        try {
            sandbox::SpawnResult result = sandbox::spawn(spec);
            fell_back = fell_back || !result.joined_cgroup_at_clone;
            if (!reap_ok(state, result)) break;
        } catch (const std::exception& e) {
            fail(state, e.what());
            break;
        }
    }
    if (into_group && fell_back) state.SetLabel("cgroup.procs fallback, not CLONE_INTO_CGROUP");
}

// Per iteration: a fresh group, one spawn into it, reap, remove the group.
void BM_Lifecycle(benchmark::State& state) {
    static unsigned long counter = 0;
    sandbox::SpawnSpec spec = base_spec();
    bool fell_back = false;
    for (auto _ : state) {
        try {
            sandbox::Cgroup group =
                g_fixture.tree->create_group("life-" + std::to_string(counter++));
            spec.cgroup_fd = group.dir_fd();
            sandbox::SpawnResult result = sandbox::spawn(spec);
            fell_back = fell_back || !result.joined_cgroup_at_clone;
            if (!reap_ok(state, result)) break;
            group.remove();
        } catch (const std::exception& e) {
            fail(state, e.what());
            break;
        }
    }
    if (fell_back) state.SetLabel("cgroup.procs fallback, not CLONE_INTO_CGROUP");
}

// Changes the default compartment's spec for one variant (one part left out).
using SpecEdit = std::function<void(sandbox::SpawnSpec&)>;

// BM_Lifecycle with the default compartment: the init is reaped, its report
// of /bin/true's exit taken, and the group removed, all inside the loop.
void BM_DefaultSandbox(benchmark::State& state, const SpecEdit& edit) {
    static unsigned long counter = 0;
    bench::DefaultSandbox& sandbox = *g_fixture.default_sandbox;
    bool fell_back = false;
    for (auto _ : state) {
        try {
            sandbox::Cgroup group =
                g_fixture.tree->create_group("default-" + std::to_string(counter++));
            sandbox::SpawnSpec spec = sandbox.spec({kTrue}, group.dir_fd());
            if (edit) edit(spec);
            const bool with_init = spec.namespaces.pid;
            sandbox::SpawnResult result = sandbox::spawn(spec);
            fell_back = fell_back || !result.joined_cgroup_at_clone;
            bool reported = false;
            sandbox::ExitStatus status = sandbox.reap(result, reported);
            if (reported != with_init || !status.success()) {
                fail(state, std::string(kTrue) + " in the default sandbox: " +
                                (reported == with_init ? status.describe()
                                                       : "no exit report from the init"));
                break;
            }
            group.remove();
        } catch (const std::exception& e) {
            fail(state, e.what());
            break;
        }
    }
    if (fell_back) state.SetLabel("cgroup.procs fallback, not CLONE_INTO_CGROUP");
}

void register_benchmarks() {
    sandbox::SpawnSpec plain = base_spec();

    sandbox::SpawnSpec ns = plain;
    ns.namespaces.mount = true;
    ns.namespaces.pid = true;
    ns.namespaces.ipc = true;
    ns.namespaces.uts = true;
    // spawn() refuses a pid namespace without an init (PID 1 would ignore
    // SIGTERM): these run under pattern-launcher-init too, without exit reports.
    ns.init.executable_fd = g_fixture.default_sandbox->init_fd();

    sandbox::SpawnSpec net = ns;
    net.namespaces.net = true;

    sandbox::SpawnSpec all = net;
    all.namespaces.user = true;

    sandbox::SpawnSpec seccomp = plain;
    seccomp.seccomp = &g_fixture.default_profile;

    auto with = [](sandbox::SpawnSpec spec, bool into_group = true) {
        return [spec, into_group](benchmark::State& state) { BM_Sandbox(state, spec, into_group); };
    };
    std::vector<benchmark::internal::Benchmark*> registered = {
        benchmark::RegisterBenchmark("posix_spawn", BM_PosixSpawn),
        benchmark::RegisterBenchmark("sandbox/no-cgroup", with(plain, false)),
        benchmark::RegisterBenchmark("sandbox/cgroup", with(plain)),
        benchmark::RegisterBenchmark("sandbox/cgroup+ns", with(ns)),
        benchmark::RegisterBenchmark("sandbox/cgroup+ns+net", with(net)),
        benchmark::RegisterBenchmark("sandbox/cgroup+ns+net+user", with(all)),
        benchmark::RegisterBenchmark("sandbox/cgroup+seccomp", with(seccomp)),
        benchmark::RegisterBenchmark("sandbox/lifecycle", BM_Lifecycle),
    };
    // The default compartment, then the same with one part left out each:
    // what that part costs per spawn.
    const std::vector<std::pair<const char*, SpecEdit>> default_variants = {
        {"sandbox/default-sandbox", nullptr},
        {"sandbox/default-sandbox/without-file-view",
         [](sandbox::SpawnSpec& s) { s.view.enabled = false; }},
        {"sandbox/default-sandbox/without-pid+init",
         [](sandbox::SpawnSpec& s) {
             s.namespaces.pid = false;
             s.init = {};
             s.view.proc = false;
         }},
        {"sandbox/default-sandbox/without-net",
         [](sandbox::SpawnSpec& s) { s.namespaces.net = false; }},
        {"sandbox/default-sandbox/without-cgroup-ns",
         [](sandbox::SpawnSpec& s) {
             s.namespaces.cgroup = false;
             s.view.cgroup = false;
         }},
        {"sandbox/default-sandbox/without-seccomp",
         [](sandbox::SpawnSpec& s) { s.seccomp = nullptr; }},
        {"sandbox/default-sandbox/without-landlock",
         [](sandbox::SpawnSpec& s) { s.landlock_ruleset_fd = -1; }},
        {"sandbox/default-sandbox/fork-mode",
         [](sandbox::SpawnSpec& s) { s.clone_mode = sandbox::CloneMode::kFork; }},
    };
    for (const auto& [name, edit] : default_variants) {
        registered.push_back(benchmark::RegisterBenchmark(
            name, [edit = edit](benchmark::State& state) { BM_DefaultSandbox(state, edit); }));
    }
    for (benchmark::internal::Benchmark* b : registered) {
        b->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
}

// Google Benchmark lets a later flag override an earlier one, so defaults go
// right after argv[0] and anything the user passes wins.
std::vector<char*> with_default_flags(int argc, char** argv) {
    static char repetitions[] = "--benchmark_repetitions=10";
    static char aggregates[] = "--benchmark_report_aggregates_only=true";
    std::vector<char*> args;
    args.push_back(argv[0]);
    args.push_back(repetitions);
    args.push_back(aggregates);
    for (int i = 1; i < argc; ++i) {
        args.push_back(argv[i]);
    }
    args.push_back(nullptr);
    return args;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args = with_default_flags(argc, argv);
    int arg_count = static_cast<int>(args.size()) - 1;
    benchmark::Initialize(&arg_count, args.data());
    if (benchmark::ReportUnrecognizedArguments(arg_count, args.data())) return 1;

    if (::geteuid() != 0) {
        std::fprintf(stderr,
                     "spawn_bench: skipped: needs root (it creates a cgroup under the cgroup2 "
                     "mount, and namespaces other than user need CAP_SYS_ADMIN)\n");
        return 0;
    }

    std::string root;
    try {
        root = sandbox::find_cgroup2_mount().path + "/pl-bench." + std::to_string(::getpid());
        g_fixture.tree.emplace(sandbox::CgroupTree::open(root));
        g_fixture.group.emplace(g_fixture.tree->create_group("bench"));
        g_fixture.default_profile = sandbox::compile_builtin_profile("default");
        g_fixture.default_sandbox.emplace(PL_INIT);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spawn_bench: setup failed: %s\n", e.what());
        g_fixture.default_sandbox.reset();
        g_fixture.group.reset();
        g_fixture.tree.reset();  // ~CgroupTree closes it, swallowing errors
        return 1;
    }
    std::fprintf(stderr, "spawn_bench: cgroup tree %s\n", root.c_str());
    std::fprintf(stderr, "spawn_bench: default sandbox: init %s; %s\n", PL_INIT,
                 g_fixture.default_sandbox->describe().c_str());

    // Written memory standing in for a daemon's: fork mode copies the page
    // tables that map it, CLONE_VM does not.
    std::vector<char> ballast;
    if (const char* mib = std::getenv("PL_BENCH_BALLAST_MIB")) {
        ballast.assign(std::strtoul(mib, nullptr, 10) << 20, 1);
        std::fprintf(stderr, "spawn_bench: %zu MiB of ballast\n", ballast.size() >> 20);
    }
    std::fprintf(stderr, "spawn_bench: clone mode %s\n",
                 sandbox::shared_memory_clone_supported() ? "CLONE_VM (fork-mode variant: fork)"
                                                          : "fork only (this build)");

    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();

    int rc = g_failed ? 1 : 0;
    try {
        g_fixture.group->remove();
        g_fixture.group.reset();
        g_fixture.tree->close();
        g_fixture.tree.reset();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spawn_bench: cleaning up %s failed: %s\n", root.c_str(), e.what());
        rc = 1;
    }
    if (g_failed) std::fprintf(stderr, "spawn_bench: at least one benchmark failed\n");
    return rc;
}
