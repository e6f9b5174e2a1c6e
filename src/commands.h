// Entry points of the pattern-launcher binary.
#pragma once

#include <string>
#include <vector>

namespace launcher {

// `pattern-launcher [--config FILE] [flags]`: the daemon.
int run_daemon(const std::vector<std::string>& args);

// `pattern-launcher check`: what this host gives the sandbox (cgroup layout,
// controllers, CLONE_INTO_CGROUP, seccomp, capabilities). Exit 0 when a
// sandboxed child can be started.
int run_host_check();

}  // namespace launcher
