#include "config/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#ifndef PL_SOURCE_DIR
#error "PL_SOURCE_DIR must name the source tree (target_compile_definitions)"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using launcher::FileError;
using launcher::LauncherConfig;

// A fresh directory under /tmp for one test, removed afterwards.
class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-config-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    // Writes <root>/etc/launcher.yaml and loads it.
    LauncherConfig load(const std::string& text) { return launcher::load_config(write(text)); }

    fs::path write(const std::string& text) {
        const fs::path file = root_ / "etc" / "launcher.yaml";
        fs::create_directories(file.parent_path());
        std::ofstream(file) << text;
        return file;
    }

    FileError error_of(const std::string& text) {
        const fs::path file = write(text);
        try {
            launcher::load_config(file);
        } catch (const FileError& e) {
            EXPECT_EQ(e.file(), file);
            return e;
        }
        ADD_FAILURE() << "no error for:\n" << text;
        return FileError(file, -1, "no error");
    }

    fs::path root_;
};

#define EXPECT_FILE_ERROR(text, want_line, want_message)    \
    do {                                                    \
        const FileError e_ = error_of(text);                \
        EXPECT_EQ(e_.line(), want_line) << e_.what();       \
        EXPECT_EQ(e_.message(), want_message) << e_.what(); \
    } while (0)

// The example from RFC-035 "Configuration", verbatim.
const char* const kRfcExample = R"(launcher:
  # Port for gRPC API
  grpc_port: 8982

  # Pattern discovery
  patterns_dir: ./patterns

  # Default isolation level (can be overridden per pattern)
  default_isolation: namespace

  # Process manager settings
  process_manager:
    resync_interval: 30s
    backoff_period: 5s
    max_concurrent_starts: 10

  # Resource limits (applied to all pattern processes)
  resources:
    cpu_limit: 2.0
    memory_limit: 1Gi

  # Metrics and observability
  metrics:
    port: 9092
    path: /metrics

  health:
    port: 9093
    path: /health
)";

TEST_F(ConfigTest, RfcExampleParses) {
    // Verbatim, its plain TCP port is refused (issue 13: no TCP without TLS) ...
    const FileError refused = error_of(kRfcExample);
    EXPECT_EQ(refused.line(), 3);
    EXPECT_NE(refused.message().find("a TCP listener without TLS is refused"), std::string::npos)
        << refused.what();
    // ... and accepted once loopback development is explicitly allowed.
    const LauncherConfig c =
        load(std::string(kRfcExample) + "  api:\n    allow_insecure_loopback: true\n");
    EXPECT_EQ(c.grpc_port, 8982);
    EXPECT_TRUE(c.api.allow_insecure_loopback);
    EXPECT_EQ(c.patterns_dir, root_ / "etc" / "patterns");
    EXPECT_EQ(c.default_isolation, launcher::Isolation::kNamespace);
    EXPECT_EQ(c.process_manager.resync_interval, 30s);
    EXPECT_EQ(c.process_manager.backoff_period, 5s);
    EXPECT_EQ(c.process_manager.max_concurrent_starts, 10);
    EXPECT_EQ(c.resources.cpu_limit, 2.0);
    EXPECT_EQ(c.resources.memory_limit, 1024u * 1024 * 1024);
    EXPECT_FALSE(c.resources.pids_limit.has_value());
    EXPECT_EQ(c.metrics.port, 9092);
    EXPECT_EQ(c.metrics.path, "/metrics");
    EXPECT_EQ(c.health.port, 9093);
    EXPECT_EQ(c.health.path, "/health");
    // Not in the RFC: defaults.
    EXPECT_EQ(c.runtime_dir, fs::path("/run/pattern-launcher"));
    EXPECT_EQ(c.grpc_socket, fs::path("/run/pattern-launcher/api.sock"));
    EXPECT_EQ(c.limits_enforcement, launcher::LimitsEnforcement::kStrict);
}

