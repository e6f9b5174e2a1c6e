// pl-spawn-once: one spawn with the launcher's default compartment, then exit
// with the child's status. For hyperfine next to bwrap (compare_bwrap.sh): one
// run pays what a bwrap run pays, process start + sandbox setup + spawn +
// wait, and in addition what the daemon does once at start (open the init,
// the report socket pair, the Landlock ruleset, compiling the seccomp profile).
//
//   pl-spawn-once [--setup-only] [--init PATH] [EXECUTABLE [ARGS...]]
//
// EXECUTABLE (absolute; default /bin/true) runs under pattern-launcher-init
// in the sandbox of default_sandbox.h, in a fresh cgroup
// <cgroup2 mount>/pl-spawn-once.<pid> that is removed again. --setup-only
// does everything but the spawn (the one-time part, to subtract). --init:
// the init binary (default: the one of this build tree, PL_INIT).
//
// Exits with the child's exit code, or 128 + the signal that killed it;
// 125 when this program itself fails (message on stderr), 2 on usage errors.
// Needs root (the cgroup, the namespaces).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "default_sandbox.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"

#ifndef PL_INIT
#error "PL_INIT (the path of pattern-launcher-init) must be defined by the build"
#endif

namespace {

constexpr int kOwnFailure = 125;
constexpr int kSignalExitBase = 128;

int usage() {
    std::fprintf(stderr,
                 "usage: pl-spawn-once [--setup-only] [--init PATH] [EXECUTABLE [ARGS...]]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    bool setup_only = false;
    std::string init = PL_INIT;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        if (std::strcmp(argv[i], "--setup-only") == 0) {
            setup_only = true;
        } else if (std::strcmp(argv[i], "--init") == 0 && i + 1 < argc) {
            init = argv[++i];
        } else {
            return usage();
        }
    }
    std::vector<std::string> child(argv + i, argv + argc);
    if (child.empty()) child = {"/bin/true"};
    if (child[0].empty() || child[0][0] != '/') return usage();
    if (::geteuid() != 0) {
        std::fprintf(stderr, "pl-spawn-once: needs root (a cgroup, namespaces)\n");
        return kOwnFailure;
    }

    try {
        bench::DefaultSandbox sandbox(init);
        sandbox::Cgroup group = sandbox::Cgroup::create(
            sandbox::find_cgroup2_mount().path + "/pl-spawn-once." + std::to_string(::getpid()));
        if (setup_only) {
            group.remove();
            return 0;
        }
        sandbox::SpawnSpec spec = sandbox.spec(child, group.dir_fd());
        spec.stdout_fd = STDOUT_FILENO;  // inherited, like bwrap's child (the daemon: its log)
        spec.stderr_fd = STDERR_FILENO;
        sandbox::SpawnResult spawned = sandbox::spawn(spec);
        bool reported = false;
        sandbox::ExitStatus status = sandbox.reap(spawned, reported);
        group.remove();
        if (!reported) {
            std::fprintf(stderr, "pl-spawn-once: no exit report from the init (%s)\n",
                         status.describe().c_str());
        }
        if (status.kind == sandbox::ExitStatus::Kind::kExited) return status.code;
        return kSignalExitBase + status.signal;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pl-spawn-once: %s\n", e.what());
        return kOwnFailure;
    }
}
