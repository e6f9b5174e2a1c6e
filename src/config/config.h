// The launcher's configuration: the RFC-035 `launcher:` YAML plus what a
// real deployment needs. Parsed strictly (unknown keys are errors with
// file:line); every key is documented in docs/configuration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "common/identity_pool.h"
#include "config/api_security.h"
#include "config/egress.h"
#include "config/manifest.h"
#include "config/warm_pool.h"

namespace launcher {

enum class LimitsEnforcement { kStrict, kWarn };
// What a restarted launcher does with pattern processes it finds still
// running in its cgroup subtree.
enum class OrphanPolicy { kAdopt, kKill };

// A ceiling shared by all of one namespace's processes (its parent cgroup).
struct NamespaceQuota {
    Resources resources;               // cpu_limit, memory_limit, pids_limit, ... on ns:<name>
    std::optional<int> max_processes;  // overrides quotas.max_processes_per_namespace
};

struct PortRange {
    int first = 20000;
    int last = 29999;
};

struct LauncherConfig {
    // API endpoints: the unix socket is the default; grpc_port 0 means no TCP.
    std::filesystem::path grpc_socket;  // default: <runtime_dir>/api.sock
    int grpc_port = 0;                  // plain TCP: refused unless api.allow_insecure_loopback
    // Who may call, how they prove it, and the audit trail (config api:).
    ApiSecurity api;

    std::filesystem::path patterns_dir = "patterns";
    Isolation default_isolation = Isolation::kNamespace;

    struct ProcessManager {
        std::chrono::milliseconds resync_interval{30000};
        std::chrono::milliseconds backoff_period{5000};
        int max_concurrent_starts = 10;
        // Consecutive failed starts or crashes after which a key stays FAILED.
        int circuit_breaker_threshold = 5;
    } process_manager;

    struct Quotas {
        std::optional<int> max_processes;                // whole launcher; unset: no limit
        std::optional<int> max_processes_per_namespace;  // each namespace; unset: no limit
    } quotas;
    std::map<std::string, NamespaceQuota> namespace_quotas;  // by namespace id
    OrphanPolicy orphan_policy = OrphanPolicy::kAdopt;

    // Defaults for patterns whose manifest sets no such limit.
    Resources resources;

    struct Endpoint {
        int port = 0;  // 0: disabled
        std::string path;
    };
    Endpoint metrics{0, "/metrics"};
    Endpoint health{0, "/health"};

    std::filesystem::path runtime_dir = "/run/pattern-launcher";
    // pattern-launcher-init, PID 1 of every pattern's pid namespace. Empty:
    // found next to our own executable (find_init_binary).
    std::filesystem::path init_path;
    // Pattern output where journald does not run: <log_dir>/<process id>.log,
    // each copied to .1 and truncated past log_max_bytes. Empty: <runtime_dir>/logs.
    std::filesystem::path log_dir;
    std::uint64_t log_max_bytes = 10 * 1024 * 1024;
    // Empty: the delegated cgroup under systemd, else <cgroup2 mount>/pattern-launcher.
    std::filesystem::path cgroup_root;
    PortRange pattern_ports;
    // The uids (each also the gid) handed out to isolation keys, one per key
    // whose manifest sets no sandbox.user/group. Why the default: IdRange.
    IdRange identity_range;
    LimitsEnforcement limits_enforcement = LimitsEnforcement::kStrict;
    std::chrono::milliseconds default_grace_period{10000};
    // `egress:`: the veth address pool, how often
    // names are resolved, each tenant's additions.
    EgressSettings egress;
    // `warm_pool.tenants`: NAMESPACE keys kept running per tenant (warm_pool.h).
    WarmPoolSettings warm_pool;
};

// Reads a config file. Relative paths in it are resolved against the
// file's directory. Throws FileError.
LauncherConfig load_config(const std::filesystem::path& file);

}  // namespace launcher
