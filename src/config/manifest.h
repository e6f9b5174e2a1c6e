// Pattern manifests (patterns/<name>/manifest.yaml): the RFC-035 schema plus
// a `sandbox` section, parsed strictly. Every error names the file and line.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/isolation_key.h"
#include "config/config_keys.h"
#include "config/egress.h"

namespace launcher {

// kGrpc: grpc.health.v1.Health/Check on the pattern's gRPC socket.
enum class HealthcheckType { kHttp, kNotify, kTcp, kGrpc };
enum class NetworkMode { kHost, kIsolated };
// When a pattern process that was RUNNING ends: restart it always, only
// after a failure (non-zero exit, a signal, an OOM kill, a failed liveness
// check), or never.
enum class RestartPolicy { kAlways, kOnFailure, kNever };

// [A-Za-z_][A-Za-z0-9_]*
bool is_valid_env_name(std::string_view name);

// Names the launcher sets for every pattern (PATTERN_NAME, GRPC_PORT,
// LISTEN_FDS, ...); neither a manifest nor a request may set them.
bool is_reserved_env_name(std::string_view name);
// Those names, in the order messages list them.
std::vector<std::string> reserved_env_names();

// A problem in a YAML file: "<file>:<line>: <message>" (line is 1-based;
// 0 when the problem is the file as a whole).
class FileError : public std::runtime_error {
public:
    FileError(std::filesystem::path file, int line, const std::string& message);
    const std::filesystem::path& file() const { return file_; }
    int line() const { return line_; }
    const std::string& message() const { return message_; }

private:
    std::filesystem::path file_;
    int line_;
    std::string message_;
};

// Parses "100ms", "5s", "2m", "1h" (a positive whole number and a unit);
// throws std::invalid_argument with the reason.
std::chrono::milliseconds parse_duration(std::string_view text);

struct Healthcheck {
    HealthcheckType type = HealthcheckType::kHttp;
    std::string path = "/health";  // for http
    // for grpc: the service Check asks about; "" (the default) is the server
    // as a whole (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
    std::string service;
    std::chrono::milliseconds interval{30000};
    std::chrono::milliseconds timeout{5000};
    int failure_threshold = 3;
    std::chrono::milliseconds start_timeout{10000};
};

struct Resources {
    std::optional<double> cpu_limit;                 // CPUs, > 0
    std::optional<std::uint64_t> memory_limit;       // bytes
    std::optional<std::uint64_t> memory_swap_limit;  // bytes
    std::optional<std::uint64_t> pids_limit;         // > 0
    std::optional<std::uint32_t> cpu_weight;         // 1..10000
};

// Without a `sandbox` section a pattern gets the strongest confinement the
// host supports; each key here can only be given up explicitly, and every
// such choice is listed by confinement_weakenings() (confinement.h).
struct SandboxSettings {
    NetworkMode network = NetworkMode::kIsolated;
    std::string seccomp = "default";  // a built-in profile name, or "none"
    // Namespaces: any of mount, pid, ipc, uts, cgroup, user (network is
    // `network`). mount gives the private file view; pid runs the pattern
    // under pattern-launcher-init as PID 1, with its own /proc; cgroup shows
    // it only its own cgroup. user is extra (not a default): the pattern's
    // ids are then mapped one to one into a user namespace.
    std::vector<std::string> namespaces{"mount", "pid", "ipc", "uts", "cgroup"};
    bool has_namespace(std::string_view name) const {
        return std::find(namespaces.begin(), namespaces.end(), name) != namespaces.end();
    }
    // unset: the key's own uid and gid from launcher.identity_range
    std::optional<std::string> user;   // name or numeric uid, as written
    std::optional<std::string> group;  // name or numeric gid, as written
    // The ids they name, looked up (NSS) when the manifest is loaded, so
    // that nothing asks the account databases at spawn. uid: sandbox.user's.
    // gid: sandbox.group's, else sandbox.user's primary group (for a numeric
    // uid without a passwd entry, the same number). Unset when neither is set.
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    bool allow_root = false;                // required for a user that is uid 0
    std::vector<std::string> capabilities;  // kept (bounding/permitted/effective) and ambient
    bool landlock = true;  // signal and abstract-socket scoping, where the kernel has it
    std::uint64_t tmp_size = 64ull << 20;  // each of the view's /tmp, /var/tmp, /dev/shm
    // A writable directory per key at /run/pattern/state ($STATE_DIRECTORY),
    // owned by the key's id; kept across restarts of the pattern and of the
    // launcher, removed when the key ends.
    bool state_directory = false;
    // `egress`: what an isolated network may reach
    // beyond lo, through a veth pair of its own. Empty: only lo. Not with
    // network: host. A weakening (confinement_report.h).
    std::vector<EgressDestination> egress;
};

struct Manifest {
    std::filesystem::path file;       // the manifest.yaml it came from
    std::filesystem::path directory;  // the pattern directory
    std::string name;                 // [a-z0-9][a-z0-9._-]{0,62}
    std::string version;
    // description, author and backend_slots (RFC-035) are checked for their
    // types and not kept: nothing in the launcher reads them.
    std::filesystem::path executable;  // absolute, exists, executable
    Isolation isolation_level = Isolation::kNamespace;
    std::optional<std::chrono::milliseconds> grace_period;  // terminate grace period
    RestartPolicy restart = RestartPolicy::kOnFailure;      // `restart: always|on-failure|never`
    Healthcheck healthcheck;
    Resources resources;
    std::map<std::string, std::string> environment;
    // The launch-request config keys the pattern accepts. None (no section,
    // or an empty one): a request with any config is refused. Names that
    // request_variables.h forbids are refused whatever this says.
    std::vector<ConfigKeyRule> config_keys;
    // `accept_any_config: true`: keys it does not declare are accepted too
    // (still not the forbidden ones); a weakening (confinement_report.h).
    bool accept_any_config = false;
    SandboxSettings sandbox;
    // `warm_pool.namespaces`: tenants whose NAMESPACE key of this pattern the
    // launcher keeps running before any launch (config/warm_pool.h). Only
    // for isolation_level: namespace.
    std::vector<std::string> warm_namespaces;
    // `late_binding: true`: the pattern speaks the claim protocol
    // (docs/late-binding.md), so a process started without a session can be
    // given one later. `warm_pool.sessions`: per tenant, how many such
    // processes the launcher keeps ready for the tenant's SESSION keys.
    bool late_binding = false;
    std::map<std::string, int> warm_sessions;
};

// Parses and validates one manifest; throws FileError. Looks up
// sandbox.user and sandbox.group in the account databases (NSS, which a
// directory service can make slow): call it off the event loop.
Manifest parse_manifest(const std::filesystem::path& file);

struct Discovery {
    std::map<std::string, Manifest> patterns;  // by name
    std::vector<FileError> errors;             // invalid manifests, each skipped
};

// Scans <dir>/*/manifest.yaml (one level), parse_manifest() for each (so
// off the event loop too). Invalid manifests, and every
// manifest after the first that claims an already-used name, are listed in
// `errors` and skipped. Throws FileError (line 0) if `dir` cannot be read.
Discovery discover_patterns(const std::filesystem::path& dir);

}  // namespace launcher