TEST_F(ConfigTest, EveryKeyParses) {
    const LauncherConfig c = load(R"(launcher:
  grpc_port: 0
  grpc_socket: /tmp/x/api.sock
  patterns_dir: /opt/patterns/
  default_isolation: session
  process_manager: {resync_interval: 1m, backoff_period: 250ms, max_concurrent_starts: 1,
                    circuit_breaker_threshold: 2}
  resources:
    cpu_limit: 0.25
    memory_limit: 512Mi
    memory_swap_limit: 0
    pids_limit: 64
    cpu_weight: 50
  metrics: {port: 9100, path: /m}
  health: {port: 9101}
  runtime_dir: /var/run/pl
  cgroup_root: /sys/fs/cgroup/pl.slice/pl
  pattern_ports: {first: 30000, last: 30010}
  identity_range: 200000-265535
  limits_enforcement: warn
  default_grace_period: 2s
  quotas: {max_processes: 100, max_processes_per_namespace: 10}
  namespace_quotas:
    tenant-a: {cpu_limit: 4, memory_limit: 8Gi, memory_swap_limit: 0, pids_limit: 1000,
               cpu_weight: 200, max_processes: 20}
  orphan_policy: kill
)");
    EXPECT_EQ(c.grpc_port, 0);
    EXPECT_EQ(c.grpc_socket, fs::path("/tmp/x/api.sock"));
    EXPECT_EQ(c.patterns_dir, fs::path("/opt/patterns"));
    EXPECT_EQ(c.default_isolation, launcher::Isolation::kSession);
    EXPECT_EQ(c.process_manager.resync_interval, 1min);
    EXPECT_EQ(c.process_manager.backoff_period, 250ms);
    EXPECT_EQ(c.process_manager.max_concurrent_starts, 1);
    EXPECT_EQ(c.process_manager.circuit_breaker_threshold, 2);
    EXPECT_EQ(c.resources.cpu_limit, 0.25);
    EXPECT_EQ(c.resources.memory_limit, 512u * 1024 * 1024);
    EXPECT_EQ(c.resources.memory_swap_limit, 0u);
    EXPECT_EQ(c.resources.pids_limit, 64u);
    EXPECT_EQ(c.resources.cpu_weight, 50u);
    EXPECT_EQ(c.metrics.port, 9100);
    EXPECT_EQ(c.metrics.path, "/m");
    EXPECT_EQ(c.health.port, 9101);
    EXPECT_EQ(c.health.path, "/health");
    EXPECT_EQ(c.runtime_dir, fs::path("/var/run/pl"));
    EXPECT_EQ(c.cgroup_root, fs::path("/sys/fs/cgroup/pl.slice/pl"));
    EXPECT_EQ(c.pattern_ports.first, 30000);
    EXPECT_EQ(c.pattern_ports.last, 30010);
    EXPECT_EQ(c.identity_range.first, 200000u);
    EXPECT_EQ(c.identity_range.count, 65536u);
    EXPECT_EQ(c.limits_enforcement, launcher::LimitsEnforcement::kWarn);
    EXPECT_EQ(c.default_grace_period, 2s);
    EXPECT_EQ(c.quotas.max_processes, 100);
    EXPECT_EQ(c.quotas.max_processes_per_namespace, 10);
    ASSERT_EQ(c.namespace_quotas.size(), 1u);
    const launcher::NamespaceQuota& q = c.namespace_quotas.at("tenant-a");
    EXPECT_EQ(q.resources.cpu_limit, 4.0);
    EXPECT_EQ(q.resources.memory_limit, 8ull * 1024 * 1024 * 1024);
    EXPECT_EQ(q.resources.memory_swap_limit, 0u);
    EXPECT_EQ(q.resources.pids_limit, 1000u);
    EXPECT_EQ(q.resources.cpu_weight, 200u);
    EXPECT_EQ(q.max_processes, 20);
    EXPECT_EQ(c.orphan_policy, launcher::OrphanPolicy::kKill);
}

TEST_F(ConfigTest, Defaults) {
    for (const char* text : {"launcher:\n", "launcher: {}\n"}) {
        const LauncherConfig c = load(text);
        EXPECT_EQ(c.grpc_port, 0);
        EXPECT_EQ(c.patterns_dir, root_ / "etc" / "patterns");
        EXPECT_EQ(c.default_isolation, launcher::Isolation::kNamespace);
        EXPECT_EQ(c.process_manager.resync_interval, 30s);
        EXPECT_EQ(c.process_manager.backoff_period, 5s);
        EXPECT_EQ(c.process_manager.max_concurrent_starts, 10);
        EXPECT_FALSE(c.resources.cpu_limit.has_value());
        EXPECT_FALSE(c.resources.memory_limit.has_value());
        EXPECT_EQ(c.metrics.port, 0);
        EXPECT_EQ(c.metrics.path, "/metrics");
        EXPECT_EQ(c.health.port, 0);
        EXPECT_EQ(c.health.path, "/health");
        EXPECT_EQ(c.runtime_dir, fs::path("/run/pattern-launcher"));
        EXPECT_EQ(c.grpc_socket, fs::path("/run/pattern-launcher/api.sock"));
        EXPECT_TRUE(c.cgroup_root.empty());
        EXPECT_EQ(c.pattern_ports.first, 20000);
        EXPECT_EQ(c.pattern_ports.last, 29999);
        EXPECT_EQ(c.identity_range.first, 0x70000000u);
        EXPECT_EQ(c.identity_range.count, 65536u);
        EXPECT_EQ(c.limits_enforcement, launcher::LimitsEnforcement::kStrict);
        EXPECT_EQ(c.default_grace_period, 10s);
        EXPECT_EQ(c.process_manager.circuit_breaker_threshold, 5);
        EXPECT_FALSE(c.quotas.max_processes.has_value());
        EXPECT_FALSE(c.quotas.max_processes_per_namespace.has_value());
        EXPECT_TRUE(c.namespace_quotas.empty());
        EXPECT_EQ(c.orphan_policy, launcher::OrphanPolicy::kAdopt);
    }
}

