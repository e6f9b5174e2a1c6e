#include "config/manifest.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#ifndef PL_SOURCE_DIR
#error "PL_SOURCE_DIR must name the source tree (target_compile_definitions)"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using launcher::FileError;

// A fresh directory under /tmp for one test, removed afterwards.
class ManifestTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-manifest-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    static void write(const fs::path& path, const std::string& text,
                      fs::perms perms = fs::perms(0644)) {
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
        fs::permissions(path, perms);
    }
    static void write_executable(const fs::path& path) {
        write(path, "#!/bin/sh\nexit 0\n", fs::perms(0755));
    }

    // <root>/<dir>/manifest.yaml with `text`, next to an executable `run`.
    fs::path pattern(const std::string& dir, const std::string& text) {
        const fs::path file = root_ / dir / "manifest.yaml";
        write(file, text);
        write_executable(root_ / dir / "run");
        return file;
    }

    // Parses `text` as a manifest and returns the FileError it must raise.
    FileError error_of(const std::string& text) {
        const fs::path file = pattern("p", text);
        try {
            launcher::parse_manifest(file);
        } catch (const FileError& e) {
            EXPECT_EQ(e.file(), file);
            return e;
        }
        ADD_FAILURE() << "no error for:\n" << text;
        return FileError(file, -1, "no error");
    }

    fs::path root_;
};

const std::string kHeader =
    "name: demo\n"          // 1
    "version: \"1.0\"\n"    // 2
    "executable: ./run\n";  // 3

#define EXPECT_FILE_ERROR(text, want_line, want_message)    \
    do {                                                    \
        const FileError e_ = error_of(text);                \
        EXPECT_EQ(e_.line(), want_line) << e_.what();       \
        EXPECT_EQ(e_.message(), want_message) << e_.what(); \
    } while (0)

TEST_F(ManifestTest, EchoManifestFromTheRepositoryParses) {
    std::ifstream in(fs::path(PL_SOURCE_DIR) / "patterns/echo/manifest.yaml");
    ASSERT_TRUE(in) << "cannot open the echo manifest";
    std::stringstream text;
    text << in.rdbuf();
    const fs::path file = root_ / "echo" / "manifest.yaml";
    write(file, text.str());
    write_executable(root_ / "echo" / "echo");

    const launcher::Manifest m = launcher::parse_manifest(file);
    EXPECT_EQ(m.file, file);
    EXPECT_EQ(m.directory, fs::canonical(root_ / "echo"));
    EXPECT_EQ(m.name, "echo");
    EXPECT_EQ(m.version, "1.0.0");
    EXPECT_EQ(m.executable, fs::canonical(root_ / "echo" / "echo"));
    EXPECT_TRUE(m.executable.is_absolute());
    EXPECT_EQ(m.isolation_level, launcher::Isolation::kNamespace);
    EXPECT_FALSE(m.grace_period.has_value());
    EXPECT_EQ(m.healthcheck.type, launcher::HealthcheckType::kHttp);
    EXPECT_EQ(m.healthcheck.path, "/health");
    EXPECT_EQ(m.healthcheck.interval, 30s);
    EXPECT_EQ(m.healthcheck.timeout, 5s);
    EXPECT_EQ(m.healthcheck.failure_threshold, 3);
    EXPECT_EQ(m.healthcheck.start_timeout, 10s);
    EXPECT_EQ(m.resources.cpu_limit, 0.5);
    EXPECT_EQ(m.resources.memory_limit, 64u * 1024 * 1024);
    EXPECT_FALSE(m.resources.memory_swap_limit.has_value());
    EXPECT_EQ(m.resources.pids_limit, 32u);
    EXPECT_FALSE(m.resources.cpu_weight.has_value());
    EXPECT_EQ(m.environment, (std::map<std::string, std::string>{{"LOG_LEVEL", "info"}}));
    EXPECT_EQ(m.sandbox.network, launcher::NetworkMode::kIsolated);
    EXPECT_EQ(m.sandbox.seccomp, "default");
    // The echo manifest has no sandbox section: it runs under the default compartment.
    EXPECT_EQ(m.sandbox.namespaces,
              (std::vector<std::string>{"mount", "pid", "ipc", "uts", "cgroup"}));
    EXPECT_TRUE(m.sandbox.capabilities.empty());
    EXPECT_FALSE(m.sandbox.user.has_value());
    EXPECT_FALSE(m.sandbox.group.has_value());
    EXPECT_FALSE(m.sandbox.uid.has_value());
    EXPECT_FALSE(m.sandbox.gid.has_value());
    EXPECT_FALSE(m.sandbox.allow_root);
    EXPECT_TRUE(m.sandbox.landlock);
    EXPECT_EQ(m.sandbox.tmp_size, 64u << 20);
    EXPECT_FALSE(m.sandbox.state_directory);
}

TEST_F(ManifestTest, MinimalManifestGetsDefaults) {
    const launcher::Manifest m = launcher::parse_manifest(pattern("p", kHeader));
    EXPECT_EQ(m.version, "1.0");
    EXPECT_EQ(m.isolation_level, launcher::Isolation::kNamespace);
    EXPECT_EQ(m.healthcheck.type, launcher::HealthcheckType::kHttp);
    EXPECT_EQ(m.healthcheck.path, "/health");
    EXPECT_EQ(m.healthcheck.interval, 30s);
    EXPECT_FALSE(m.resources.cpu_limit.has_value());
    EXPECT_EQ(m.sandbox.seccomp, "default");
    EXPECT_EQ(m.sandbox.network, launcher::NetworkMode::kIsolated);
    EXPECT_EQ(m.sandbox.namespaces,
              (std::vector<std::string>{"mount", "pid", "ipc", "uts", "cgroup"}));
    EXPECT_FALSE(m.sandbox.user.has_value());
    EXPECT_FALSE(m.sandbox.allow_root);
    EXPECT_TRUE(m.sandbox.landlock);
    EXPECT_EQ(m.sandbox.tmp_size, 64u << 20);
    EXPECT_FALSE(m.sandbox.state_directory);
    EXPECT_EQ(m.restart, launcher::RestartPolicy::kOnFailure);
}

