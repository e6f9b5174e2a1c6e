#include "core/spawn_plan.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "config/request_variables.h"
#include "sandbox/error.h"

namespace launcher {
namespace {

constexpr std::size_t kMaxConfigEntries = 64;
constexpr std::size_t kMaxConfigKey = 128;
constexpr std::size_t kMaxConfigBytes = 32 * 1024;

// "declared: A, B" (or that there are none), for a message.
std::string declared_keys(const Manifest& manifest) {
    std::string out;
    for (const ConfigKeyRule& rule : manifest.config_keys)
        out += (out.empty() ? "" : ", ") + rule.name;
    return out.empty() ? "it declares no config_keys" : "declared: " + out;
}

}  // namespace

std::string request_config_problem(const Manifest& manifest,
                                   const std::map<std::string, std::string>& config) {
    if (config.size() > kMaxConfigEntries) {
        return "config has " + std::to_string(config.size()) + " entries; at most " +
               std::to_string(kMaxConfigEntries) + " are allowed";
    }
    // Names first, all of them: a request that tries a forbidden name is
    // told so, whatever else it sends.
    for (const auto& entry : config) {
        const std::string& key = entry.first;
        if (key.size() > kMaxConfigKey || !is_valid_env_name(key)) {
            return "config key '" + key.substr(0, kMaxConfigKey) +
                   "' is not a valid environment name ([A-Za-z_][A-Za-z0-9_]*, at most 128 "
                   "characters)";
        }
        if (is_reserved_env_name(key)) {
            return "config key '" + key + "' is reserved: the launcher sets it";
        }
        if (auto why = forbidden_request_variable_reason(key)) {
            return "config key '" + key + "' is never accepted from a request (" +
                   std::string(*why) + ")";
        }
    }
    std::size_t total = 0;
    for (const auto& [key, value] : config) {
        if (value.size() > kMaxConfigValue || value.find('\0') != std::string::npos) {
            return "config value of '" + key + "' must be at most 4096 bytes without NUL";
        }
        if (const ConfigKeyRule* rule = find_config_key_rule(manifest.config_keys, key)) {
            if (auto problem = config_value_problem(*rule, key, value); !problem.empty())
                return problem;
        } else if (!manifest.accept_any_config) {
            return "config key '" + key + "' is not declared by pattern '" + manifest.name + "' (" +
                   declared_keys(manifest) + ")";
        }
        total += key.size() + value.size();
    }
    if (total > kMaxConfigBytes) {
        return "config totals " + std::to_string(total) + " bytes; at most 32768 are allowed";
    }
    return {};
}

std::vector<std::string> pattern_environment(const Manifest& manifest, const IsolationKey& key,
                                             const std::map<std::string, std::string>& config,
                                             const PatternEndpoints& endpoints) {
    std::vector<std::string> env;
    if (!manifest.environment.count("PATH")) env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
    env.push_back("PATTERN_NAME=" + manifest.name);
    env.push_back("NAMESPACE=" + key.namespace_id);
    // A session pool's process learns its session from the claim message,
    // not from its environment (docs/late-binding.md): both empty until then.
    const bool pooled = endpoints.claim_fd >= 0;
    env.push_back("SESSION_ID=" + key.session_id);
    env.push_back("PROCESS_ID=" + (pooled ? std::string() : key.process_id()));
    env.push_back("GRPC_PORT=" + std::to_string(endpoints.grpc_port));
    if (endpoints.health_port)
        env.push_back("HEALTH_PORT=" + std::to_string(endpoints.health_port));
    if (!endpoints.notify_socket.empty()) {
        env.push_back(std::string("NOTIFY_SOCKET=") + (has_file_view(manifest)
                                                           ? kViewNotifySocket
                                                           : endpoints.notify_socket.string()));
    }
    if (manifest.sandbox.state_directory)
        env.push_back(std::string("STATE_DIRECTORY=") + kViewStateDirectory);
    for (const auto& [name, value] : manifest.environment) {
        if (!is_reserved_env_name(name)) env.push_back(name + "=" + value);
    }
    for (const auto& [name, value] : config) {
        // Rejected at launch; also dropped here, for a key recovered from a
        // record that an older launcher accepted.
        if (is_forbidden_request_variable(name)) continue;
        // The request's value wins over the manifest's.
        // (prefix is a copy: clang 14, which the TSan tier builds with, cannot
        // capture a structured binding.)
        const std::string prefix = name + "=";
        std::erase_if(env, [&](const std::string& e) { return e.starts_with(prefix); });
        env.push_back(name + "=" + value);
    }
    return env;
}

bool has_file_view(const Manifest& manifest) {
    return manifest.sandbox.has_namespace("mount");
}

namespace {

sandbox::FileView file_view(const Manifest& manifest, const PatternEndpoints& endpoints,
                            const KeyConfinement& confinement) {
    sandbox::FileView view;
    view.enabled = true;
    view.tmpfs_bytes = manifest.sandbox.tmp_size;
    view.proc = manifest.sandbox.has_namespace("pid");
    view.cgroup = manifest.sandbox.has_namespace("cgroup");
    if (confinement.host) view.masked = confinement.host->masked_paths();
    std::vector<std::filesystem::path> read_only = {manifest.directory,
                                                    manifest.executable.parent_path()};
    for (const char* file : {"/etc/resolv.conf", "/etc/hosts"}) {
        if (!confinement.hosts_file.empty()) break;  // the key's own, bound below
        std::error_code ec;
        std::filesystem::path target = std::filesystem::canonical(file, ec);
        if (!ec && target != file) read_only.push_back(target);
    }
    for (const auto& path : read_only) {
        const bool seen = std::any_of(view.binds.begin(), view.binds.end(),
                                      [&](const auto& b) { return b.source == path.string(); });
        // Host paths a pattern needs from where the view replaces them (its
        // directory, in tests; resolv.conf's target under systemd-resolved).
        if (sandbox::hidden_by_view(path.lexically_normal().string()) && !seen)
            view.binds.push_back({path, path, false});
    }
    if (!endpoints.notify_socket.empty())
        view.binds.push_back({endpoints.notify_socket, kViewNotifySocket, false});
    if (!confinement.state_directory.empty())
        view.binds.push_back({confinement.state_directory, kViewStateDirectory, true});
    if (!confinement.hosts_file.empty()) {
        // Only the names its egress list holds, and no name server: a name
        // the list does not hold does not resolve (egress_plan.h). A mount
        // follows a symlink (resolv.conf under systemd-resolved), so the
        // file is bound over where the link leads; a file the host lacks
        // means the same as ours (glibc then asks 127.0.0.1, which refuses).
        const std::pair<const std::filesystem::path*, const char*> files[] = {
            {&confinement.hosts_file, "/etc/hosts"},
            {&confinement.resolv_file, "/etc/resolv.conf"}};
        for (const auto& [source, name] : files) {
            std::error_code ec;
            const std::filesystem::path target = std::filesystem::canonical(name, ec);
            if (!ec) view.binds.push_back({*source, target, false});
        }
    }
    return view;
}

}  // namespace

sandbox::SpawnSpec build_spawn_spec(const Manifest& manifest, const IsolationKey& key,
                                    const std::map<std::string, std::string>& config,
                                    const PatternEndpoints& endpoints,
                                    const KeyConfinement& confinement) {
    sandbox::SpawnSpec spec;
    spec.executable = manifest.executable.string();
    spec.argv = {manifest.executable.string()};
    spec.environment = pattern_environment(manifest, key, config, endpoints);
    spec.working_directory = manifest.directory.string();
    spec.stdout_fd = STDERR_FILENO;  // pattern output joins the launcher's log stream
    spec.stderr_fd = STDERR_FILENO;
    spec.passed_fds.push_back({endpoints.grpc_fd, "grpc"});
    if (endpoints.health_fd >= 0) spec.passed_fds.push_back({endpoints.health_fd, "health"});
    if (endpoints.claim_fd >= 0) spec.passed_fds.push_back({endpoints.claim_fd, "claim"});

    const SandboxSettings& sb = manifest.sandbox;
    spec.namespaces.mount = sb.has_namespace("mount");
    spec.namespaces.pid = sb.has_namespace("pid");
    spec.namespaces.ipc = sb.has_namespace("ipc");
    spec.namespaces.uts = sb.has_namespace("uts");
    spec.namespaces.cgroup = sb.has_namespace("cgroup");
    spec.namespaces.user = sb.has_namespace("user");
    spec.namespaces.net = sb.network == NetworkMode::kIsolated;
    if (confinement.netns_fd >= 0) {
        // Egress: the key's prepared namespace (eth0 behind the launcher's
        // rules) instead of a new one with only lo.
        spec.namespaces.net = false;
        spec.netns_fd = confinement.netns_fd;
    }
    if (spec.namespaces.mount) spec.view = file_view(manifest, endpoints, confinement);
    if (confinement.host) {
        spec.init.executable_fd = confinement.host->init_fd();
        spec.init.status_fd = confinement.host->report_sender_fd();
        if (sb.landlock && confinement.host->landlock().active())
            spec.landlock_ruleset_fd = confinement.host->landlock().ruleset.get();
    }

    // No supplementary groups: the key's ids alone.
    sandbox::Credentials creds;
    if (sb.user || sb.group) {
        // Resolved when the manifest was loaded: no NSS on the spawn path.
        creds.uid = sb.uid.value_or(::getuid());
        creds.gid = sb.gid.value_or(::getgid());
        if (creds.uid == 0 && !sb.allow_root) {
            throw sandbox::ConfigError("sandbox.user '" + sb.user.value_or("") +
                                       "' is uid 0: set sandbox.allow_root: true to mean it");
        }
    } else if (confinement.identity != 0) {
        creds.uid = confinement.identity;
        creds.gid = confinement.identity;
    } else {
        creds.uid = ::getuid();
        creds.gid = ::getgid();
    }
    spec.credentials = creds;
    if (spec.namespaces.user) {
        // The same ids inside as outside: files the pattern creates belong to
        // the key's uid on the host, and setresuid inside finds it mapped.
        spec.user_map = {creds.uid, creds.uid, creds.gid, creds.gid};
    }
    spec.capabilities = sandbox::parse_capabilities(sb.capabilities);
    // A non-root pattern keeps capabilities across exec only as ambient ones.
    spec.ambient_capabilities = spec.capabilities;
    spec.no_new_privs = true;
    // No core dumps: they would land in the pattern directory and may hold
    // a tenant's data.
    spec.resource_limits.push_back({RLIMIT_CORE, 0, 0});
    return spec;
}

}  // namespace launcher