TEST_F(ConfigTest, CircuitBreakerThreshold) {
    EXPECT_EQ(load("launcher:\n  process_manager:\n    circuit_breaker_threshold: 1\n")
                  .process_manager.circuit_breaker_threshold,
              1);
    EXPECT_EQ(load("launcher:\n  process_manager: {circuit_breaker_threshold: \"30\"}\n")
                  .process_manager.circuit_breaker_threshold,
              30);
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    circuit_breaker_threshold: 0\n", 3,
                      "launcher.process_manager.circuit_breaker_threshold: must be at least 1, "
                      "got 0");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    circuit_breaker_threshold: -3\n", 3,
                      "launcher.process_manager.circuit_breaker_threshold: must be at least 1, "
                      "got -3");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    circuit_breaker_threshold: 2.5\n", 3,
                      "launcher.process_manager.circuit_breaker_threshold: expected an integer, "
                      "got '2.5'");
    EXPECT_FILE_ERROR(
        "launcher:\n  process_manager:\n    circuit_breaker_threshold: 2147483648\n", 3,
        "launcher.process_manager.circuit_breaker_threshold: must be at most 2147483647, got "
        "2147483648");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    circuit_breaker_threshold:\n", 3,
                      "launcher.process_manager.circuit_breaker_threshold: expected an integer, "
                      "got an empty value");
}

TEST_F(ConfigTest, Quotas) {
    LauncherConfig c = load("launcher:\n  quotas:\n    max_processes: 1\n");
    EXPECT_EQ(c.quotas.max_processes, 1);
    EXPECT_FALSE(c.quotas.max_processes_per_namespace.has_value());
    c = load("launcher:\n  quotas: {max_processes_per_namespace: 3}\n");
    EXPECT_FALSE(c.quotas.max_processes.has_value());
    EXPECT_EQ(c.quotas.max_processes_per_namespace, 3);
    // An empty section is no section.
    c = load("launcher:\n  quotas:\n");
    EXPECT_FALSE(c.quotas.max_processes.has_value());
    EXPECT_FALSE(c.quotas.max_processes_per_namespace.has_value());

    EXPECT_FILE_ERROR("launcher:\n  quotas:\n    max_procs: 5\n", 3,
                      "unknown key 'max_procs' in launcher.quotas (known: max_processes, "
                      "max_processes_per_namespace)");
    EXPECT_FILE_ERROR("launcher:\n  quotas:\n    max_processes: 0\n", 3,
                      "launcher.quotas.max_processes: must be at least 1, got 0");
    EXPECT_FILE_ERROR("launcher:\n  quotas:\n    max_processes_per_namespace: -1\n", 3,
                      "launcher.quotas.max_processes_per_namespace: must be at least 1, got -1");
    EXPECT_FILE_ERROR("launcher:\n  quotas:\n    max_processes: lots\n", 3,
                      "launcher.quotas.max_processes: expected an integer, got 'lots'");
    EXPECT_FILE_ERROR("launcher:\n  quotas: [max_processes]\n", 2,
                      "launcher.quotas: expected a mapping, got a list");
    EXPECT_FILE_ERROR("launcher:\n  quotas: 10\n", 2,
                      "launcher.quotas: expected a mapping, got '10'");
    EXPECT_FILE_ERROR("launcher:\n  quotas:\n    max_processes: 1\n    max_processes: 2\n", 4,
                      "duplicate key 'max_processes' in launcher.quotas (first at line 3)");
}

TEST_F(ConfigTest, NamespaceQuotas) {
    const LauncherConfig c = load(R"(launcher:
  namespace_quotas:
    tenant-a:
      memory_limit: 1Gi
      max_processes: 3
    b.2_x-y:
      cpu_limit: 0.5
    empty:
    "7":
      pids_limit: "64"
)");
    ASSERT_EQ(c.namespace_quotas.size(), 4u);
    const launcher::NamespaceQuota& a = c.namespace_quotas.at("tenant-a");
    EXPECT_EQ(a.resources.memory_limit, 1024u * 1024 * 1024);
    EXPECT_FALSE(a.resources.cpu_limit.has_value());
    EXPECT_EQ(a.max_processes, 3);
    const launcher::NamespaceQuota& b = c.namespace_quotas.at("b.2_x-y");
    EXPECT_EQ(b.resources.cpu_limit, 0.5);
    EXPECT_FALSE(b.max_processes.has_value());
    const launcher::NamespaceQuota& empty = c.namespace_quotas.at("empty");
    EXPECT_FALSE(empty.resources.memory_limit.has_value());
    EXPECT_FALSE(empty.max_processes.has_value());
    EXPECT_EQ(c.namespace_quotas.at("7").resources.pids_limit, 64u);
    // The longest id: 63 characters.
    const std::string longest(63, 'n');
    EXPECT_EQ(load("launcher:\n  namespace_quotas:\n    " + longest + ": {max_processes: 1}\n")
                  .namespace_quotas.count(longest),
              1u);
    EXPECT_TRUE(load("launcher:\n  namespace_quotas: {}\n").namespace_quotas.empty());
    EXPECT_TRUE(load("launcher:\n  namespace_quotas:\n").namespace_quotas.empty());
}

