#include "config/config.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>
#include <system_error>
#include <vector>

#include "config/egress_section.h"
#include "config/namespace_map.h"
#include "config/yaml_strict.h"

namespace launcher {

namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

int to_port(const fs::path& file, const Field& field, int min) {
    return static_cast<int>(yaml_strict::to_integer(file, field, min, 65535));
}

std::string to_http_path(const fs::path& file, const Field& field) {
    std::string path = yaml_strict::to_string(file, field);
    if (!path.starts_with('/'))
        yaml_strict::fail(file, field, "must start with '/', got '" + path + "'");
    return path;
}

LauncherConfig::Endpoint to_endpoint(const fs::path& file, const Field& field,
                                     LauncherConfig::Endpoint endpoint, int& port_line) {
    const Mapping map(file, field, {"port", "path"});
    if (const Field* f = map.find("port")) {
        endpoint.port = to_port(file, *f, 0);
        port_line = f->line();
    }
    if (const Field* f = map.find("path")) endpoint.path = to_http_path(file, *f);
    return endpoint;
}

int to_count(const fs::path& file, const Field& field) {
    return static_cast<int>(
        yaml_strict::to_integer(file, field, 1, std::numeric_limits<int>::max()));
}

// `namespace_quotas`: namespace id -> the resources keys plus max_processes.
std::map<std::string, NamespaceQuota> to_namespace_quotas(const fs::path& file,
                                                          const Field& field) {
    std::map<std::string, NamespaceQuota> quotas;
    for (const Field& value :
         namespace_map_entries(file, field, "a mapping of namespace id to quota")) {
        const std::string& id = value.key;
        std::vector<std::string_view> keys = yaml_strict::resource_keys();
        keys.emplace_back("max_processes");
        const Mapping map(file, value, keys);
        NamespaceQuota quota;
        quota.resources = yaml_strict::to_resources(file, map);
        if (const Field* f = map.find("max_processes")) quota.max_processes = to_count(file, *f);
        quotas.emplace(id, std::move(quota));
    }
    return quotas;
}

// `identity_range: FIRST-LAST`, both included. Ids with a fixed meaning on
// every Linux host are refused, so a key can never run as one of them.
IdRange to_identity_range(const fs::path& file, const Field& field) {
    const std::string text = yaml_strict::to_string(file, field);
    const std::size_t dash = text.find('-');
    const auto first =
        dash == std::string::npos ? std::nullopt : parse_decimal_id(text.substr(0, dash));
    const auto last =
        dash == std::string::npos ? std::nullopt : parse_decimal_id(text.substr(dash + 1));
    if (!first || !last) {
        const std::string expected =
            "expected FIRST-LAST, two decimal ids (e.g. 1879048192-1879113727), got '";
        yaml_strict::fail(file, field, expected + text + "'");
    }
    const std::string range = std::to_string(*first) + "-" + std::to_string(*last);
    if (*first > *last) {
        yaml_strict::fail(file, field,
                          "first (" + std::to_string(*first) + ") must not be greater than last (" +
                              std::to_string(*last) + ")");
    }
    auto includes = [&](std::uint64_t id) { return *first <= id && id <= *last; };
    if (includes(0)) yaml_strict::fail(file, field, range + " includes 0 (root)");
    if (*first <= 65519 && *last >= 61184) {
        yaml_strict::fail(file, field,
                          range + " overlaps 61184-65519, systemd's DynamicUser range");
    }
    if (includes(65534)) {
        yaml_strict::fail(file, field, range + " includes 65534 (nobody, the overflow id)");
    }
    if (includes(65535)) {
        yaml_strict::fail(file, field, range + " includes 65535 (the 16-bit (uid_t)-1, invalid)");
    }
    if (includes(std::numeric_limits<std::uint32_t>::max())) {
        yaml_strict::fail(file, field, range + " includes 4294967295 ((uid_t)-1, invalid)");
    }
    return IdRange{static_cast<std::uint32_t>(*first),
                   static_cast<std::uint32_t>(*last - *first + 1)};
}

// A port the launcher itself listens on, for the conflict checks.
struct OwnPort {
    std::string key;
    int port = 0;
    int line = 0;
};

}  // namespace

