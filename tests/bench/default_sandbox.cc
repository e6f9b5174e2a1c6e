#include "default_sandbox.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "sandbox/error.h"

namespace bench {
namespace {

// HostConfinement's masks (src/confinement.cc) with the default config:
// runtime_dir /run/pattern-launcher, grpc_socket <runtime_dir>/api.sock, no
// log_dir. Paths missing on this host are skipped by compile_view, as in the daemon.
std::vector<std::string> launcher_masks() {
    return {"/run/pattern-launcher",
            "/etc/pattern-launcher",
            "/var/lib/pattern-launcher",
            "/var/log/pattern-launcher",
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/shadow-",
            "/etc/gshadow-",
            "/run/pattern-launcher/api.sock"};
}

// file_view() in src/core/spawn_plan.cc binds /etc/resolv.conf's and /etc/hosts'
// targets back in when they are symlinks into a path the view replaces
// (sandbox::hidden_by_view).
sandbox::FileView default_view() {
    sandbox::FileView view;
    view.enabled = true;  // tmpfs_bytes: 64 MiB, the manifest's default tmp_size
    view.proc = true;     // pid is a default namespace
    view.cgroup = true;   // cgroup too
    view.masked = launcher_masks();
    for (const char* file : {"/etc/resolv.conf", "/etc/hosts"}) {
        std::error_code ec;
        const std::filesystem::path target = std::filesystem::canonical(file, ec);
        if (!ec && target != file && sandbox::hidden_by_view(target.string()))
            view.binds.push_back({target.string(), target.string(), false});
    }
    return view;
}

}  // namespace

DefaultSandbox::DefaultSandbox(const std::string& init_path)
    : landlock_(sandbox::make_landlock_ruleset()),
      seccomp_(sandbox::compile_builtin_profile("default")),
      view_(default_view()) {
    init_.reset(::open(init_path.c_str(), O_PATH | O_CLOEXEC));
    if (!init_) sandbox::throw_sys_error(errno, "open", init_path);
}

sandbox::SpawnSpec DefaultSandbox::spec(const std::vector<std::string>& argv, int cgroup_fd) const {
    sandbox::SpawnSpec spec;
    spec.executable = argv.at(0);
    spec.argv = argv;
    spec.cgroup_fd = cgroup_fd;
    spec.namespaces.mount = true;
    spec.namespaces.pid = true;
    spec.namespaces.ipc = true;
    spec.namespaces.uts = true;
    spec.namespaces.cgroup = true;
    spec.namespaces.net = true;  // network: isolated
    spec.view = view_;
    spec.init.executable_fd = init_.get();
    spec.init.status_fd = reports_.sender_fd();
    if (landlock_.active()) spec.landlock_ruleset_fd = landlock_.ruleset.get();
    spec.credentials = sandbox::Credentials{kBenchIdentity, kBenchIdentity, {}};
    spec.capabilities = 0;
    spec.ambient_capabilities = 0;
    spec.no_new_privs = true;
    spec.seccomp = &seccomp_;
    spec.resource_limits.push_back({RLIMIT_CORE, 0, 0});
    return spec;
}

sandbox::ExitStatus DefaultSandbox::reap(sandbox::SpawnResult& spawned, bool& reported) {
    siginfo_t status = spawned.process.reap();
    std::optional<siginfo_t> report = reports_.take(spawned.process.pid());
    reported = report.has_value();
    return sandbox::decode_exit(report ? *report : status);
}

std::string DefaultSandbox::describe() const {
    std::string masks;
    for (const std::string& path : view_.masked)
        masks += (masks.empty() ? "" : " ") + path;
    return landlock_.describe() + "; seccomp default: " + std::to_string(seccomp_.size()) +
           " instructions; uid/gid " + std::to_string(kBenchIdentity) + "; masks: " + masks + "; " +
           std::to_string(view_.binds.size()) + " binds";
}

}  // namespace bench
