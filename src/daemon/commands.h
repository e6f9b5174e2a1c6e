// Entry points of the pattern-launcher binary, after main.cc parsed the
// command line (CLI11).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/isolation_key.h"
#include "config/config.h"

namespace launcher {

// `pattern-launcher [--config FILE] [flags]`: the daemon. A flag that is
// set overrides the config file.
struct DaemonFlags {
    std::optional<std::filesystem::path> config_file;
    std::optional<std::filesystem::path> patterns_dir;
    std::optional<std::filesystem::path> grpc_socket;
    std::optional<int> grpc_port;
    std::optional<std::filesystem::path> runtime_dir;
    std::optional<std::filesystem::path> cgroup_root;
    std::optional<LimitsEnforcement> limits_enforcement;
    std::optional<Isolation> default_isolation;
};
int run_daemon(const DaemonFlags& flags);

// `pattern-launcher check [--config FILE] [--patterns-dir DIR]`: what this
// host gives the sandbox (cgroup layout, controllers, CLONE_INTO_CGROUP,
// seccomp, Landlock, the init, a spawn with the full default compartment)
// and what each pattern's manifest gives up of it. Exit 0 when a sandboxed
// child can be started and every manifest is valid.
struct CheckFlags {
    std::filesystem::path config_file;   // empty: the built-in defaults
    std::filesystem::path patterns_dir;  // empty: the config's; no report without either
};
int run_host_check(const CheckFlags& flags);

}  // namespace launcher