TEST_F(ManifestTest, EveryKeyParses) {
    const launcher::Manifest m =
        launcher::parse_manifest(pattern("p",
                                         "name: consumer.v2_x-y\n"
                                         "version: 1.0.0\n"
                                         "description: Consumes things\n"
                                         "author: someone@example.com\n"
                                         "executable: run\n"
                                         "isolation_level: session\n"
                                         "grace_period: 1500ms\n"
                                         "restart: never\n"
                                         "healthcheck:\n"
                                         "  type: tcp\n"
                                         "  path: /ready\n"
                                         "  interval: 1m\n"
                                         "  timeout: 2s\n"
                                         "  start_timeout: 1h\n"
                                         "  failure_threshold: 5\n"
                                         "resources:\n"
                                         "  cpu_limit: 2\n"
                                         "  memory_limit: 1048576\n"
                                         "  memory_swap_limit: 0\n"
                                         "  pids_limit: \"100\"\n"
                                         "  cpu_weight: 10000\n"
                                         "backend_slots:\n"
                                         "  - name: storage\n"
                                         "    type: postgres\n"
                                         "    required: true\n"
                                         "    config_schema:\n"
                                         "      anything: [goes, here]\n"
                                         "      nested: {deeply: 1}\n"
                                         "  - {name: messaging, type: kafka}\n"
                                         "environment:\n"
                                         "  METRICS_PORT: \"9091\"\n"
                                         "  RAW_NUMBER: 0x10\n"
                                         "  _x1: ''\n"
                                         "sandbox:\n"
                                         "  network: host\n"
                                         "  seccomp: none\n"
                                         "  namespaces: [user, mount, pid, cgroup]\n"
                                         "  user: nobody\n"
                                         "  group: 65534\n"
                                         "  allow_root: false\n"
                                         "  capabilities: [CAP_NET_BIND_SERVICE, kill]\n"
                                         "  landlock: false\n"
                                         "  tmp_size: 16Mi\n"
                                         "  state_directory: true\n"));
    EXPECT_EQ(m.name, "consumer.v2_x-y");
    EXPECT_EQ(m.isolation_level, launcher::Isolation::kSession);
    EXPECT_EQ(m.grace_period, 1500ms);
    EXPECT_EQ(m.restart, launcher::RestartPolicy::kNever);
    EXPECT_EQ(m.healthcheck.type, launcher::HealthcheckType::kTcp);
    EXPECT_EQ(m.healthcheck.path, "/ready");
    EXPECT_EQ(m.healthcheck.interval, 1min);
    EXPECT_EQ(m.healthcheck.timeout, 2s);
    EXPECT_EQ(m.healthcheck.start_timeout, 1h);
    EXPECT_EQ(m.healthcheck.failure_threshold, 5);
    EXPECT_EQ(m.resources.cpu_limit, 2.0);
    EXPECT_EQ(m.resources.memory_limit, 1048576u);
    EXPECT_EQ(m.resources.memory_swap_limit, 0u);
    EXPECT_EQ(m.resources.pids_limit, 100u);
    EXPECT_EQ(m.resources.cpu_weight, 10000u);
    EXPECT_EQ(m.environment, (std::map<std::string, std::string>{
                                 {"METRICS_PORT", "9091"}, {"RAW_NUMBER", "0x10"}, {"_x1", ""}}));
    EXPECT_EQ(m.sandbox.network, launcher::NetworkMode::kHost);
    EXPECT_EQ(m.sandbox.seccomp, "none");
    EXPECT_EQ(m.sandbox.namespaces, (std::vector<std::string>{"user", "mount", "pid", "cgroup"}));
    EXPECT_EQ(m.sandbox.user, "nobody");
    EXPECT_EQ(m.sandbox.group, "65534");
    EXPECT_EQ(m.sandbox.uid, 65534u) << "nobody, looked up when the manifest is loaded";
    EXPECT_EQ(m.sandbox.gid, 65534u);
    EXPECT_FALSE(m.sandbox.allow_root);
    EXPECT_EQ(m.sandbox.capabilities, (std::vector<std::string>{"CAP_NET_BIND_SERVICE", "kill"}));
    EXPECT_FALSE(m.sandbox.landlock);
    EXPECT_EQ(m.sandbox.tmp_size, 16u << 20);
    EXPECT_TRUE(m.sandbox.state_directory);
}

TEST_F(ManifestTest, WhatNamesFileAndLine) {
    const FileError e = error_of(kHeader + "isolation_level: sesion\n");
    EXPECT_EQ(std::string(e.what()), (root_ / "p" / "manifest.yaml").string() +
                                         ":4: isolation_level: unknown isolation level 'sesion' "
                                         "(known: none, namespace, session)");
}

TEST_F(ManifestTest, MisspeltKeyIsRejectedAtItsLine) {
    EXPECT_FILE_ERROR(kHeader +
                          "resources:\n"            // 4
                          "  cpu_limit: 1\n"        // 5
                          "  memroy_limit: 1Gi\n",  // 6
                      6,
                      "unknown key 'memroy_limit' in resources (known: cpu_limit, memory_limit, "
                      "memory_swap_limit, pids_limit, cpu_weight)");
    EXPECT_FILE_ERROR(kHeader + "\n# comment\nisolation: none\n", 6,
                      "unknown key 'isolation' (known: name, version, description, author, "
                      "executable, isolation_level, grace_period, restart, healthcheck, "
                      "resources, backend_slots, environment, config_keys, "
                      "accept_any_config, sandbox, warm_pool, late_binding)");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  seccmp: default\n", 5,
                      "unknown key 'seccmp' in sandbox (known: network, seccomp, namespaces, user, "
                      "group, capabilities, allow_root, landlock, tmp_size, state_directory, "
                      "egress)");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  intervall: 5s\n", 5,
                      "unknown key 'intervall' in healthcheck (known: type, port, path, service, "
                      "interval, timeout, start_timeout, failure_threshold)");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - name: a\n    type: b\n    requried: true\n", 7,
                      "unknown key 'requried' in backend_slots[0] (known: name, type, required, "
                      "config_schema)");
}

