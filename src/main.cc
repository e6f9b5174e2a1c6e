// pattern-launcher: starts pattern executables in sandboxes.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"

namespace {

constexpr const char* kUsage = R"(usage: pattern-launcher <command> [options]

commands:
  check                      report what this host gives the sandbox
  run-one EXECUTABLE [opts]  run one pattern in a sandbox until SIGINT/SIGTERM
      --port N               listen on 127.0.0.1:N and hand the socket over as 'grpc' (default 7070)
      --health-port N        also hand over 127.0.0.1:N as 'health'
      --cgroup-root PATH     cgroup subtree to use (default <cgroup2 mount>/pattern-launcher)
      --network host|isolated  isolated: own network namespace with only lo (default)
      --seccomp NAME|none    seccomp profile (default: default)
      --grace-period SECONDS SIGTERM-to-SIGKILL grace period at shutdown (default 10)
)";

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines interleave with the pattern's output
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "-h" || args[0] == "--help") {
        std::fputs(kUsage, args.empty() ? stderr : stdout);
        return args.empty() ? 2 : 0;
    }
    try {
        const std::string command = args[0];
        args.erase(args.begin());
        if (command == "check") return launcher::run_host_check();
        if (command == "run-one") return launcher::run_one(args);
        std::fprintf(stderr, "pattern-launcher: unknown command '%s'\n%s", command.c_str(), kUsage);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pattern-launcher: %s\n", e.what());
        return 1;
    }
}
