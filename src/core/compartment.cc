// The compartment of a key's process: what its manifest and its key make of
// the default confinement, as a spawn spec (supervision.cc spawns it).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/launcher.h"
#include "core/managed_process.h"
#include "sandbox/error.h"
#include "core/spawn_plan.h"

namespace launcher {

const sandbox::BpfProgram* Launcher::seccomp_program(const std::string& profile) {
    if (profile == "none") return nullptr;
    auto it = seccomp_cache_.find(profile);
    if (it == seccomp_cache_.end()) {
        it = seccomp_cache_.emplace(profile, sandbox::compile_builtin_profile(profile)).first;
    }
    return &it->second;
}

// <runtime_dir>/keys/<process id>, made on first use and owned by the
// key's ids; it lives as long as the key (release() removes it).
std::filesystem::path Launcher::state_directory(const ManagedProcess& p) const {
    std::filesystem::path dir = config_.runtime_dir / "keys" / p.id;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        sandbox::throw_sys_error(errno, "create the state directory", dir.string());
    if (p.identity != 0 && ::chown(dir.c_str(), p.identity, p.identity) != 0)
        sandbox::throw_sys_error(errno, "chown the state directory", dir.string());
    return dir;
}

// Everything of the spec but the cgroup and the output fds; records who the
// process runs as and what it gets, for the status.
sandbox::SpawnSpec Launcher::compartment_spec(ManagedProcess& p,
                                              const PatternEndpoints& endpoints) {
    const Manifest& manifest = *p.manifest;
    ensure_identity(p);
    KeyConfinement confinement{p.identity, confinement_.get(), {}};
    if (manifest.sandbox.state_directory) confinement.state_directory = state_directory(p);
    sandbox::SpawnSpec spec = build_spawn_spec(manifest, p.key, p.config, endpoints, confinement);
    // A fixed sandbox.user or group must not be one the launcher hands to keys:
    // it would share a tenant's identity.
    if (p.identity == 0 && (identities_.contains(spec.credentials->uid) ||
                            identities_.contains(spec.credentials->gid))) {
        throw sandbox::ConfigError(
            "sandbox.user/group (uid " + std::to_string(spec.credentials->uid) + ", gid " +
            std::to_string(spec.credentials->gid) + ") lies in identity_range " +
            std::to_string(identities_.range().first) + "-" +
            std::to_string(identities_.range().last()) + ", whose ids belong to isolation keys");
    }
    // The key's own ids own its notify socket: connecting needs write access.
    if (!p.notify_path.empty() &&
        ::chown(p.notify_path.c_str(), spec.credentials->uid, spec.credentials->gid) != 0) {
        sandbox::throw_sys_error(errno, "chown the notify socket", p.notify_path.string());
    }
    spec.seccomp = seccomp_program(manifest.sandbox.seccomp);
    const bool first_spawn = p.weakened.empty() && !p.ever_running && p.restart_count == 0;
    p.weakened = confinement_weakenings(manifest);
    if (first_spawn) {
        for (const std::string& weakened : p.weakened) {
            std::fprintf(
                stderr, "pattern-launcher: %s: WARNING: confinement weakened by its manifest: %s\n",
                p.id.c_str(), weakened.c_str());
        }
    }
    p.uid = spec.credentials->uid;
    p.gid = spec.credentials->gid;
    p.confinement = applied_confinement(manifest, *confinement_);
    return spec;
}

}  // namespace launcher
