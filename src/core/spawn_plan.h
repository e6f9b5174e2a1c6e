// From manifest and request to a sandbox::SpawnSpec: the pattern's
// environment (reserved names first and never overridable), its
// namespaces, identity, capabilities and seccomp profile.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/isolation_key.h"
#include "config/manifest.h"
#include "core/confinement.h"
#include "core/sandbox_port.h"
#include "sandbox/spawn.h"

namespace launcher {

// Empty when the request's config is acceptable for `manifest`, else what
// is wrong with which key (never its value, which may be a secret): too
// many or too large, a bad name, a name the launcher sets, a name never
// accepted from a request (config/request_variables.h), a key the manifest
// does not declare (config_keys; accept_any_config: true lets undeclared
// ones through), a value its declaration refuses.
std::string request_config_problem(const Manifest& manifest,
                                   const std::map<std::string, std::string>& config);

// The key's own part of its compartment.
struct KeyConfinement {
    std::uint32_t identity = 0;  // the key's uid and gid; 0: sandbox.user/group decide
    const HostConfinement* host = nullptr;
    std::filesystem::path state_directory;  // host path; empty: none
    // Egress: the key's network namespace (joined, not made) and the name
    // files bound over /etc/hosts and /etc/resolv.conf. -1 / empty: none.
    int netns_fd = -1;
    std::filesystem::path hosts_file;
    std::filesystem::path resolv_file;
};

// True when the manifest gives the pattern the private file view (a mount
// namespace): its notify socket and state directory are then bound in at
// kViewNotifySocket and kViewStateDirectory.
bool has_file_view(const Manifest& manifest);

// The environment, in order: PATH, the reserved names, the manifest's
// environment, the request's config.
std::vector<std::string> pattern_environment(const Manifest& manifest, const IsolationKey& key,
                                             const std::map<std::string, std::string>& config,
                                             const PatternEndpoints& endpoints);

// Everything but the cgroup fd and the seccomp program, which the caller owns.
// Never asks NSS: sandbox.user/group were resolved when the manifest was
// loaded (SandboxSettings::uid/gid). Throws sandbox::ConfigError for a
// pattern that would run as uid 0 without sandbox.allow_root.
sandbox::SpawnSpec build_spawn_spec(const Manifest& manifest, const IsolationKey& key,
                                    const std::map<std::string, std::string>& config,
                                    const PatternEndpoints& endpoints,
                                    const KeyConfinement& confinement);

}  // namespace launcher
