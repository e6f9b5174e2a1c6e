// The launcher's default compartment, as the daemon builds it for a pattern
// whose manifest has no `sandbox` section, for spawn_bench and pl-spawn-once:
//
//   namespaces   mount, pid, ipc, uts, cgroup, net      (SandboxSettings defaults)
//   file view    FileView{enabled}: 64 MiB tmpfs each, own /proc and /sys/fs/cgroup,
//                the launcher's masks for its default config (src/core/confinement.cc)
//   init         pattern-launcher-init as PID 1, exec'd from an O_PATH fd, with
//                an InitReports status fd
//   identity     uid = gid = kBenchIdentity, no supplementary groups
//   privileges   no capabilities, no_new_privs, RLIMIT_CORE 0, the built-in
//                `default` seccomp profile, make_landlock_ruleset()
//
// Mirrors src/core/spawn_plan.cc (build_spawn_spec, file_view) and
// src/core/kernel_sandbox.cc (seccomp, reports) without linking the daemon (gRPC,
// YAML). Left out, because they depend on the pattern rather than on the
// sandbox: the passed gRPC socket, the environment, the working directory and
// the notify socket's bind (one open_tree + move_mount with a notify
// healthcheck). Keep it in step with those files.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/init_reports.h"
#include "sandbox/landlock.h"
#include "sandbox/process.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "sandbox/unique_fd.h"

namespace bench {

// The first id of the default launcher.identity_range (1879048192-...) plus 8:
// in no /etc/passwd, like a key's own id.
constexpr uid_t kBenchIdentity = 1879048200;

class DefaultSandbox {
public:
    // Opens the init (O_PATH), the report socket pair, the Landlock ruleset and
    // compiles the `default` profile: what the daemon does once at start.
    // Throws SysError / ConfigError.
    explicit DefaultSandbox(const std::string& init_path);

    // The spec for one spawn of `argv` (argv[0] is the executable, absolute)
    // into the cgroup `cgroup_fd` (Cgroup::dir_fd()). Points into *this.
    sandbox::SpawnSpec spec(const std::vector<std::string>& argv, int cgroup_fd) const;

    // Reaps the init of `spawned` and returns how the pattern ended: the
    // init's report (as the daemon takes it), else the init's own status.
    // `reported` says whether there was a report.
    sandbox::ExitStatus reap(sandbox::SpawnResult& spawned, bool& reported);

    // "landlock ABI 7: ...; seccomp default: N instructions; masks: ...".
    std::string describe() const;

    // The init's O_PATH fd, for other specs with a pid namespace.
    int init_fd() const noexcept { return init_.get(); }

private:
    sandbox::UniqueFd init_;
    sandbox::InitReports reports_;
    sandbox::LandlockPlan landlock_;
    sandbox::BpfProgram seccomp_;
    sandbox::FileView view_;
};

}  // namespace bench
