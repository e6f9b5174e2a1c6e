// `pattern-launcher check`: a report an operator can read before deploying.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "api/tls_credentials.h"
#include "auth/api_policy.h"
#include "auth/jwt_keys.h"
#include "common/egress_pool.h"
#include "common/identity_pool.h"
#include "config/config.h"
#include "core/confinement.h"
#include "daemon/commands.h"
#include "sandbox/capabilities.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/egress_ruleset.h"
#include "sandbox/forwarding.h"
#include "sandbox/nft_context.h"
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

// Starts /bin/true the way a pattern without a `sandbox` section is started:
// in a fresh cgroup, under the init in its own pid namespace, with the
// private file view, every namespace, an unprivileged uid, the default
// seccomp profile, Landlock and no capabilities.
bool try_sandboxed_spawn(const sandbox::CgroupMount& mount, const HostConfinement& host,
                         std::uint32_t uid) {
    try {
        sandbox::CgroupTree tree = sandbox::CgroupTree::open(
            mount.path + "/pattern-launcher-check." + std::to_string(::getpid()));
        sandbox::Cgroup group = tree.create_group("probe");
        sandbox::BpfProgram filter = sandbox::compile_builtin_profile("default");
        sandbox::SpawnSpec spec;
        spec.executable = "/bin/true";
        spec.cgroup_fd = group.dir_fd();
        spec.namespaces = {.mount = true,
                           .pid = true,
                           .ipc = true,
                           .uts = true,
                           .user = false,
                           .net = true,
                           .cgroup = true};
        spec.init = {host.init_fd(), -1};
        spec.view.enabled = true;
        spec.view.masked = host.masked_paths();
        spec.credentials = sandbox::Credentials{uid, uid, {}};
        spec.seccomp = &filter;
        if (host.landlock().active()) spec.landlock_ruleset_fd = host.landlock().ruleset.get();
        sandbox::SpawnResult child = sandbox::spawn(spec);
        sandbox::ExitStatus status = sandbox::decode_exit(child.process.reap());
        group.remove();
        tree.close();
        std::printf(
            "sandboxed spawn:      %s (%s; uid %u, namespaces mnt pid ipc uts cgroup net, "
            "init, private file view, seccomp default, %s, no capabilities)\n",
            status.success() ? "ok" : status.describe().c_str(),
            child.joined_cgroup_at_clone ? "clone3 CLONE_INTO_CGROUP"
                                         : "clone3, then cgroup.procs (CLONE_INTO_CGROUP "
                                           "refused)",
            uid, host.landlock().describe().c_str());
        return status.success();
    } catch (const std::exception& e) {
        std::printf("sandboxed spawn:      FAILED: %s\n", e.what());
        return false;
    }
}

// Each manifest and what it gives up; false if any is invalid. The names of
// the valid ones with a `sandbox.egress` list go to `with_egress`.
bool report_patterns(const std::filesystem::path& dir, std::vector<std::string>& with_egress) {
    const Discovery found = discover_patterns(dir);
    std::printf("patterns:             %zu valid, %zu invalid in %s\n", found.patterns.size(),
                found.errors.size(), dir.c_str());
    for (const auto& [name, manifest] : found.patterns) {
        const std::vector<std::string> weakened = confinement_weakenings(manifest);
        if (weakened.empty()) std::printf("  %-20s default confinement\n", name.c_str());
        for (const std::string& w : weakened)
            std::printf("  %-20s WEAKENED: %s\n", name.c_str(), w.c_str());
        if (!manifest.sandbox.egress.empty()) with_egress.push_back(name);
    }
    for (const FileError& e : found.errors)
        std::printf("  invalid: %s\n", e.what());
    return found.errors.empty();
}

// Who may drive the launcher, as configured: listeners, how callers are
// identified, the grants, where the audit trail goes. The TLS material and
// token keys are loaded, as the daemon would.
bool report_api(const LauncherConfig& config) {
    bool ok = true;
    std::printf("api unix socket:      %s (callers identified by SO_PEERCRED)\n",
                config.grpc_socket.c_str());
    if (config.grpc_port > 0) {
        std::printf(
            "api plain tcp:        127.0.0.1:%d WEAKENED: api.allow_insecure_loopback, no "
            "identity but a bearer token's\n",
            config.grpc_port);
    }
    if (config.api.tls) {
        try {
            ReloadableTlsCredentials tls(
                {config.api.tls->cert, config.api.tls->key, config.api.tls->client_ca});
            std::printf("api mutual tls:       %s:%d (client certificates verified against %s)\n",
                        config.api.tls->listen_host.c_str(), config.api.tls->listen_port,
                        config.api.tls->client_ca.c_str());
        } catch (const std::exception& e) {
            ok = false;
            std::printf("api mutual tls:       FAILED: %s\n", e.what());
        }
    }
    if (config.api.tokens) {
        try {
            const auth::JwtKeySet keys = auth::JwtKeySet::load(config.api.tokens->keys);
            std::printf("api bearer tokens:    issuer %s, %zu keys from %s\n",
                        config.api.tokens->settings.issuer.c_str(), keys.size(),
                        config.api.tokens->keys.c_str());
        } catch (const std::exception& e) {
            ok = false;
            std::printf("api bearer tokens:    FAILED: %s\n", e.what());
        }
    }
    if (!config.api.policy) {
        std::printf(
            "api policy:           default: root and group pattern-launcher may do "
            "everything, nobody else anything\n");
    } else {
        std::printf("api policy:           %zu grants\n", config.api.policy->grants().size());
        for (const auth::Grant& g : config.api.policy->grants()) {
            std::string rpcs;
            for (auth::Rpc rpc : g.rpcs)
                rpcs += (rpcs.empty() ? "" : ",") + std::string(auth::rpc_name(rpc));
            std::printf("  %-20s %s: %s on namespaces %s, patterns %s\n", g.name.c_str(),
                        g.match.describe().c_str(), rpcs.c_str(), join(g.namespaces).c_str(),
                        join(g.patterns).c_str());
        }
    }
    std::printf("api audit trail:      %s\n",
                config.api.audit_log.empty()
                    ? "the journal under systemd, else /var/log/pattern-launcher/audit.jsonl"
                    : config.api.audit_log.c_str());
    return ok;
}

