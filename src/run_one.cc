// `pattern-launcher run-one`: one pattern, one sandbox, one poll loop.
//
// This is the smallest useful launcher: it binds the pattern's socket
// itself, starts the pattern in its own cgroup, network namespace and
// seccomp profile with every capability dropped, waits on the pidfd and a
// signalfd, and on SIGINT/SIGTERM stops the pattern (SIGTERM, grace period,
// cgroup.kill) and removes the cgroup.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <charconv>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"
#include "sandbox/spawn.h"

namespace launcher {
namespace {

struct Options {
    std::string executable;
    int port = 7070;
    std::optional<int> health_port;
    std::string cgroup_root;
    bool isolated_network = true;
    std::string seccomp = "default";
    int grace_period_s = 10;
};

int parse_int(const std::string& flag, const std::string& text, int min, int max) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
        throw std::invalid_argument(flag + " expects a whole number in " + std::to_string(min) +
                                    ".." + std::to_string(max) + ", got '" + text + "'");
    }
    return value;
}

Options parse_options(const std::vector<std::string>& args) {
    Options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw std::invalid_argument(arg + " needs a value");
            return args[++i];
        };
        if (arg == "--port") {
            o.port = parse_int(arg, value(), 1, 65535);
        } else if (arg == "--health-port") {
            o.health_port = parse_int(arg, value(), 1, 65535);
        } else if (arg == "--cgroup-root") {
            o.cgroup_root = value();
        } else if (arg == "--network") {
            const std::string& v = value();
            if (v != "host" && v != "isolated") {
                throw std::invalid_argument("--network expects host or isolated, got '" + v + "'");
            }
            o.isolated_network = v == "isolated";
        } else if (arg == "--seccomp") {
            o.seccomp = value();
        } else if (arg == "--grace-period") {
            o.grace_period_s = parse_int(arg, value(), 0, 3600);
        } else if (!arg.starts_with("--") && o.executable.empty()) {
            o.executable = arg;
        } else {
            throw std::invalid_argument("unknown argument '" + arg + "'");
        }
    }
    if (o.executable.empty()) throw std::invalid_argument("run-one needs an EXECUTABLE");
    char resolved[PATH_MAX];
    if (!::realpath(o.executable.c_str(), resolved)) {
        sandbox::throw_sys_error(errno, "resolve executable", o.executable);
    }
    o.executable = resolved;
    if (o.cgroup_root.empty()) o.cgroup_root = sandbox::find_cgroup2_mount().path + "/pattern-launcher";
    return o;
}

sandbox::UniqueFd listen_loopback(int port) {
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        sandbox::throw_sys_error(errno, "bind", "127.0.0.1:" + std::to_string(port));
    }
    if (::listen(fd.get(), 128) != 0) sandbox::throw_sys_error(errno, "listen");
    return fd;
}

// SIGINT and SIGTERM arrive on an fd so that the poll loop sees them.
sandbox::UniqueFd block_termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) sandbox::throw_sys_error(errno, "sigprocmask");
    sandbox::UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC));
    if (!fd) sandbox::throw_sys_error(errno, "signalfd");
    return fd;
}

// Stops the pattern: SIGTERM, up to the grace period, then cgroup.kill.
void stop(sandbox::Process& process, sandbox::Cgroup& group, int grace_period_s) {
    if (process.send_signal(SIGTERM) &&
        !process.wait_exit(std::chrono::seconds(grace_period_s))) {
        std::fprintf(stderr, "pattern-launcher: grace period of %d s over, killing the cgroup\n",
                     grace_period_s);
    }
    group.kill();
}

}  // namespace

int run_one(const std::vector<std::string>& args) {
    const Options o = parse_options(args);
    sandbox::UniqueFd signals = block_termination_signals();
    sandbox::UniqueFd grpc = listen_loopback(o.port);
    sandbox::UniqueFd health;
    if (o.health_port) health = listen_loopback(*o.health_port);

    sandbox::CgroupTree tree = sandbox::CgroupTree::open(o.cgroup_root);
    sandbox::Cgroup group = tree.create_group("run-one." + std::to_string(::getpid()));
    std::optional<sandbox::BpfProgram> filter;
    if (o.seccomp != "none") filter = sandbox::compile_builtin_profile(o.seccomp);

    sandbox::SpawnSpec spec;
    spec.executable = o.executable;
    spec.environment = {"PATH=/usr/local/bin:/usr/bin:/bin", "GRPC_PORT=" + std::to_string(o.port)};
    if (o.health_port) spec.environment.push_back("HEALTH_PORT=" + std::to_string(*o.health_port));
    spec.stdout_fd = STDOUT_FILENO;
    spec.stderr_fd = STDERR_FILENO;
    spec.passed_fds.push_back({grpc.get(), "grpc"});
    if (health) spec.passed_fds.push_back({health.get(), "health"});
    spec.cgroup_fd = group.dir_fd();
    spec.namespaces = {.mount = true, .pid = true, .ipc = true, .uts = true, .user = false,
                       .net = o.isolated_network};
    if (filter) spec.seccomp = &*filter;
    sandbox::SpawnResult child = sandbox::spawn(spec);

    std::printf("pattern-launcher: started %s as pid %d in %s\n", o.executable.c_str(),
                child.process.pid(), group.path().c_str());
    std::printf("pattern-launcher: address 127.0.0.1:%d%s; network %s, seccomp %s, "
                "capabilities none; Ctrl-C stops it\n",
                o.port,
                o.health_port ? (", health 127.0.0.1:" + std::to_string(*o.health_port)).c_str()
                              : "",
                o.isolated_network ? "isolated" : "host", o.seccomp.c_str());
    std::fflush(stdout);

    pollfd fds[2] = {{child.process.pidfd(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            sandbox::throw_sys_error(errno, "poll");
        }
        if (fds[0].revents) {
            sandbox::ExitStatus status = sandbox::decode_exit(
                child.process.reap(), group.memory_events().oom_kill);
            std::printf("pattern-launcher: pattern %s\n", status.describe().c_str());
            group.kill();
            group.remove();
            tree.close();
            return status.success() ? 0 : 1;
        }
        if (fds[1].revents) {
            signalfd_siginfo info{};
            if (::read(signals.get(), &info, sizeof info) != sizeof info) continue;
            std::printf("pattern-launcher: %s received, stopping the pattern\n",
                        info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            stop(child.process, group, o.grace_period_s);
            sandbox::ExitStatus status = sandbox::decode_exit(child.process.reap());
            std::printf("pattern-launcher: pattern %s; cgroup removed\n", status.describe().c_str());
            group.remove();
            tree.close();
            return 0;
        }
    }
}

}  // namespace launcher