TEST_F(ManifestTest, BadSizes) {
    EXPECT_FILE_ERROR(kHeader + "resources:\n  memory_limit: 12Mx\n", 5,
                      "resources.memory_limit: invalid size '12Mx': unknown suffix 'Mx' (use Ki, "
                      "Mi, Gi, Ti, Pi, Ei or K, M, G, T, P, E)");
    EXPECT_FILE_ERROR(
        kHeader + "resources:\n  memory_swap_limit: -1\n", 5,
        "resources.memory_swap_limit: invalid size '-1': negative sizes are not allowed");
    EXPECT_FILE_ERROR(
        kHeader + "resources:\n  memory_limit: 0\n", 5,
        "resources.memory_limit: must be greater than 0 (a limit of 0 bytes leaves no "
        "memory)");
}

TEST_F(ManifestTest, BadCpuLimits) {
    EXPECT_FILE_ERROR(kHeader + "resources:\n  cpu_limit: 0\n", 5,
                      "resources.cpu_limit: must be greater than 0, got 0");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  cpu_limit: -1\n", 5,
                      "resources.cpu_limit: must be greater than 0, got -1");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  cpu_limit: half\n", 5,
                      "resources.cpu_limit: expected a number, got 'half'");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  cpu_limit: .nan\n", 5,
                      "resources.cpu_limit: expected a number, got '.nan'");
    const FileError tiny = error_of(kHeader + "resources:\n  cpu_limit: 0.001\n");
    EXPECT_EQ(tiny.line(), 5);
    EXPECT_NE(tiny.message().find("below the kernel's minimum"), std::string::npos) << tiny.what();
}

TEST_F(ManifestTest, BadIntegers) {
    EXPECT_FILE_ERROR(kHeader + "resources:\n  pids_limit: -1\n", 5,
                      "resources.pids_limit: must be at least 1, got -1");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  pids_limit: 0\n", 5,
                      "resources.pids_limit: must be at least 1, got 0");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  pids_limit: 1.5\n", 5,
                      "resources.pids_limit: expected an integer, got '1.5'");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  cpu_weight: 10001\n", 5,
                      "resources.cpu_weight: must be between 1 and 10000, got 10001");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  pids_limit: 99999999999999999999\n", 5,
                      "resources.pids_limit: '99999999999999999999' is out of range");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  failure_threshold: 0\n", 5,
                      "healthcheck.failure_threshold: must be at least 1, got 0");
}

// RFC-035's example manifest has healthcheck.port, but every key of a pattern
// runs a process of its own, so one fixed port cannot be honoured: the key is
// refused at its line, saying why, instead of being silently ignored.
TEST_F(ManifestTest, HealthcheckPortIsRefusedWithTheReason) {
    EXPECT_FILE_ERROR(kHeader +
                          "healthcheck:\n"     // 4
                          "  path: /health\n"  // 5
                          "  port: 9090\n",    // 6
                      6,
                      "healthcheck.port: not supported: every key of a pattern runs a process of "
                      "its own, so the launcher assigns each one its health port from the "
                      "config's pattern_ports and passes it in HEALTH_PORT; remove this key");
}

TEST_F(ManifestTest, BadDurationsAndHealthcheck) {
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  interval: 30\n", 5,
                      "healthcheck.interval: invalid duration '30': missing unit (ms, s, m or h)");
    EXPECT_FILE_ERROR(kHeader + "grace_period: 0s\n", 4,
                      "grace_period: invalid duration '0s': must be positive");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  type: exec\n", 5,
                      "healthcheck.type: unknown type 'exec' (known: http, notify, tcp, grpc)");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  path: health\n", 5,
                      "healthcheck.path: must start with '/', got 'health'");
}

// type grpc: grpc.health.v1.Health/Check on the pattern's gRPC socket;
// `service` names what to ask about ("" = the whole server).
TEST_F(ManifestTest, GrpcHealthcheck) {
    auto parse = [&](const std::string& text) {
        return launcher::parse_manifest(pattern("p", text));
    };
    launcher::Manifest m = parse(kHeader + "healthcheck:\n  type: grpc\n");
    EXPECT_EQ(m.healthcheck.type, launcher::HealthcheckType::kGrpc);
    EXPECT_EQ(m.healthcheck.service, "") << "the server as a whole";
    EXPECT_EQ(m.healthcheck.timeout, 5s);

    m = parse(kHeader +
              "healthcheck: {type: grpc, service: prism.launcher.PatternLauncher, interval: 2s, "
              "timeout: 500ms, failure_threshold: 4, start_timeout: 1m}\n");
    EXPECT_EQ(m.healthcheck.type, launcher::HealthcheckType::kGrpc);
    EXPECT_EQ(m.healthcheck.service, "prism.launcher.PatternLauncher");
    EXPECT_EQ(m.healthcheck.interval, 2s);
    EXPECT_EQ(m.healthcheck.timeout, 500ms);
    EXPECT_EQ(m.healthcheck.failure_threshold, 4);
    EXPECT_EQ(m.healthcheck.start_timeout, 1min);

    // The other types have no service; an http check's default is none.
    EXPECT_EQ(parse(kHeader + "healthcheck: {type: http}\n").healthcheck.service, "");
}

TEST_F(ManifestTest, GrpcHealthcheckErrorsNameFileAndLine) {
    EXPECT_FILE_ERROR(kHeader +
                          "healthcheck:\n"     // 4
                          "  type: grpc\n"     // 5
                          "  servise: a.B\n",  // 6
                      6,
                      "unknown key 'servise' in healthcheck (known: type, port, path, service, "
                      "interval, timeout, start_timeout, failure_threshold)");
    EXPECT_FILE_ERROR(kHeader +
                          "healthcheck:\n"     // 4
                          "  type: tcp\n"      // 5
                          "  service: a.B\n",  // 6
                      6,
                      "healthcheck.service: only for type grpc (the gRPC service whose health "
                      "is checked)");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  service: a.B\n", 5,
                      "healthcheck.service: only for type grpc (the gRPC service whose health "
                      "is checked)");  // the default type is http
    EXPECT_FILE_ERROR(kHeader +
                          "healthcheck:\n"     // 4
                          "  path: /health\n"  // 5
                          "  type: grpc\n",    // 6
                      5,
                      "healthcheck.path: not used by type grpc, which calls "
                      "grpc.health.v1.Health/Check; name the service to ask about with "
                      "'service' instead");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  type: grpc\n  service: \"a b\"\n", 6,
                      "healthcheck.service: expected a gRPC service name such as "
                      "'package.Service' (at most 255 characters, no spaces or control "
                      "characters), got 'a b'");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  type: grpc\n  service: [a]\n", 6,
                      "healthcheck.service: expected a string, got a list");
}