TEST_F(ConfigTest, BadNamespaceQuotas) {
    const std::string id_rule =
        "' (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)";
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    tenant-a: {}\n    Tenant-B: {}\n", 4,
                      "launcher.namespace_quotas: invalid namespace id 'Tenant-B" + id_rule);
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    .hidden: {}\n", 3,
                      "launcher.namespace_quotas: invalid namespace id '.hidden" + id_rule);
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    a:b: {}\n", 3,
                      "launcher.namespace_quotas: invalid namespace id 'a:b" + id_rule);
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    \"\": {}\n", 3,
                      "launcher.namespace_quotas: invalid namespace id '" + id_rule);
    const std::string too_long(64, 'n');
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    " + too_long + ": {}\n", 3,
                      "launcher.namespace_quotas: invalid namespace id '" + too_long + id_rule);
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    ? [a, b]\n    : {}\n", 3,
                      "launcher.namespace_quotas: namespace ids must be strings, got a list");
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    a: {}\n\n    a: {}\n", 5,
                      "duplicate key 'a' in launcher.namespace_quotas (first at line 3)");
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    - tenant-a\n", 3,
                      "launcher.namespace_quotas: expected a mapping of namespace id to quota, got "
                      "a list");
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    tenant-a: 5\n", 3,
                      "launcher.namespace_quotas.tenant-a: expected a mapping, got '5'");
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    tenant-a:\n      memroy_limit: 1Gi\n", 4,
                      "unknown key 'memroy_limit' in launcher.namespace_quotas.tenant-a (known: "
                      "cpu_limit, memory_limit, memory_swap_limit, pids_limit, cpu_weight, "
                      "max_processes)");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      cpu_limit: 0\n", 4,
        "launcher.namespace_quotas.tenant-a.cpu_limit: must be greater than 0, got 0");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      memory_limit: 12Mx\n", 4,
        "launcher.namespace_quotas.tenant-a.memory_limit: invalid size '12Mx': unknown suffix "
        "'Mx' (use Ki, Mi, Gi, Ti, Pi, Ei or K, M, G, T, P, E)");
    EXPECT_FILE_ERROR("launcher:\n  namespace_quotas:\n    tenant-a:\n      pids_limit: 0\n", 4,
                      "launcher.namespace_quotas.tenant-a.pids_limit: must be at least 1, got 0");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      cpu_weight: 10001\n", 4,
        "launcher.namespace_quotas.tenant-a.cpu_weight: must be between 1 and 10000, got 10001");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      max_processes: 0\n", 4,
        "launcher.namespace_quotas.tenant-a.max_processes: must be at least 1, got 0");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      max_processes: [1]\n", 4,
        "launcher.namespace_quotas.tenant-a.max_processes: expected an integer, got a list");
    EXPECT_FILE_ERROR(
        "launcher:\n  namespace_quotas:\n    tenant-a:\n      pids_limit: 1\n      pids_limit: 2\n",
        5, "duplicate key 'pids_limit' in launcher.namespace_quotas.tenant-a (first at line 4)");
}

TEST_F(ConfigTest, WarmPoolTenants) {
    const LauncherConfig c = load(R"(launcher:
  warm_pool:
    tenants:
      tenant-a: [echo, kv]
      b.2:
        - echo
      empty: []
)");
    ASSERT_EQ(c.warm_pool.tenants.size(), 3u);
    EXPECT_EQ(c.warm_pool.tenants.at("tenant-a"), (std::vector<std::string>{"echo", "kv"}));
    EXPECT_EQ(c.warm_pool.tenants.at("b.2"), std::vector<std::string>{"echo"});
    EXPECT_TRUE(c.warm_pool.tenants.at("empty").empty());
    EXPECT_TRUE(load("launcher:\n  warm_pool:\n").warm_pool.tenants.empty());
    EXPECT_TRUE(load("launcher: {}\n").warm_pool.tenants.empty());
}

TEST_F(ConfigTest, BadWarmPool) {
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    tenant: {a: [echo]}\n", 3,
                      "unknown key 'tenant' in launcher.warm_pool (known: tenants, sessions)");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    tenants: [echo]\n", 3,
                      "launcher.warm_pool.tenants: expected a mapping of namespace id to a list "
                      "of pattern names, got a list");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    tenants:\n      Tenant: [echo]\n", 4,
                      "launcher.warm_pool.tenants: invalid namespace id 'Tenant' (1 to 63 of "
                      "a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    tenants:\n      a: echo\n", 4,
                      "launcher.warm_pool.tenants.a: expected a list, got 'echo'");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    tenants:\n      a:\n        - ../x\n", 5,
                      "launcher.warm_pool.tenants.a[0]: invalid pattern name '../x' (1 to 63 of "
                      "a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
    EXPECT_FILE_ERROR(
        "launcher:\n  warm_pool:\n    tenants:\n      a:\n        - echo\n        - echo\n", 6,
        "launcher.warm_pool.tenants.a[1]: pattern name 'echo' is listed twice (first at line 5)");
}