LauncherConfig load_config(const fs::path& file) {
    const YAML::Node root = yaml_strict::load_mapping_file(file);
    for (const auto& entry : root) {
        const YAML::Node key = entry.first;  // a copy: the iterator's value is a temporary
        if (key.IsScalar() && key.Scalar() != "launcher") {
            throw FileError(file, yaml_strict::line_of(key, 1),
                            "unknown key '" + key.Scalar() +
                                "' at the top level (known: launcher; every setting goes under "
                                "'launcher:')");
        }
    }
    const Mapping top(file, root, "", {"launcher"}, 1);
    const Mapping map(file, top.require("launcher"),
                      {"grpc_port",
                       "grpc_socket",
                       "patterns_dir",
                       "default_isolation",
                       "process_manager",
                       "resources",
                       "metrics",
                       "health",
                       "runtime_dir",
                       "init_path",
                       "cgroup_root",
                       "pattern_ports",
                       "limits_enforcement",
                       "default_grace_period",
                       "quotas",
                       "namespace_quotas",
                       "orphan_policy",
                       "log_dir",
                       "log_max_bytes",
                       "identity_range",
                       "api",
                       "egress",
                       "warm_pool"});

    std::error_code ec;
    const fs::path absolute_file = fs::absolute(file, ec);
    if (ec) throw FileError(file, 0, "cannot make the path absolute: " + ec.message());
    const fs::path base = absolute_file.parent_path();

    LauncherConfig config;
    std::vector<OwnPort> own_ports;
    if (const Field* f = map.find("grpc_port")) {
        config.grpc_port = to_port(file, *f, 0);
        own_ports.push_back({f->path, config.grpc_port, f->line()});
    }
    if (const Field* f = map.find("api")) config.api = to_api_security(file, *f, base);
    if (const Field* f = map.find("patterns_dir")) {
        config.patterns_dir = yaml_strict::to_path(file, *f, base);
    } else {
        config.patterns_dir = (base / config.patterns_dir).lexically_normal();
    }
    if (const Field* f = map.find("default_isolation")) {
        const std::string text = yaml_strict::to_string(file, *f);
        const std::optional<Isolation> level = parse_isolation(text);
        if (!level) {
            yaml_strict::fail(
                file, *f,
                "unknown isolation level '" + text + "' (known: none, namespace, session)");
        }
        config.default_isolation = *level;
    }
    if (const Field* f = map.find("process_manager")) {
        const Mapping pm(file, *f,
                         {"resync_interval", "backoff_period", "max_concurrent_starts",
                          "circuit_breaker_threshold"});
        if (const Field* g = pm.find("resync_interval")) {
            config.process_manager.resync_interval = yaml_strict::to_duration(file, *g);
        }
        if (const Field* g = pm.find("backoff_period")) {
            config.process_manager.backoff_period = yaml_strict::to_duration(file, *g);
        }
        if (const Field* g = pm.find("max_concurrent_starts")) {
            config.process_manager.max_concurrent_starts = to_count(file, *g);
        }
        if (const Field* g = pm.find("circuit_breaker_threshold")) {
            config.process_manager.circuit_breaker_threshold = to_count(file, *g);
        }
    }
    if (const Field* f = map.find("resources"))
        config.resources = yaml_strict::to_resources(file, *f);
    if (const Field* f = map.find("metrics")) {
        int line = f->line();
        config.metrics = to_endpoint(file, *f, config.metrics, line);
        own_ports.push_back({f->path + ".port", config.metrics.port, line});
    }
    if (const Field* f = map.find("health")) {
        int line = f->line();
        config.health = to_endpoint(file, *f, config.health, line);
        own_ports.push_back({f->path + ".port", config.health.port, line});
    }
    if (const Field* f = map.find("init_path"))
        config.init_path = yaml_strict::to_path(file, *f, base);
    if (const Field* f = map.find("runtime_dir")) {
        config.runtime_dir = yaml_strict::to_path(file, *f, base);
    }
    if (const Field* f = map.find("log_dir")) config.log_dir = yaml_strict::to_path(file, *f, base);
    if (const Field* f = map.find("log_max_bytes")) {
        config.log_max_bytes = yaml_strict::to_size(file, *f);
        if (config.log_max_bytes < 4096) yaml_strict::fail(file, *f, "must be at least 4Ki");
    }
    if (const Field* f = map.find("grpc_socket")) {
        config.grpc_socket = yaml_strict::to_path(file, *f, base);
    } else {
        config.grpc_socket = config.runtime_dir / "api.sock";
    }
    if (const Field* f = map.find("cgroup_root")) {
        const fs::path given(yaml_strict::to_nonempty_string(file, *f));
        if (!given.is_absolute()) {
            yaml_strict::fail(
                file, *f,
                "must be an absolute path (e.g. /sys/fs/cgroup/pattern-launcher), got '" +
                    given.string() + "'");
        }
        config.cgroup_root = yaml_strict::to_path(file, *f, base);
    }
    if (const Field* f = map.find("pattern_ports")) {
        const Mapping ports(file, *f, {"first", "last"});
        if (const Field* g = ports.find("first")) config.pattern_ports.first = to_port(file, *g, 1);
        if (const Field* g = ports.find("last")) config.pattern_ports.last = to_port(file, *g, 1);
        if (config.pattern_ports.first > config.pattern_ports.last) {
            const Field* blame = ports.find("last") ? ports.find("last") : ports.find("first");
            yaml_strict::fail(file, blame ? *blame : *f,
                              "first (" + std::to_string(config.pattern_ports.first) +
                                  ") must not be greater than last (" +
                                  std::to_string(config.pattern_ports.last) + ")");
        }
    }
    if (const Field* f = map.find("identity_range")) {
        config.identity_range = to_identity_range(file, *f);
    }
    if (const Field* f = map.find("limits_enforcement")) {
        const std::string text = yaml_strict::to_string(file, *f);
        if (text == "strict") {
            config.limits_enforcement = LimitsEnforcement::kStrict;
        } else if (text == "warn") {
            config.limits_enforcement = LimitsEnforcement::kWarn;
        } else {
            yaml_strict::fail(file, *f, "unknown mode '" + text + "' (known: strict, warn)");
        }
    }
    if (const Field* f = map.find("default_grace_period")) {
        config.default_grace_period = yaml_strict::to_duration(file, *f);
    }
    if (const Field* f = map.find("quotas")) {
        const Mapping quotas(file, *f, {"max_processes", "max_processes_per_namespace"});
        if (const Field* g = quotas.find("max_processes")) {
            config.quotas.max_processes = to_count(file, *g);
        }
        if (const Field* g = quotas.find("max_processes_per_namespace")) {
            config.quotas.max_processes_per_namespace = to_count(file, *g);
        }
    }
    if (const Field* f = map.find("namespace_quotas")) {
        config.namespace_quotas = to_namespace_quotas(file, *f);
    }
    if (const Field* f = map.find("egress")) config.egress = to_egress_settings(file, *f);
    if (const Field* f = map.find("warm_pool")) config.warm_pool = to_warm_pool_settings(file, *f);
    if (const Field* f = map.find("orphan_policy")) {
        const std::string text = yaml_strict::to_string(file, *f);
        if (text == "adopt") {
            config.orphan_policy = OrphanPolicy::kAdopt;
        } else if (text == "kill") {
            config.orphan_policy = OrphanPolicy::kKill;
        } else {
            yaml_strict::fail(file, *f, "unknown policy '" + text + "' (known: adopt, kill)");
        }
    }

    // The launcher's own listeners must not collide with each other or with
    // the ports it hands out to patterns.
    const PortRange& range = config.pattern_ports;
    for (std::size_t i = 0; i < own_ports.size(); ++i) {
        const OwnPort& own = own_ports[i];
        if (own.port == 0) continue;
        if (own.port >= range.first && own.port <= range.last) {
            throw FileError(file, own.line,
                            own.key + ": port " + std::to_string(own.port) +
                                " is inside launcher.pattern_ports (" +
                                std::to_string(range.first) + "-" + std::to_string(range.last) +
                                "), which are handed out to patterns");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (own_ports[j].port == own.port) {
                throw FileError(file, own.line,
                                own.key + ": port " + std::to_string(own.port) +
                                    " is already used by " + own_ports[j].key);
            }
        }
    }
    if (config.grpc_port > 0 && !config.api.allow_insecure_loopback) {
        yaml_strict::fail(file, *map.find("grpc_port"),
                          "a TCP listener without TLS is refused: use api.tls (mutual TLS), or "
                          "set api.allow_insecure_loopback: true for loopback development");
    }
    return config;
}

}  // namespace launcher