TEST_F(ManifestTest, RequiredKeys) {
    EXPECT_FILE_ERROR("# a pattern\nname: demo\nversion: 1.0\n", 2,
                      "missing required key 'executable'");
    EXPECT_FILE_ERROR("version: 1.0\nexecutable: ./run\n", 1, "missing required key 'name'");
    EXPECT_FILE_ERROR("name: demo\nexecutable: ./run\n", 1, "missing required key 'version'");
    EXPECT_FILE_ERROR("name: demo\nversion: ''\nexecutable: ./run\n", 2,
                      "version: must not be empty");
    EXPECT_FILE_ERROR("name: Demo\nversion: 1\nexecutable: ./run\n", 1,
                      "name: invalid pattern name 'Demo' (1 to 63 of a-z, 0-9, '.', '_', '-', "
                      "starting with a letter or digit)");
    EXPECT_FILE_ERROR("name: -demo\nversion: 1\nexecutable: ./run\n", 1,
                      "name: invalid pattern name '-demo' (1 to 63 of a-z, 0-9, '.', '_', '-', "
                      "starting with a letter or digit)");
    EXPECT_FILE_ERROR(
        "name: " + std::string(64, 'a') + "\nversion: 1\nexecutable: ./run\n", 1,
        "name: invalid pattern name '" + std::string(64, 'a') +
            "' (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - name: a\n", 5,
                      "missing required key 'type' in backend_slots[0]");
}

TEST_F(ManifestTest, MissingExecutable) {
    const FileError e = error_of("name: demo\nversion: 1\nexecutable: ./nope\n");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.message(), "executable: './nope' (" +
                               (fs::canonical(root_ / "p") / "nope").string() + ") does not exist");
}

TEST_F(ManifestTest, NonExecutableFile) {
    write(root_ / "p" / "data", "not a program\n", fs::perms(0644));
    const FileError e = error_of("name: demo\nversion: 1\nexecutable: data\n");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.message(), "executable: 'data' (" + (fs::canonical(root_ / "p") / "data").string() +
                               ") is not executable");

    fs::create_directories(root_ / "p" / "dir");
    const FileError d = error_of("name: demo\nversion: 1\nexecutable: dir\n");
    EXPECT_EQ(d.line(), 3);
    EXPECT_NE(d.message().find("is not a regular file"), std::string::npos) << d.what();
}

TEST_F(ManifestTest, RelativeExecutableMustStayInThePatternDirectory) {
    write_executable(root_ / "outside");
    fs::create_directories(root_ / "p");
    const std::string dir = fs::canonical(root_ / "p").string();
    FileError e = error_of("name: demo\nversion: 1\nexecutable: ../outside\n");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.message(), "executable: '../outside' resolves to " +
                               fs::canonical(root_ / "outside").string() +
                               ", outside the pattern directory " + dir +
                               " (use an absolute path for a program kept elsewhere)");

    // Via a symlink that points outside.
    fs::create_symlink(root_ / "outside", root_ / "p" / "link");
    e = error_of("name: demo\nversion: 1\nexecutable: ./link\n");
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(e.message().find("outside the pattern directory"), std::string::npos) << e.what();

    // Going out and back in is fine.
    const launcher::Manifest m =
        launcher::parse_manifest(pattern("p", "name: demo\nversion: 1\nexecutable: ../p/./run\n"));
    EXPECT_EQ(m.executable, fs::canonical(root_ / "p" / "run"));
}

TEST_F(ManifestTest, AbsoluteExecutableIsAcceptedAnywhere) {
    write_executable(root_ / "elsewhere" / "prog");
    const fs::path prog = fs::canonical(root_ / "elsewhere" / "prog");
    const launcher::Manifest m = launcher::parse_manifest(
        pattern("p", "name: demo\nversion: 1\nexecutable: " + prog.string() + "\n"));
    EXPECT_EQ(m.executable, prog);
}

TEST_F(ManifestTest, BadIsolationLevel) {
    EXPECT_FILE_ERROR(kHeader + "isolation_level: NAMESPACE\n", 4,
                      "isolation_level: unknown isolation level 'NAMESPACE' (known: none, "
                      "namespace, session)");
}

TEST_F(ManifestTest, WarmPool) {
    const launcher::Manifest m = launcher::parse_manifest(
        pattern("a", kHeader + "warm_pool:\n  namespaces: [tenant-a, b.2]\n"));
    EXPECT_EQ(m.warm_namespaces, (std::vector<std::string>{"tenant-a", "b.2"}));
    EXPECT_TRUE(launcher::parse_manifest(pattern("b", kHeader + "warm_pool: {}\n"))
                    .warm_namespaces.empty());
    EXPECT_TRUE(launcher::parse_manifest(pattern("c", kHeader)).warm_namespaces.empty());
    // SESSION and SHARED keys cannot be named ahead of their launch.
    EXPECT_FILE_ERROR(kHeader + "isolation_level: session\nwarm_pool:\n  namespaces: [t]\n", 6,
                      "warm_pool: keeps NAMESPACE keys running, but this pattern's "
                      "isolation_level is session (SESSION keys are kept ready with "
                      "warm_pool.sessions)");
    EXPECT_FILE_ERROR(kHeader + "isolation_level: none\nwarm_pool:\n  namespaces: [t]\n", 6,
                      "warm_pool: keeps NAMESPACE keys running, but this pattern's "
                      "isolation_level is none (SESSION keys are kept ready with "
                      "warm_pool.sessions)");
    EXPECT_FILE_ERROR(kHeader + "warm_pool:\n  namespace: [t]\n", 5,
                      "unknown key 'namespace' in warm_pool (known: namespaces, sessions)");
    EXPECT_FILE_ERROR(kHeader + "warm_pool:\n  namespaces: [t, T]\n", 5,
                      "warm_pool.namespaces[1]: invalid namespace id 'T' (1 to 63 of a-z, 0-9, "
                      "'.', '_', '-', starting with a letter or digit)");
    EXPECT_FILE_ERROR(kHeader + "warm_pool:\n  namespaces:\n    - t\n    - t\n", 7,
                      "warm_pool.namespaces[1]: namespace id 't' is listed twice (first at line "
                      "6)");
}

