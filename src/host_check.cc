// `pattern-launcher check`: a report an operator can read before deploying.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "commands.h"
#include "sandbox/capabilities.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"

namespace launcher {
namespace {

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words)
        out += (out.empty() ? "" : " ") + w;
    return out.empty() ? "(none)" : out;
}

// Starts /bin/true the way a pattern is started: in a fresh cgroup, in new
// namespaces, under the default seccomp profile, with no capabilities.
bool try_sandboxed_spawn(const sandbox::CgroupMount& mount) {
    try {
        sandbox::CgroupTree tree = sandbox::CgroupTree::open(
            mount.path + "/pattern-launcher-check." + std::to_string(::getpid()));
        sandbox::Cgroup group = tree.create_group("probe");
        sandbox::BpfProgram filter = sandbox::compile_builtin_profile("default");
        sandbox::SpawnSpec spec;
        spec.executable = "/bin/true";
        spec.cgroup_fd = group.dir_fd();
        spec.namespaces = {
            .mount = true, .pid = true, .ipc = true, .uts = true, .user = true, .net = true};
        spec.seccomp = &filter;
        sandbox::SpawnResult child = sandbox::spawn(spec);
        sandbox::ExitStatus status = sandbox::decode_exit(child.process.reap());
        group.remove();
        tree.close();
        std::printf(
            "sandboxed spawn:      %s (%s; namespaces mnt pid ipc uts user net, "
            "seccomp default, no capabilities)\n",
            status.success() ? "ok" : status.describe().c_str(),
            child.joined_cgroup_at_clone ? "clone3 CLONE_INTO_CGROUP"
                                         : "clone3, then cgroup.procs (CLONE_INTO_CGROUP "
                                           "refused)");
        return status.success();
    } catch (const std::exception& e) {
        std::printf("sandboxed spawn:      FAILED: %s\n", e.what());
        return false;
    }
}

}  // namespace

int run_host_check() {
    bool ok = true;
    sandbox::CgroupMount mount = sandbox::find_cgroup2_mount();
    std::string self = sandbox::self_cgroup();
    std::printf("cgroup2 mount:        %s (%s)\n", mount.path.c_str(),
                mount.layout == sandbox::CgroupLayout::kUnified
                    ? "unified"
                    : "hybrid: grouping, kill and events only; limits cannot be enforced");
    std::printf("own cgroup:           %s\n", self.c_str());
    std::printf("v2 controllers:       %s\n",
                join(sandbox::cgroup_controllers(sandbox::cgroup_dir(mount, self))).c_str());
    std::printf("last capability:      %d\n", sandbox::last_capability());
    for (const std::string& name : sandbox::builtin_profile_names()) {
        try {
            sandbox::BpfProgram program = sandbox::compile_builtin_profile(name);
            std::printf("seccomp '%s':%*s%zu BPF instructions\n", name.c_str(),
                        static_cast<int>(11 - name.size()), "", program.size());
        } catch (const std::exception& e) {
            ok = false;
            std::printf("seccomp '%s':       FAILED: %s\n", name.c_str(), e.what());
        }
    }
    ok = try_sandboxed_spawn(mount) && ok;
    if (::geteuid() != 0) {
        std::printf(
            "running as:           uid %d (not root: cgroup creation and id changes "
            "need root or a delegated subtree)\n",
            ::geteuid());
    }
    std::printf("result:               %s\n", ok ? "ok" : "problems found");
    return ok ? 0 : 1;
}

}  // namespace launcher