TEST_F(ConfigTest, WarmPoolSessions) {
    const LauncherConfig c = load(R"(launcher:
  warm_pool:
    sessions:
      tenant-a: {echo: 2, kv: 64}
      b.2:
        echo: 1
)");
    ASSERT_EQ(c.warm_pool.sessions.size(), 2u);
    EXPECT_EQ(c.warm_pool.sessions.at("tenant-a"),
              (std::map<std::string, int>{{"echo", 2}, {"kv", 64}}));
    EXPECT_EQ(c.warm_pool.sessions.at("b.2").at("echo"), 1);
    EXPECT_TRUE(c.warm_pool.tenants.empty());

    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    sessions: {a: [echo]}\n", 3,
                      "launcher.warm_pool.sessions.a: expected a mapping of pattern name to a "
                      "number of processes (1-64), got a list");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    sessions:\n      a: {Echo: 1}\n", 4,
                      "launcher.warm_pool.sessions.a: invalid pattern name 'Echo' (1 to 63 of "
                      "a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
    EXPECT_FILE_ERROR("launcher:\n  warm_pool:\n    sessions:\n      a: {echo: 65}\n", 4,
                      "launcher.warm_pool.sessions.a.echo: must be between 1 and 64, got 65");
}

TEST_F(ConfigTest, OrphanPolicy) {
    EXPECT_EQ(load("launcher:\n  orphan_policy: adopt\n").orphan_policy,
              launcher::OrphanPolicy::kAdopt);
    EXPECT_EQ(load("launcher:\n  orphan_policy: kill\n").orphan_policy,
              launcher::OrphanPolicy::kKill);
    EXPECT_FILE_ERROR("launcher:\n  orphan_policy: keep\n", 2,
                      "launcher.orphan_policy: unknown policy 'keep' (known: adopt, kill)");
    EXPECT_FILE_ERROR("launcher:\n  orphan_policy: Kill\n", 2,
                      "launcher.orphan_policy: unknown policy 'Kill' (known: adopt, kill)");
    EXPECT_FILE_ERROR("launcher:\n  orphan_policy: [kill]\n", 2,
                      "launcher.orphan_policy: expected a string, got a list");
    EXPECT_FILE_ERROR("launcher:\n  orphan_policy:\n", 2,
                      "launcher.orphan_policy: expected a string, got an empty value");
}

TEST_F(ConfigTest, GrpcSocketDefaultsToTheRuntimeDir) {
    EXPECT_EQ(load("launcher:\n  runtime_dir: /run/other/\n").grpc_socket,
              fs::path("/run/other/api.sock"));
    // Given explicitly, it stays where it was put.
    const LauncherConfig c =
        load("launcher:\n  runtime_dir: /run/other\n  grpc_socket: /run/api.sock\n");
    EXPECT_EQ(c.grpc_socket, fs::path("/run/api.sock"));
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheConfigDirectory) {
    const LauncherConfig c = load(
        "launcher:\n"
        "  patterns_dir: ../build/patterns\n"
        "  runtime_dir: run\n"
        "  grpc_socket: ./sock/api.sock\n");
    EXPECT_EQ(c.patterns_dir, root_ / "build" / "patterns");
    EXPECT_EQ(c.runtime_dir, root_ / "etc" / "run");
    EXPECT_EQ(c.grpc_socket, root_ / "etc" / "sock" / "api.sock");
}

TEST_F(ConfigTest, RelativeConfigPathStillGivesAbsolutePaths) {
    write("launcher:\n  patterns_dir: p\n");
    const fs::path cwd = fs::current_path();
    fs::current_path(root_);
    const LauncherConfig c = launcher::load_config("etc/launcher.yaml");
    fs::current_path(cwd);
    EXPECT_EQ(c.patterns_dir, root_ / "etc" / "p");
    EXPECT_TRUE(c.patterns_dir.is_absolute());
}

TEST_F(ConfigTest, UnknownKeysAreRejectedWithTheirLine) {
    EXPECT_FILE_ERROR(
        "launcher:\n  grpc_port: 1\n  patern_dir: x\n", 3,
        "unknown key 'patern_dir' in launcher (known: grpc_port, grpc_socket, "
        "patterns_dir, default_isolation, process_manager, resources, metrics, "
        "health, runtime_dir, init_path, cgroup_root, pattern_ports, limits_enforcement, "
        "default_grace_period, quotas, namespace_quotas, orphan_policy, log_dir, log_max_bytes, "
        "identity_range, api, egress, warm_pool)");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    resync: 1s\n", 3,
                      "unknown key 'resync' in launcher.process_manager (known: resync_interval, "
                      "backoff_period, max_concurrent_starts, circuit_breaker_threshold)");
    EXPECT_FILE_ERROR("launcher:\n  resources:\n\n    memroy_limit: 1Gi\n", 4,
                      "unknown key 'memroy_limit' in launcher.resources (known: cpu_limit, "
                      "memory_limit, memory_swap_limit, pids_limit, cpu_weight)");
    EXPECT_FILE_ERROR("launcher:\n  metrics: {port: 1, url: /x}\n", 2,
                      "unknown key 'url' in launcher.metrics (known: port, path)");
    EXPECT_FILE_ERROR("# comment\ngrpc_port: 8982\n", 2,
                      "unknown key 'grpc_port' at the top level (known: launcher; every setting "
                      "goes under 'launcher:')");
    EXPECT_FILE_ERROR("launcher: {}\nlauncher: {}\n", 2,
                      "duplicate key 'launcher' (first at line 1)");
}

