// Sub-commands of the pattern-launcher binary.
#pragma once

#include <string>
#include <vector>

namespace launcher {

// `pattern-launcher check`: what this host gives the sandbox (cgroup layout,
// controllers, CLONE_INTO_CGROUP, seccomp, capabilities). Exit 0 when a
// sandboxed child can be started.
int run_host_check();

// `pattern-launcher run-one EXECUTABLE [options]`: starts one pattern in a
// sandbox with a listening socket, supervises it until SIGINT/SIGTERM or its
// exit, then stops it and removes its cgroup.
int run_one(const std::vector<std::string>& args);

}  // namespace launcher