// What egress needs of this host: nftables (the launcher's table, through
// libnftables) and IPv4 forwarding. Both are looked at without changing
// anything: the table goes through nft's checker only (the kernel validates
// the batch, then it is aborted), and ip_forward is read, never written.
// They are problems only when a manifest has an egress list: such a
// pattern's start would fail (FAILED_PRECONDITION without forwarding);
// otherwise they are notes.
bool report_egress(const LauncherConfig& config, const std::vector<std::string>& with_egress) {
    const bool needed = !with_egress.empty();
    const EgressPool pool(config.egress.pool);
    std::printf("egress:               %s; pool %s (%u keys at once), names resolved every %llds\n",
                needed ? ("lists in " + join(with_egress)).c_str() : "no manifest has a list",
                sandbox::to_string(config.egress.pool).c_str(), pool.capacity(),
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(config.egress.resolve_interval)
                        .count()));
    for (const auto& [tenant, destinations] : config.egress.tenants) {
        std::string list;
        for (const EgressDestination& d : destinations)
            list += (list.empty() ? "" : " ") + d.text;
        std::printf("  tenant %-13s adds %s\n", tenant.c_str(), list.c_str());
    }
    bool ok = true;
    // The table as the launcher would write it, with one key in the pool's
    // first slot, so that the sets, maps and chains of a key are checked too.
    try {
        sandbox::EgressTableSpec spec;
        spec.pool = config.egress.pool;
        const EgressSlot slot = pool.slot(1);
        const sandbox::EgressKey key{"check",
                                     spec.link_prefix + "1",
                                     slot.pattern,
                                     {{sandbox::EgressAllow::Protocol::kTcp,
                                       {{0xc0000200u}, 24},
                                       443,
                                       443}}};  // 192.0.2.0/24
        sandbox::NftContext nft;
        nft.check(sandbox::render_table(spec, {key}));
        std::printf(
            "egress nftables:      ok (table inet %s passes nft's checker; nothing applied)\n",
            std::string(sandbox::kEgressTableName).c_str());
    } catch (const std::exception& e) {
        if (needed) ok = false;
        std::printf("egress nftables:      %s: %s\n", needed ? "FAILED" : "unavailable", e.what());
    }
    try {
        if (sandbox::ipv4_forwarding_enabled()) {
            std::printf("egress forwarding:    on (net.ipv4.ip_forward = 1)\n");
        } else {
            if (needed) ok = false;
            std::printf(
                "egress forwarding:    %s: off (net.ipv4.ip_forward = 0)%s; fix: sysctl -w "
                "net.ipv4.ip_forward=1, or a file in /etc/sysctl.d/ with net.ipv4.ip_forward = 1\n",
                needed ? "FAILED" : "note",
                needed ? ", patterns with an egress list cannot start"
                       : ", needed once a manifest has an egress list");
        }
    } catch (const std::exception& e) {
        if (needed) ok = false;
        std::printf("egress forwarding:    %s: %s\n", needed ? "FAILED" : "unknown", e.what());
    }
    return ok;
}

}  // namespace

int run_host_check(const CheckFlags& flags) {
    const std::filesystem::path& config_file = flags.config_file;
    const std::filesystem::path& patterns_dir = flags.patterns_dir;
    LauncherConfig config;
    if (!config_file.empty()) config = load_config(config_file);
    if (!patterns_dir.empty()) config.patterns_dir = patterns_dir;

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
    std::unique_ptr<HostConfinement> host;
    try {
        host = std::make_unique<HostConfinement>(config);
        std::printf("init:                 %s\n", host->init_path().c_str());
        std::printf("landlock:             %s\n", host->landlock().describe().c_str());
        std::printf("identities:           %u-%u (%zu named in /etc/passwd or /etc/group)\n",
                    config.identity_range.first, config.identity_range.last(),
                    IdentityPool(config.identity_range, ids_named_in("/etc/passwd", "/etc/group"))
                        .excluded());
    } catch (const std::exception& e) {
        ok = false;
        std::printf("init:                 FAILED: %s\n", e.what());
    }
    if (host) ok = try_sandboxed_spawn(mount, *host, config.identity_range.first) && ok;
    std::vector<std::string> with_egress;
    if (!config_file.empty() || !patterns_dir.empty()) {
        try {
            ok = report_patterns(config.patterns_dir, with_egress) && ok;
        } catch (const std::exception& e) {
            ok = false;
            std::printf("patterns:             FAILED: %s\n", e.what());
        }
    }
    ok = report_egress(config, with_egress) && ok;
    ok = report_api(config) && ok;
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