TEST_F(ManifestTest, SessionPoolsNeedLateBinding) {
    const launcher::Manifest m = launcher::parse_manifest(
        pattern("a", kHeader + "isolation_level: session\nlate_binding: true\n"
                               "warm_pool:\n  sessions: {tenant-a: 2, b.2: 64}\n"));
    EXPECT_TRUE(m.late_binding);
    EXPECT_EQ(m.warm_sessions, (std::map<std::string, int>{{"tenant-a", 2}, {"b.2", 64}}));
    EXPECT_TRUE(m.warm_namespaces.empty());
    // A NAMESPACE pattern may keep both: its tenants' keys, and processes
    // for the SESSION launches some clients ask of it.
    const launcher::Manifest both = launcher::parse_manifest(
        pattern("b", kHeader + "late_binding: true\nwarm_pool:\n  namespaces: [t]\n"
                               "  sessions: {t: 1}\n"));
    EXPECT_EQ(both.warm_namespaces, (std::vector<std::string>{"t"}));
    EXPECT_EQ(both.warm_sessions.at("t"), 1);
    EXPECT_FALSE(launcher::parse_manifest(pattern("c", kHeader)).late_binding);

    EXPECT_FILE_ERROR(kHeader + "warm_pool:\n  sessions: {t: 1}\n", 5,
                      "warm_pool.sessions: needs late_binding: true (a process started ahead "
                      "learns its session only through the claim protocol, "
                      "docs/late-binding.md)");
    EXPECT_FILE_ERROR(kHeader + "late_binding: true\nwarm_pool:\n  sessions: {t: 0}\n", 6,
                      "warm_pool.sessions.t: must be between 1 and 64, got 0");
    EXPECT_FILE_ERROR(kHeader + "late_binding: true\nwarm_pool:\n  sessions: {t: 65}\n", 6,
                      "warm_pool.sessions.t: must be between 1 and 64, got 65");
    EXPECT_FILE_ERROR(kHeader + "late_binding: yes\n", 4,
                      "late_binding: expected true or false, got 'yes'");
}

TEST_F(ManifestTest, RestartPolicy) {
    EXPECT_EQ(launcher::parse_manifest(pattern("a", kHeader + "restart: always\n")).restart,
              launcher::RestartPolicy::kAlways);
    EXPECT_EQ(launcher::parse_manifest(pattern("b", kHeader + "restart: on-failure\n")).restart,
              launcher::RestartPolicy::kOnFailure);
    EXPECT_EQ(launcher::parse_manifest(pattern("c", kHeader + "restart: \"never\"\n")).restart,
              launcher::RestartPolicy::kNever);
    EXPECT_FILE_ERROR(kHeader + "restart: on_failure\n", 4,
                      "restart: unknown restart policy 'on_failure' (known: always, on-failure, "
                      "never)");
    EXPECT_FILE_ERROR(kHeader + "restart: Always\n", 4,
                      "restart: unknown restart policy 'Always' (known: always, on-failure, "
                      "never)");
    // Not a boolean: `restart: no` is a typo for `never`, not a policy.
    EXPECT_FILE_ERROR(kHeader + "restart: no\n", 4,
                      "restart: unknown restart policy 'no' (known: always, on-failure, never)");
    EXPECT_FILE_ERROR(kHeader + "\nrestart: [always]\n", 5,
                      "restart: expected a string, got a list");
    EXPECT_FILE_ERROR(kHeader + "restart:\n", 4, "restart: expected a string, got an empty value");
    EXPECT_FILE_ERROR(kHeader + "restart: always\nrestart: never\n", 5,
                      "duplicate key 'restart' (first at line 4)");
}

TEST_F(ManifestTest, BadEnvironment) {
    EXPECT_FILE_ERROR(kHeader + "environment:\n  OK: 1\n  1BAD: x\n", 6,
                      "environment: invalid variable name '1BAD' (letters, digits and '_', not "
                      "starting with a digit)");
    EXPECT_FILE_ERROR(kHeader + "environment:\n  BAD-NAME: x\n", 5,
                      "environment: invalid variable name 'BAD-NAME' (letters, digits and '_', not "
                      "starting with a digit)");
    EXPECT_FILE_ERROR(kHeader + "environment:\n  A: [1, 2]\n", 5,
                      "environment.A: expected a string, got a list");
    EXPECT_FILE_ERROR(kHeader + "environment:\n  A:\n", 5,
                      "environment.A: expected a string, got an empty value");
    EXPECT_FILE_ERROR(kHeader + "environment:\n  A: 1\n  A: 2\n", 6,
                      "duplicate key 'A' in environment");
    EXPECT_FILE_ERROR(kHeader + "environment:\n  PATH: /bin\n  GRPC_PORT: 1\n", 6,
                      "environment: 'GRPC_PORT' is set by the launcher (reserved: PATTERN_NAME, "
                      "NAMESPACE, SESSION_ID, PROCESS_ID, GRPC_PORT, HEALTH_PORT, NOTIFY_SOCKET, "
                      "LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID)");
    EXPECT_FILE_ERROR(kHeader + "environment: [A=1]\n", 4,
                      "environment: expected a mapping of NAME: value, got a list");
}

TEST_F(ManifestTest, DuplicateKeys) {
    EXPECT_FILE_ERROR(kHeader + "version: 2\n", 4, "duplicate key 'version' (first at line 2)");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  pids_limit: 1\n  pids_limit: 2\n", 6,
                      "duplicate key 'pids_limit' in resources (first at line 5)");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - {name: a, type: b}\n  - {name: a, type: c}\n",
                      6, "backend_slots[1].name: duplicate backend slot 'a'");
}