TEST_F(ConfigTest, StructureErrors) {
    EXPECT_FILE_ERROR("", 1, "the file is empty (expected a mapping of keys)");
    EXPECT_FILE_ERROR("# only comments\n", 1, "the file is empty (expected a mapping of keys)");
    EXPECT_FILE_ERROR("- launcher\n", 1, "expected a mapping of keys at the top level, got a list");
    EXPECT_FILE_ERROR("launcher: 5\n", 1, "launcher: expected a mapping, got '5'");
    const FileError syntax = error_of("launcher:\n  grpc_port: 1\n grpc_socket: x\n");
    EXPECT_EQ(syntax.line(), 3);
    EXPECT_TRUE(syntax.message().starts_with("YAML syntax error: ")) << syntax.what();
}

TEST_F(ConfigTest, BadValues) {
    EXPECT_FILE_ERROR("launcher:\n  grpc_port: 70000\n", 2,
                      "launcher.grpc_port: must be between 0 and 65535, got 70000");
    EXPECT_FILE_ERROR("launcher:\n  grpc_port: -1\n", 2,
                      "launcher.grpc_port: must be between 0 and 65535, got -1");
    EXPECT_FILE_ERROR("launcher:\n  metrics:\n    port: http\n", 3,
                      "launcher.metrics.port: expected an integer, got 'http'");
    EXPECT_FILE_ERROR("launcher:\n  health:\n    path: health\n", 3,
                      "launcher.health.path: must start with '/', got 'health'");
    EXPECT_FILE_ERROR("launcher:\n  default_isolation: full\n", 2,
                      "launcher.default_isolation: unknown isolation level 'full' (known: none, "
                      "namespace, session)");
    EXPECT_FILE_ERROR("launcher:\n  limits_enforcement: lenient\n", 2,
                      "launcher.limits_enforcement: unknown mode 'lenient' (known: strict, warn)");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    max_concurrent_starts: 0\n", 3,
                      "launcher.process_manager.max_concurrent_starts: must be at least 1, got 0");
    EXPECT_FILE_ERROR("launcher:\n  process_manager:\n    backoff_period: 5\n", 3,
                      "launcher.process_manager.backoff_period: invalid duration '5': missing unit "
                      "(ms, s, m or h)");
    EXPECT_FILE_ERROR("launcher:\n  resources:\n    memory_limit: 12Mx\n", 3,
                      "launcher.resources.memory_limit: invalid size '12Mx': unknown suffix 'Mx' "
                      "(use Ki, Mi, Gi, Ti, Pi, Ei or K, M, G, T, P, E)");
    EXPECT_FILE_ERROR("launcher:\n  resources:\n    cpu_limit: 0\n", 3,
                      "launcher.resources.cpu_limit: must be greater than 0, got 0");
    EXPECT_FILE_ERROR("launcher:\n  cgroup_root: pattern-launcher\n", 2,
                      "launcher.cgroup_root: must be an absolute path (e.g. "
                      "/sys/fs/cgroup/pattern-launcher), got 'pattern-launcher'");
    EXPECT_FILE_ERROR("launcher:\n  runtime_dir: ''\n", 2,
                      "launcher.runtime_dir: must not be empty");
    EXPECT_FILE_ERROR("launcher:\n  patterns_dir: [a, b]\n", 2,
                      "launcher.patterns_dir: expected a string, got a list");
}

TEST_F(ConfigTest, BadPortRanges) {
    EXPECT_FILE_ERROR("launcher:\n  pattern_ports:\n    first: 30000\n    last: 29999\n", 4,
                      "launcher.pattern_ports.last: first (30000) must not be greater than last "
                      "(29999)");
    EXPECT_FILE_ERROR("launcher:\n  pattern_ports:\n    first: 30000\n", 3,
                      "launcher.pattern_ports.first: first (30000) must not be greater than last "
                      "(29999)");
    EXPECT_FILE_ERROR("launcher:\n  pattern_ports: {first: 0, last: 10}\n", 2,
                      "launcher.pattern_ports.first: must be between 1 and 65535, got 0");
    EXPECT_FILE_ERROR("launcher:\n  pattern_ports: {first: 1, last: 65536}\n", 2,
                      "launcher.pattern_ports.last: must be between 1 and 65535, got 65536");
    EXPECT_FILE_ERROR("launcher:\n  pattern_ports: [20000, 29999]\n", 2,
                      "launcher.pattern_ports: expected a mapping, got a list");
    EXPECT_FILE_ERROR("launcher:\n  grpc_port: 8982\n  metrics:\n    port: 25000\n", 4,
                      "launcher.metrics.port: port 25000 is inside launcher.pattern_ports "
                      "(20000-29999), which are handed out to patterns");
    EXPECT_FILE_ERROR("launcher:\n  grpc_port: 8982\n  health: {port: 8982}\n", 3,
                      "launcher.health.port: port 8982 is already used by launcher.grpc_port");
    // A single-port range is fine.
    const LauncherConfig c = load("launcher:\n  pattern_ports: {first: 5, last: 5}\n");
    EXPECT_EQ(c.pattern_ports.first, 5);
    EXPECT_EQ(c.pattern_ports.last, 5);
}

