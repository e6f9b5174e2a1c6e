// Entry points of the pattern-launcher binary.
#pragma once

#include <string>
#include <vector>

namespace launcher {

// `pattern-launcher [--config FILE] [flags]`: the daemon.
int run_daemon(const std::vector<std::string>& args);

// `pattern-launcher check [--config FILE] [--patterns-dir DIR]`: what this
// host gives the sandbox (cgroup layout, controllers, CLONE_INTO_CGROUP,
// seccomp, Landlock, the init, a spawn with the full default compartment)
// and what each pattern's manifest gives up of it. Exit 0 when a sandboxed
// child can be started and every manifest is valid.
int run_host_check(const std::vector<std::string>& args);

}  // namespace launcher