TEST_F(ManifestTest, SandboxValidation) {
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  seccomp: paranoid\n", 5,
                      "sandbox.seccomp: unknown seccomp profile 'paranoid' (known: default, "
                      "strict, none)");
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n  capabilities:\n    - net_bind_service\n    - "
                          "net_bind_servce\n",
                      7, "sandbox.capabilities[1]: unknown capability 'net_bind_servce'");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  capabilities: [kill, CAP_KILL]\n", 5,
                      "sandbox.capabilities[1]: capability 'CAP_KILL' is listed twice");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  namespaces: [mount, pid, mount]\n", 5,
                      "sandbox.namespaces[2]: namespace 'mount' is listed twice");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  namespaces: [net]\n", 5,
                      "sandbox.namespaces[0]: unknown namespace 'net' (known: mount, pid, ipc, "
                      "uts, cgroup, user; the network namespace is set by sandbox.network)");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  namespaces: mount\n", 5,
                      "sandbox.namespaces: expected a list, got 'mount'");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  network: none\n", 5,
                      "sandbox.network: unknown network mode 'none' (known: host, isolated)");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  user: -1\n", 5,
                      "sandbox.user: expected a name or a non-negative number, got '-1'");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  group: 4294967295\n", 5,
                      "sandbox.group: id 4294967295 is out of range");
}

// sandbox.user: root owns the host's files and cgroupfs, so it takes an
// explicit allow_root; allow_root means nothing for any other user.
TEST_F(ManifestTest, RootUserNeedsAllowRoot) {
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n"           // 4
                          "  seccomp: strict\n"  // 5
                          "  user: root\n",      // 6
                      6,
                      "sandbox.user: sandbox.user 'root' is root, which owns the host's files and "
                      "cgroupfs: set sandbox.allow_root: true to mean it");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  user: 0\n  allow_root: false\n", 5,
                      "sandbox.user: sandbox.user '0' is root, which owns the host's files and "
                      "cgroupfs: set sandbox.allow_root: true to mean it");

    const launcher::Manifest m = launcher::parse_manifest(
        pattern("p", kHeader + "sandbox:\n  user: root\n  allow_root: true\n"));
    EXPECT_EQ(m.sandbox.user, "root");
    EXPECT_TRUE(m.sandbox.allow_root);
    EXPECT_TRUE(launcher::parse_manifest(
                    pattern("q", kHeader + "sandbox:\n  allow_root: true\n  user: \"0\"\n"))
                    .sandbox.allow_root);
}

TEST_F(ManifestTest, AllowRootWithoutRootUserIsRejected) {
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n"             // 4
                          "  network: host\n"      // 5
                          "  allow_root: true\n",  // 6
                      6,
                      "sandbox.allow_root: sandbox.allow_root is for sandbox.user: root (or 0) "
                      "only");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  allow_root: true\n  user: nobody\n", 5,
                      "sandbox.allow_root: sandbox.allow_root is for sandbox.user: root (or 0) "
                      "only");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  allow_root: yes\n", 5,
                      "sandbox.allow_root: expected true or false, got 'yes'");
}

// A numeric id is any string of digits: "00" is uid 0 too, and needs
// allow_root like "0" and "root".
TEST_F(ManifestTest, RootUserSpelledWithLeadingZerosNeedsAllowRoot) {
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  user: \"00\"\n", 5,
                      "sandbox.user: sandbox.user '00' is root, which owns the host's files and "
                      "cgroupfs: set sandbox.allow_root: true to mean it");
}

// sandbox.user and sandbox.group are looked up (NSS) once, when the manifest
// is loaded, so that a spawn never waits for the account databases.
TEST_F(ManifestTest, UserAndGroupNamesAreResolvedWhenTheManifestIsLoaded) {
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr) << "this test needs the user nobody";
    const std::uint32_t nobody_uid = nobody->pw_uid;
    const std::uint32_t nobody_gid = nobody->pw_gid;

    launcher::Manifest m =
        launcher::parse_manifest(pattern("a", kHeader + "sandbox:\n  user: nobody\n"));
    EXPECT_EQ(m.sandbox.uid, nobody_uid);
    EXPECT_EQ(m.sandbox.gid, nobody_gid) << "without sandbox.group: the user's primary group";

    m = launcher::parse_manifest(
        pattern("b", kHeader + "sandbox:\n  user: nobody\n  group: root\n"));
    EXPECT_EQ(m.sandbox.uid, nobody_uid);
    EXPECT_EQ(m.sandbox.gid, 0u) << "sandbox.group wins over the primary group";

    m = launcher::parse_manifest(
        pattern("c", kHeader + "sandbox:\n  user: " + std::to_string(nobody_uid) + "\n"));
    EXPECT_EQ(m.sandbox.uid, nobody_uid);
    EXPECT_EQ(m.sandbox.gid, nobody_gid) << "a numeric uid with an entry: its primary group";

    m = launcher::parse_manifest(pattern("d", kHeader + "sandbox:\n  group: 4242\n"));
    EXPECT_FALSE(m.sandbox.uid.has_value());
    EXPECT_EQ(m.sandbox.gid, 4242u);
}

TEST_F(ManifestTest, ANumericUidWithoutAnEntryRunsWithTheGidOfTheSameNumber) {
    const std::uint32_t uid = 3999999999u;
    if (::getpwuid(uid) != nullptr) GTEST_SKIP() << "uid " << uid << " has an entry here";
    const launcher::Manifest m = launcher::parse_manifest(
        pattern("p", kHeader + "sandbox:\n  user: " + std::to_string(uid) + "\n"));
    EXPECT_EQ(m.sandbox.uid, uid);
    EXPECT_EQ(m.sandbox.gid, uid);
}

TEST_F(ManifestTest, AUserOrGroupThatDoesNotExistIsAnErrorAtItsLine) {
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n"                  // 4
                          "  network: host\n"           // 5
                          "  user: pl-no-such-user\n",  // 6
                      6, "sandbox.user: sandbox.user 'pl-no-such-user' does not exist");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  user: nobody\n  group: pl-no-such-group\n", 6,
                      "sandbox.group: sandbox.group 'pl-no-such-group' does not exist");
}