TEST_F(ConfigTest, ApiSecurityParses) {
    const LauncherConfig c = load(R"(launcher:
  api:
    tls:
      listen: 127.0.0.1:7443
      cert: tls/server.crt
      key: /etc/pl/server.key
      client_ca: tls/ca.crt
    tokens:
      issuer: https://issuer.test
      audience: [pattern-launcher, prism]
      keys: jwks.json
      leeway: 10s
    audit_log: audit.jsonl
    policy:
      - name: operators
        match: {uid: 0}
        rpcs: ['*']
      - match: {group: '4242'}
        rpcs: [ListPatterns, Health]
        namespaces: [tenant-a, 'team-*']
        patterns: [echo]
      - name: proxies
        match: {token_subject: 'proxy-*', token_claims: {role: proxy}}
        rpcs: LaunchPattern
      - name: tenant-a
        match: {certificate: 'spiffe://x/tenant-a'}
        rpcs: [LaunchPattern]
)");
    ASSERT_TRUE(c.api.tls);
    EXPECT_EQ(c.api.tls->listen_host, "127.0.0.1");
    EXPECT_EQ(c.api.tls->listen_port, 7443);
    EXPECT_EQ(c.api.tls->cert, root_ / "etc" / "tls" / "server.crt");
    EXPECT_EQ(c.api.tls->key, fs::path("/etc/pl/server.key"));
    ASSERT_TRUE(c.api.tokens);
    EXPECT_EQ(c.api.tokens->settings.audiences,
              (std::vector<std::string>{"pattern-launcher", "prism"}));
    EXPECT_EQ(c.api.tokens->settings.leeway, 10s);
    EXPECT_EQ(c.api.tokens->settings.namespaces_claim, "prism_namespaces");
    EXPECT_EQ(c.api.audit_log, root_ / "etc" / "audit.jsonl");
    ASSERT_TRUE(c.api.policy);
    const auto& g = c.api.policy->grants();
    ASSERT_EQ(g.size(), 4u);
    EXPECT_EQ(g[0].rpcs.size(), launcher::auth::kAllRpcs.size());
    EXPECT_EQ(g[1].name, "policy[1]");
    EXPECT_EQ(g[1].match.gid, 4242u);
    EXPECT_EQ(g[1].namespaces, (std::vector<std::string>{"tenant-a", "team-*"}));
    EXPECT_EQ(g[1].patterns, std::vector<std::string>{"echo"});
    EXPECT_EQ(g[2].match.token_subject, "proxy-*");
    ASSERT_EQ(g[2].match.token_claims.size(), 1u);
    EXPECT_EQ(g[2].match.token_claims[0].first, "role");
    EXPECT_EQ(g[3].match.certificate, "spiffe://x/tenant-a");
    // No policy: the local default applies (the daemon builds it).
    EXPECT_FALSE(load("launcher:\n  api: {}\n").api.policy);
}

