// pattern-launcher: starts pattern executables in sandboxes.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "daemon/commands.h"
#include "config/manifest.h"
#include "systemd/tenant_scope.h"

namespace {

constexpr const char* kUsage = R"(usage: pattern-launcher [--config FILE] [flags]   run the daemon
       pattern-launcher check [--config FILE] [--patterns-dir DIR]
                                                   report what this host gives the sandbox, and
                                                   what the patterns' manifests give up of it
       pattern-launcher hold                       (started by the daemon) keep the tenants' scope

flags (override the config file):
  --patterns-dir DIR          where <pattern>/manifest.yaml live
  --grpc-socket PATH          unix socket of the API (default <runtime_dir>/api.sock)
  --grpc-port N               also serve on 127.0.0.1:N (0: no TCP)
  --runtime-dir DIR           sockets and state (default /run/pattern-launcher)
  --cgroup-root PATH          cgroup subtree to own (default <cgroup2 mount>/pattern-launcher)
  --limits-enforcement strict|warn
  --default-isolation none|namespace|session
See docs/configuration.md for the config file.
)";

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stderr, nullptr, _IOLBF, 0);
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    try {
        if (!args.empty() && args[0] == "check") {
            return launcher::run_host_check(std::vector<std::string>(args.begin() + 1, args.end()));
        }
        // The placeholder that keeps the tenants' systemd scope (tenant_scope.h).
        if (args.size() == 1 && args[0] == "hold") return launcher::run_holder();
        return launcher::run_daemon(args);
    } catch (const launcher::FileError& e) {
        std::fprintf(stderr, "pattern-launcher: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pattern-launcher: %s\n", e.what());
        return 1;
    }
}