TEST_F(ManifestTest, Landlock) {
    EXPECT_TRUE(launcher::parse_manifest(pattern("a", kHeader + "sandbox:\n  landlock: true\n"))
                    .sandbox.landlock);
    EXPECT_FALSE(launcher::parse_manifest(pattern("b", kHeader + "sandbox:\n  landlock: false\n"))
                     .sandbox.landlock);
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  landlock: best-effort\n", 5,
                      "sandbox.landlock: expected true or false, got 'best-effort'");
}

TEST_F(ManifestTest, TmpSize) {
    auto tmp_size = [&](const std::string& dir, const std::string& text) {
        return launcher::parse_manifest(
                   pattern(dir, kHeader + "sandbox:\n  tmp_size: " + text + "\n"))
            .sandbox.tmp_size;
    };
    EXPECT_EQ(tmp_size("a", "1Mi"), 1u << 20);
    EXPECT_EQ(tmp_size("b", "2G"), 2000000000u);
    EXPECT_EQ(tmp_size("c", "4096"), 4096u);
    EXPECT_EQ(tmp_size("d", "4Ki"), 4096u);
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  tmp_size: 4095\n", 5,
                      "sandbox.tmp_size: tmp_size must be at least 4096 bytes");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  tmp_size: 0\n", 5,
                      "sandbox.tmp_size: tmp_size must be at least 4096 bytes");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  tmp_size: 12Mx\n", 5,
                      "sandbox.tmp_size: invalid size '12Mx': unknown suffix 'Mx' (use Ki, Mi, "
                      "Gi, Ti, Pi, Ei or K, M, G, T, P, E)");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  tmp_size: -1Mi\n", 5,
                      "sandbox.tmp_size: invalid size '-1Mi': negative sizes are not allowed");
}

TEST_F(ManifestTest, StateDirectoryNeedsTheMountNamespace) {
    EXPECT_TRUE(
        launcher::parse_manifest(pattern("a", kHeader + "sandbox:\n  state_directory: true\n"))
            .sandbox.state_directory);
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n"                  // 4
                          "  namespaces: [ipc, uts]\n"  // 5
                          "  state_directory: true\n",  // 6
                      6,
                      "sandbox.state_directory: state_directory needs the mount namespace (it is "
                      "bound into the pattern's view)");
    // Without a state directory, no mount namespace is fine.
    EXPECT_FALSE(launcher::parse_manifest(pattern("b", kHeader + "sandbox:\n  namespaces: [ipc]\n"
                                                                 "  state_directory: false\n"))
                     .sandbox.state_directory);
}

TEST_F(ManifestTest, Namespaces) {
    EXPECT_EQ(launcher::parse_manifest(pattern("a", kHeader + "sandbox:\n  namespaces: [cgroup]\n"))
                  .sandbox.namespaces,
              (std::vector<std::string>{"cgroup"}));
    EXPECT_EQ(launcher::parse_manifest(pattern("b", kHeader + "sandbox:\n  namespaces: []\n"))
                  .sandbox.namespaces,
              (std::vector<std::string>{}));
    EXPECT_EQ(
        launcher::parse_manifest(pattern("c", kHeader + "sandbox:\n  namespaces: [pid, mount]\n"))
            .sandbox.namespaces,
        (std::vector<std::string>{"pid", "mount"}));
    // pid alone would leave the pattern the host's /proc.
    EXPECT_FILE_ERROR(kHeader +
                          "sandbox:\n"                        // 4
                          "  seccomp: default\n"              // 5
                          "  namespaces: [pid, ipc, uts]\n",  // 6
                      6,
                      "sandbox.namespaces: namespace 'pid' needs 'mount' too (the pattern's own "
                      "/proc)");
    EXPECT_FILE_ERROR(kHeader + "sandbox:\n  namespaces: [cgroup, cgroup]\n", 5,
                      "sandbox.namespaces[1]: namespace 'cgroup' is listed twice");
}

TEST_F(ManifestTest, WrongTypes) {
    EXPECT_FILE_ERROR("name: demo\nversion: [1, 2]\nexecutable: ./run\n", 2,
                      "version: expected a string, got a list");
    EXPECT_FILE_ERROR(kHeader + "resources: 5\n", 4, "resources: expected a mapping, got '5'");
    EXPECT_FILE_ERROR(kHeader + "healthcheck:\n  - interval: 5s\n", 5,
                      "healthcheck: expected a mapping, got a list");
    EXPECT_FILE_ERROR(kHeader + "resources:\n  memory_limit: {a: 1}\n", 5,
                      "resources.memory_limit: expected a size such as 512Mi, got a mapping");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - {name: a, type: b, required: yes}\n", 5,
                      "backend_slots[0].required: expected true or false, got 'yes'");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - storage\n", 5,
                      "backend_slots[0]: expected a mapping with name and type, got 'storage'");
    EXPECT_FILE_ERROR(kHeader + "backend_slots:\n  - {name: a, type: b, config_schema: [x]}\n", 5,
                      "backend_slots[0].config_schema: expected a mapping, got a list");
    EXPECT_FILE_ERROR(kHeader + "grace_period:\n", 4,
                      "grace_period: expected a duration such as 30s, got an empty value");
    EXPECT_FILE_ERROR(kHeader + "[a]: 1\n", 4, "keys must be plain strings, got a list");
}

TEST_F(ManifestTest, YamlSyntaxErrorLine) {
    const FileError e = error_of(kHeader + "resources:\n  cpu_limit: 1\n   memory_limit: 1Gi\n");
    EXPECT_EQ(e.line(), 6);
    EXPECT_TRUE(e.message().starts_with("YAML syntax error: ")) << e.what();

    const FileError flow = error_of(kHeader + "environment: {A: 1\n");
    EXPECT_EQ(flow.line(), 5);
    EXPECT_TRUE(flow.message().starts_with("YAML syntax error: ")) << flow.what();
}