TEST_F(ConfigTest, BadApiSecurity) {
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    tls: {listen: 'localhost:1', cert: a, key: b, "
        "client_ca: c}\n",
        3,
        "launcher.api.tls.listen: 'localhost' is not a numeric IPv4 or IPv6 address "
        "(names are not resolved: the launcher binds before any name service)");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    tls: {listen: '[::1]:0', cert: a, key: b, "
        "client_ca: c}\n",
        3, "launcher.api.tls.listen: port must be between 1 and 65535, got '0'");
    EXPECT_FILE_ERROR("launcher:\n  api:\n    tls: {listen: '127.0.0.1:1', cert: a}\n", 3,
                      "missing required key 'key' in launcher.api.tls");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    policy:\n      - {match: {uid: 0}, rpcs: "
        "[Launch]}\n",
        4,
        "launcher.api.policy[0].rpcs: unknown RPC 'Launch' (known: LaunchPattern, "
        "ListPatterns, TerminatePattern, Health, GetProcessStatus, Reload, or *)");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    policy:\n      - {match: {uid: 0, group: '1'}, "
        "rpcs: ['*']}\n",
        4,
        "launcher.api.policy[0].match: needs exactly one of uid, group, certificate "
        "or token_subject/token_claims");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    policy:\n      - {match: {group: "
        "no-such-group-pl}, rpcs: ['*']}\n",
        4, "launcher.api.policy[0].match.group: no such group 'no-such-group-pl'");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    policy:\n      - {match: {token_subject: x}, "
        "rpcs: ['*']}\n",
        4,
        "launcher.api.policy: grant 'policy[0]' matches tokens, but api.tokens is "
        "not configured");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    policy:\n      - {match: {certificate: x}, "
        "rpcs: ['*']}\n",
        4,
        "launcher.api.policy: grant 'policy[0]' matches certificates, but api.tls "
        "is not configured");
    EXPECT_FILE_ERROR(
        "launcher:\n  api:\n    tokens: {issuer: i, audience: a, keys: k, "
        "leeway: 1h}\n",
        3, "launcher.api.tokens.leeway: must be at most 5m");
    EXPECT_FILE_ERROR("launcher:\n  api:\n    allow_insecure: true\n", 3,
                      "unknown key 'allow_insecure' in launcher.api (known: "
                      "allow_insecure_loopback, tls, tokens, audit_log, policy)");
}

TEST_F(ConfigTest, IdentityRange) {
    auto range_of = [&](const std::string& value) {
        return load("launcher:\n  identity_range: " + value + "\n").identity_range;
    };
    EXPECT_EQ(range_of("1879048192-1879113727").first, 1879048192u);
    EXPECT_EQ(range_of("1879048192-1879113727").count, 65536u);
    EXPECT_EQ(range_of("\"5000-5000\"").count, 1u);  // one id
    // Right next to the ids that are refused, and up to the last valid id.
    EXPECT_EQ(range_of("1-61183").count, 61183u);
    EXPECT_EQ(range_of("65520-65533").count, 14u);
    EXPECT_EQ(range_of("65536-65536").first, 65536u);
    EXPECT_EQ(range_of("4294967294-4294967294").first, 4294967294u);

    auto error = [](const std::string& message) { return "launcher.identity_range: " + message; };
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 0-100\n", 2, error("0-100 includes 0 (root)"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 0-0\n", 2, error("0-0 includes 0 (root)"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 1000-999\n", 2,
                      error("first (1000) must not be greater than last (999)"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 60000-61184\n", 2,
                      error("60000-61184 overlaps 61184-65519, systemd's DynamicUser range"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 65519-65519\n", 2,
                      error("65519-65519 overlaps 61184-65519, systemd's DynamicUser range"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 1-100000\n", 2,
                      error("1-100000 overlaps 61184-65519, systemd's DynamicUser range"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 65520-65534\n", 2,
                      error("65520-65534 includes 65534 (nobody, the overflow id)"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 65535-70000\n", 2,
                      error("65535-70000 includes 65535 (the 16-bit (uid_t)-1, invalid)"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range: 4294967000-4294967295\n", 2,
                      error("4294967000-4294967295 includes 4294967295 ((uid_t)-1, invalid)"));
    for (const char* bad : {"4294967295-4294967296", "1879048192", "1879048192 - 1879113727", "a-b",
                            "-5-10", "1-2-3", "0x70000000-0x7000ffff", "1-", "-"}) {
        EXPECT_FILE_ERROR("launcher:\n  identity_range: \"" + std::string(bad) + "\"\n", 2,
                          error("expected FIRST-LAST, two decimal ids (e.g. "
                                "1879048192-1879113727), got '" +
                                std::string(bad) + "'"));
    }
    EXPECT_FILE_ERROR("launcher:\n  identity_range: {first: 1, count: 2}\n", 2,
                      error("expected a string, got a mapping"));
    EXPECT_FILE_ERROR("launcher:\n  identity_range:\n", 2,
                      error("expected a string, got an empty value"));
}

TEST_F(ConfigTest, MissingFile) {
    try {
        launcher::load_config(root_ / "nope.yaml");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.line(), 0);
        EXPECT_EQ(e.message(), "cannot read: No such file or directory");
    }
}

TEST(RepositoryConfig, DevelopmentConfigParses) {
    const fs::path source(PL_SOURCE_DIR);
    const LauncherConfig c = launcher::load_config(source / "config" / "pattern-launcher.yaml");
    EXPECT_EQ(c.patterns_dir, (source / "build" / "patterns").lexically_normal());
    EXPECT_EQ(c.grpc_socket, fs::path("/run/pattern-launcher/api.sock"));
    EXPECT_EQ(c.grpc_port, 0);
    EXPECT_EQ(c.runtime_dir, fs::path("/run/pattern-launcher"));
    EXPECT_EQ(c.limits_enforcement, launcher::LimitsEnforcement::kWarn);
    EXPECT_EQ(c.default_isolation, launcher::Isolation::kNamespace);
    EXPECT_EQ(c.process_manager.resync_interval, 30s);
    EXPECT_EQ(c.process_manager.backoff_period, 5s);
    EXPECT_EQ(c.process_manager.max_concurrent_starts, 10);
    EXPECT_EQ(c.metrics.port, 0);
    EXPECT_EQ(c.metrics.path, "/metrics");
    EXPECT_EQ(c.health.port, 0);
    EXPECT_EQ(c.health.path, "/health");
    EXPECT_EQ(c.pattern_ports.first, 20000);
    EXPECT_EQ(c.pattern_ports.last, 29999);
    EXPECT_TRUE(c.cgroup_root.empty());
    EXPECT_EQ(c.process_manager.circuit_breaker_threshold, 5);
    EXPECT_FALSE(c.quotas.max_processes.has_value());
    EXPECT_FALSE(c.quotas.max_processes_per_namespace.has_value());
    EXPECT_TRUE(c.namespace_quotas.empty());
    EXPECT_EQ(c.orphan_policy, launcher::OrphanPolicy::kAdopt);
}

}  // namespace
