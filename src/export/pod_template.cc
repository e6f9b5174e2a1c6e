// The pod a key runs in: identity, seccomp, capabilities, the file view's
// writable places, resources, probes and the environment the launcher sets.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "export/kubernetes_names.h"
#include "export/kubernetes_parts.h"

namespace launcher::kubernetes::detail {
namespace {

using nlohmann::ordered_json;

// Where the launcher's view puts the state directory (core/confinement.h).
constexpr const char* kStateDirectory = "/run/pattern/state";

// The uid and gid inside a pod that does not name its own: the conventional
// non-root "nonroot" id of distroless images. With hostUsers: false every
// pod's ids map to a host range of its own, so one id for all pods separates
// them as the launcher's id per key does.
constexpr std::uint32_t kDefaultPodId = 65532;
// A user-namespaced pod maps ids 0..65535 (KEP-127).
constexpr std::uint32_t kMaxPodId = 65535;

std::int64_t ceil_seconds(std::chrono::milliseconds ms) {
    return std::max<std::int64_t>(1, (ms.count() + 999) / 1000);
}

std::string kube_capability(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (name.starts_with("CAP_")) name.erase(0, 4);
    return name;
}

ordered_json env_var(const std::string& name, const std::string& value) {
    return {{"name", name}, {"value", value}};
}

// The downward API: a session's id and process id come from the labels and
// annotations the proxy gives the Pod it makes from the template.
ordered_json env_from_field(const std::string& name, const std::string& field) {
    return {{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", field}}}}}};
}

// The variables of pattern_environment() (core/spawn_plan.cc), less those
// that mean nothing here: NOTIFY_SOCKET (no sd_notify), LISTEN_FDS (the
// pattern binds GRPC_PORT itself).
ordered_json environment(const KeyTarget& t, const ExportOptions& o) {
    const Manifest& m = *t.manifest;
    ordered_json env = ordered_json::array();
    if (!m.environment.count("PATH"))
        env.push_back(env_var("PATH", "/usr/local/bin:/usr/bin:/bin"));
    env.push_back(env_var("PATTERN_NAME", m.name));
    env.push_back(env_var("NAMESPACE", t.key.namespace_id));
    if (t.template_only) {
        env.push_back(env_from_field("SESSION_ID", "metadata.annotations['prism.io/session']"));
        env.push_back(env_from_field("PROCESS_ID", "metadata.annotations['prism.io/process-id']"));
    } else {
        env.push_back(env_var("SESSION_ID", t.key.session_id));
        env.push_back(env_var("PROCESS_ID", t.key.process_id()));
    }
    env.push_back(env_var("GRPC_PORT", std::to_string(o.grpc_port)));
    if (m.healthcheck.type == HealthcheckType::kHttp)
        env.push_back(env_var("HEALTH_PORT", std::to_string(o.health_port)));
    if (m.sandbox.state_directory) env.push_back(env_var("STATE_DIRECTORY", kStateDirectory));
    for (const auto& [name, value] : m.environment) {
        if (!is_reserved_env_name(name)) env.push_back(env_var(name, value));
    }
    return env;
}

ordered_json probe_action(const Manifest& m, const ExportOptions& o) {
    switch (m.healthcheck.type) {
        case HealthcheckType::kHttp:
            return {{"httpGet", {{"path", m.healthcheck.path}, {"port", "health"}}}};
        case HealthcheckType::kGrpc: {
            ordered_json grpc = {{"port", o.grpc_port}};
            if (!m.healthcheck.service.empty()) grpc["service"] = m.healthcheck.service;
            return {{"grpc", grpc}};
        }
        case HealthcheckType::kTcp:
        case HealthcheckType::kNotify:  // no sd_notify: the gRPC port accepting is the sign of life
            break;
    }
    return {{"tcpSocket", {{"port", "grpc"}}}};
}

void add_probes(ordered_json& container, const Manifest& m, const ExportOptions& o) {
    const Healthcheck& h = m.healthcheck;
    // Until the first success, every second for start_timeout (the
    // launcher's time to READY or to a passing probe).
    ordered_json startup = probe_action(m, o);
    startup["periodSeconds"] = 1;
    startup["timeoutSeconds"] = ceil_seconds(h.timeout);
    startup["failureThreshold"] = ceil_seconds(h.start_timeout);
    // Then every interval; failure_threshold failures in a row make the key
    // unhealthy (readiness: the Service stops sending) and, as a failed
    // liveness check does for the launcher's restart policy, restart it.
    ordered_json steady = probe_action(m, o);
    steady["periodSeconds"] = ceil_seconds(h.interval);
    steady["timeoutSeconds"] = ceil_seconds(h.timeout);
    steady["failureThreshold"] = h.failure_threshold;
    container["startupProbe"] = startup;
    container["readinessProbe"] = steady;
    container["livenessProbe"] = steady;
}

ordered_json resources(const Resources& r) {
    ordered_json limits = ordered_json::object();
    if (r.cpu_limit) limits["cpu"] = cpu_quantity(*r.cpu_limit);
    if (r.memory_limit) limits["memory"] = memory_quantity(*r.memory_limit);
    if (limits.empty()) return ordered_json::object();
    // Requests equal to the limits: the scheduler reserves what the launcher
    // would let the key use, and the pod is in the Guaranteed QoS class.
    return {{"limits", limits}, {"requests", limits}};
}

struct PodIds {
    std::uint32_t uid = kDefaultPodId;
    std::uint32_t gid = kDefaultPodId;
};

PodIds pod_ids(const Manifest& m) {
    PodIds ids;
    if (m.sandbox.uid) ids.uid = *m.sandbox.uid;
    if (m.sandbox.gid) ids.gid = *m.sandbox.gid;
    if (ids.uid > kMaxPodId || ids.gid > kMaxPodId) {
        throw ExportError("pattern '" + m.name + "': sandbox.user/group " +
                          std::to_string(ids.uid) + ":" + std::to_string(ids.gid) +
                          " is outside the ids 0-65535 that a pod with hostUsers: false has");
    }
    return ids;
}

ordered_json memory_volume(const std::string& name, std::uint64_t bytes) {
    return {{"name", name},
            {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", memory_quantity(bytes)}}}};
}

}  // namespace

std::vector<std::string> not_carried_over(const Manifest& m, bool deployment) {
    std::vector<std::string> out;
    if (m.resources.pids_limit)
        out.push_back("pids_limit " + std::to_string(*m.resources.pids_limit) +
                      ": a node-level setting on Kubernetes (kubelet podPidsLimit)");
    if (m.resources.memory_swap_limit)
        out.push_back("memory_swap_limit: swap is a node-level setting on Kubernetes");
    if (m.resources.cpu_weight)
        out.push_back("cpu_weight: Kubernetes derives cpu.weight from the CPU request");
    if (m.sandbox.landlock)
        out.push_back(
            "landlock signal and abstract-socket scoping: no Kubernetes field; the pod's own pid "
            "and network namespaces separate tenants instead");
    if (m.healthcheck.type == HealthcheckType::kNotify)
        out.push_back(
            "healthcheck notify: no sd_notify on Kubernetes; probed as tcp on the gRPC port");
    if (deployment && m.restart != RestartPolicy::kAlways)
        out.push_back("restart on-failure/never: a Deployment always restarts its pod");
    return out;
}

Resources effective_resources(const Manifest& m, const LauncherConfig& config) {
    Resources r = m.resources;
    if (!r.cpu_limit) r.cpu_limit = config.resources.cpu_limit;
    if (!r.memory_limit) r.memory_limit = config.resources.memory_limit;
    if (!r.memory_swap_limit) r.memory_swap_limit = config.resources.memory_swap_limit;
    if (!r.pids_limit) r.pids_limit = config.resources.pids_limit;
    if (!r.cpu_weight) r.cpu_weight = config.resources.cpu_weight;
    return r;
}

std::string cpu_quantity(double cpus) {
    const auto milli = static_cast<long long>(std::llround(cpus * 1000.0));
    if (milli % 1000 == 0) return std::to_string(milli / 1000);
    return std::to_string(std::max(1LL, milli)) + "m";
}

std::string memory_quantity(std::uint64_t bytes) {
    static constexpr const char* kUnits[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    if (bytes == 0 || bytes % 1024 != 0) return std::to_string(bytes);
    int unit = -1;
    while (bytes % 1024 == 0 && unit < 5) {
        bytes /= 1024;
        ++unit;
    }
    return std::to_string(bytes) + kUnits[unit];
}

ordered_json pod_template(const KeyTarget& t, const LauncherConfig& config, const ExportOptions& o,
                          const ResolvedEgress& egress, const std::vector<std::string>& key_notes) {
    const Manifest& m = *t.manifest;
    const SandboxSettings& sb = m.sandbox;
    const PodIds ids = pod_ids(m);
    const bool root = ids.uid == 0;

    ordered_json container;
    container["name"] = dns_label(m.name);
    const auto image = o.images.find(m.name);
    container["image"] =
        image != o.images.end() ? image->second : o.image_prefix + m.name + ":" + m.version;
    container["env"] = environment(t, o);
    ordered_json ports = ordered_json::array();
    ports.push_back({{"name", "grpc"}, {"containerPort", o.grpc_port}, {"protocol", "TCP"}});
    if (m.healthcheck.type == HealthcheckType::kHttp)
        ports.push_back(
            {{"name", "health"}, {"containerPort", o.health_port}, {"protocol", "TCP"}});
    container["ports"] = ports;
    container["resources"] = resources(effective_resources(m, config));
    ordered_json caps = {{"drop", {"ALL"}}};
    if (!sb.capabilities.empty()) {
        ordered_json add = ordered_json::array();
        for (const std::string& c : sb.capabilities) {
            // The launcher sets no_new_privs for every pattern; Kubernetes
            // refuses allowPrivilegeEscalation: false next to CAP_SYS_ADMIN.
            if (kube_capability(c) == "SYS_ADMIN")
                throw ExportError("pattern '" + m.name +
                                  "': CAP_SYS_ADMIN cannot be kept with allowPrivilegeEscalation: "
                                  "false, which Kubernetes requires for it to match the launcher's "
                                  "no_new_privs");
            add.push_back(kube_capability(c));
        }
        caps["add"] = add;
    }
    container["securityContext"] = {{"allowPrivilegeEscalation", false},
                                    {"privileged", false},
                                    {"readOnlyRootFilesystem", true},
                                    {"capabilities", caps}};
    add_probes(container, m, o);
    // The launcher's view: the host read-only, private /tmp, /var/tmp and
    // /dev/shm of tmp_size each, and the state directory where asked.
    ordered_json mounts = ordered_json::array();
    ordered_json volumes = ordered_json::array();
    const std::pair<const char*, const char*> scratch[] = {
        {"tmp", "/tmp"}, {"var-tmp", "/var/tmp"}, {"dev-shm", "/dev/shm"}};
    for (const auto& [name, path] : scratch) {
        mounts.push_back({{"name", name}, {"mountPath", path}});
        volumes.push_back(memory_volume(name, sb.tmp_size));
    }
    if (sb.state_directory) {
        // Kept across restarts of the container, removed with the pod: as the
        // launcher keeps it across restarts of the process and removes it
        // with the key.
        mounts.push_back({{"name", "state"}, {"mountPath", kStateDirectory}});
        volumes.push_back({{"name", "state"}, {"emptyDir", ordered_json::object()}});
    }
    container["volumeMounts"] = mounts;

    ordered_json pod_security = {{"runAsNonRoot", !root},
                                 {"runAsUser", ids.uid},
                                 {"runAsGroup", ids.gid},
                                 {"fsGroup", ids.gid}};
    if (sb.seccomp == "none") {
        pod_security["seccompProfile"] = {{"type", "Unconfined"}};
    } else {
        pod_security["seccompProfile"] = {
            {"type", "Localhost"},
            {"localhostProfile", o.seccomp_subdir + "/" + sb.seccomp + ".json"}};
    }

    ordered_json spec;
    // A user namespace of the pod's own (KEP-127), as the launcher's ids are
    // the key's own; Kubernetes refuses it together with hostNetwork.
    if (sb.network == NetworkMode::kHost) {
        spec["hostNetwork"] = true;
    } else {
        spec["hostUsers"] = false;
    }
    // Patterns do not talk to the Kubernetes API, nor learn other Services
    // from the environment.
    spec["automountServiceAccountToken"] = false;
    spec["enableServiceLinks"] = false;
    if (t.key.level == Isolation::kSession || t.template_only) {
        spec["restartPolicy"] = m.restart == RestartPolicy::kAlways      ? "Always"
                                : m.restart == RestartPolicy::kOnFailure ? "OnFailure"
                                                                         : "Never";
    }
    spec["terminationGracePeriodSeconds"] =
        ceil_seconds(m.grace_period.value_or(config.default_grace_period));
    spec["securityContext"] = pod_security;
    // The names the egress list holds, as the launcher's generated
    // /etc/hosts shows them; no other name resolves (the NetworkPolicy
    // allows no DNS server).
    ordered_json aliases = ordered_json::array();
    std::map<sandbox::Ipv4Address, std::vector<std::string>> by_address;
    for (const auto& [name, addresses] : egress.names) {
        for (const auto& a : addresses)
            by_address[a].push_back(name);
    }
    for (const auto& [address, names] : by_address)
        aliases.push_back({{"ip", sandbox::to_string(address)}, {"hostnames", names}});
    if (!aliases.empty()) spec["hostAliases"] = aliases;
    spec["containers"] = ordered_json::array({container});
    spec["volumes"] = volumes;

    ordered_json metadata = {{"labels", pod_labels(t)},
                             {"annotations", pod_annotations(t, key_notes)}};
    return {{"metadata", metadata}, {"spec", spec}};
}

}  // namespace launcher::kubernetes::detail