TEST_F(ManifestTest, EmptyAndNonMappingFiles) {
    EXPECT_FILE_ERROR("", 1, "the file is empty (expected a mapping of keys)");
    EXPECT_FILE_ERROR("# nothing here\n\n", 1, "the file is empty (expected a mapping of keys)");
    EXPECT_FILE_ERROR("# a list\n- name: demo\n", 2,
                      "expected a mapping of keys at the top level, got a list");
    EXPECT_FILE_ERROR("just a string\n", 1,
                      "expected a mapping of keys at the top level, got 'just a string'");
    EXPECT_FILE_ERROR(kHeader + "---\nname: other\n", 5,
                      "more than one YAML document (a file holds exactly one)");
}

TEST_F(ManifestTest, UnreadableFile) {
    try {
        launcher::parse_manifest(root_ / "missing" / "manifest.yaml");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.line(), 0);
        EXPECT_EQ(e.message(), "cannot read: No such file or directory");
        EXPECT_EQ(std::string(e.what()), (root_ / "missing" / "manifest.yaml").string() +
                                             ": cannot read: No such file or directory");
    }
}

TEST_F(ManifestTest, DiscoveryLoadsValidSkipsInvalidAndDuplicates) {
    pattern("a-first", "name: alpha\nversion: 1\nexecutable: ./run\n");
    pattern("b-broken",
            "name: beta\nversion: 1\nexecutable: ./run\nresources:\n  memroy_limit: 1\n");
    pattern("c-dup", "# same name as a-first\nversion: 2\nname: alpha\nexecutable: ./run\n");
    pattern("d-other", "name: delta\nversion: 1\nexecutable: ./run\n");
    fs::create_directories(root_ / "e-no-manifest");
    write(root_ / "f-file", "not a directory\n");

    const launcher::Discovery d = launcher::discover_patterns(root_);
    ASSERT_EQ(d.patterns.size(), 2u);
    EXPECT_EQ(d.patterns.at("alpha").file, root_ / "a-first" / "manifest.yaml");
    EXPECT_EQ(d.patterns.at("alpha").version, "1");
    EXPECT_EQ(d.patterns.at("delta").file, root_ / "d-other" / "manifest.yaml");

    ASSERT_EQ(d.errors.size(), 2u);
    EXPECT_EQ(d.errors[0].file(), root_ / "b-broken" / "manifest.yaml");
    EXPECT_EQ(d.errors[0].line(), 5);
    EXPECT_TRUE(d.errors[0].message().starts_with("unknown key 'memroy_limit' in resources"));
    EXPECT_EQ(d.errors[1].file(), root_ / "c-dup" / "manifest.yaml");
    EXPECT_EQ(d.errors[1].line(), 3);
    EXPECT_EQ(d.errors[1].message(), "duplicate pattern name 'alpha' (also defined in " +
                                         (root_ / "a-first" / "manifest.yaml").string() + ")");
}

TEST_F(ManifestTest, DiscoveryOfAnEmptyDirectory) {
    const launcher::Discovery d = launcher::discover_patterns(root_);
    EXPECT_TRUE(d.patterns.empty());
    EXPECT_TRUE(d.errors.empty());
}

TEST_F(ManifestTest, DiscoveryOfAMissingDirectoryThrows) {
    try {
        launcher::discover_patterns(root_ / "nope");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_EQ(e.file(), root_ / "nope");
        EXPECT_EQ(e.line(), 0);
        EXPECT_EQ(e.message(), "cannot read the patterns directory: No such file or directory");
    }
}

TEST(ParseDuration, Accepts) {
    EXPECT_EQ(launcher::parse_duration("100ms"), 100ms);
    EXPECT_EQ(launcher::parse_duration("5s"), 5s);
    EXPECT_EQ(launcher::parse_duration("2m"), 2min);
    EXPECT_EQ(launcher::parse_duration("1h"), 1h);
    EXPECT_EQ(launcher::parse_duration("0010s"), 10s);
}

TEST(ParseDuration, RejectsWithReason) {
    auto reason = [](std::string_view text) {
        try {
            launcher::parse_duration(text);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(reason(""), "invalid duration '': empty");
    EXPECT_EQ(reason("30"), "invalid duration '30': missing unit (ms, s, m or h)");
    EXPECT_EQ(reason("0s"), "invalid duration '0s': must be positive");
    EXPECT_EQ(reason("-5s"), "invalid duration '-5s': must be positive");
    EXPECT_EQ(reason("5sec"), "invalid duration '5sec': unknown unit 'sec' (use ms, s, m or h)");
    EXPECT_EQ(reason("5 s"), "invalid duration '5 s': no spaces allowed (write 30s, not 30 s)");
    EXPECT_EQ(
        reason(" 5s"),
        "invalid duration ' 5s': expected a whole number and a unit (ms, s, m or h), e.g. 30s");
    EXPECT_EQ(reason("1.5s"),
              "invalid duration '1.5s': fractions are not allowed; use a smaller unit (1500ms, not "
              "1.5s)");
    EXPECT_EQ(reason("s"),
              "invalid duration 's': expected a whole number and a unit (ms, s, m or h), e.g. 30s");
    EXPECT_EQ(
        reason("+5s"),
        "invalid duration '+5s': expected a whole number and a unit (ms, s, m or h), e.g. 30s");
    EXPECT_EQ(reason("9223372036854776h"), "invalid duration '9223372036854776h': too large");
    EXPECT_EQ(reason("99999999999999999999ms"),
              "invalid duration '99999999999999999999ms': too large");
    EXPECT_EQ(reason("9223372036854775807ms"), "accepted");
    EXPECT_EQ(reason("9223372036854775808ms"),
              "invalid duration '9223372036854775808ms': too large");
}

TEST(Isolation, NamesRoundTrip) {
    for (auto level : {launcher::Isolation::kNone, launcher::Isolation::kNamespace,
                       launcher::Isolation::kSession}) {
        EXPECT_EQ(launcher::parse_isolation(launcher::isolation_name(level)), level);
    }
    EXPECT_EQ(launcher::parse_isolation("Session"), std::nullopt);
    EXPECT_EQ(launcher::parse_isolation(""), std::nullopt);
}

}  // namespace
