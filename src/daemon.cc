// `pattern-launcher [--config FILE] [flags]`: the daemon.
//
// Startup: configuration (file, then flags), pattern discovery, the cgroup
// subtree (the daemon moves into its `supervisor` leaf), the gRPC server on
// the unix socket (and TCP if configured), then the event loop on this
// thread. SIGHUP reloads manifests; SIGTERM/SIGINT terminate every pattern
// and exit 0.
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "commands.h"
#include "config.h"
#include "event_loop.h"
#include "grpc_service.h"
#include "launcher.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"

namespace launcher {
namespace {

void say(const std::string& line) { std::fprintf(stderr, "pattern-launcher: %s\n", line.c_str()); }

int parse_port(const std::string& text) {
    int value = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > 65535) {
        throw std::invalid_argument("--grpc-port expects 0..65535, got '" + text + "'");
    }
    return value;
}

// Defaults that work from a build tree: <build>/src/pattern-launcher finds
// the example patterns at <build>/patterns.
LauncherConfig built_in_defaults() {
    LauncherConfig config;
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) config.patterns_dir = exe.parent_path().parent_path() / "patterns";
    return config;
}

LauncherConfig configure(const std::vector<std::string>& args) {
    std::optional<std::filesystem::path> config_file;
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--config") config_file = args[i + 1];
    }
    LauncherConfig config = config_file ? load_config(*config_file) : built_in_defaults();
    const std::filesystem::path derived_socket = config.runtime_dir / "api.sock";
    bool socket_given = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& flag = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw std::invalid_argument(flag + " needs a value");
            return args[++i];
        };
        if (flag == "--config") {
            value();
        } else if (flag == "--patterns-dir") {
            config.patterns_dir = std::filesystem::absolute(value());
        } else if (flag == "--grpc-socket") {
            config.grpc_socket = std::filesystem::absolute(value());
            socket_given = true;
        } else if (flag == "--grpc-port") {
            config.grpc_port = parse_port(value());
        } else if (flag == "--runtime-dir") {
            config.runtime_dir = std::filesystem::absolute(value());
        } else if (flag == "--cgroup-root") {
            config.cgroup_root = value();
        } else if (flag == "--limits-enforcement") {
            const std::string& v = value();
            if (v != "strict" && v != "warn") {
                throw std::invalid_argument("--limits-enforcement expects strict or warn, got '" + v + "'");
            }
            config.limits_enforcement = v == "strict" ? LimitsEnforcement::kStrict : LimitsEnforcement::kWarn;
        } else if (flag == "--default-isolation") {
            auto level = parse_isolation(value());
            if (!level) throw std::invalid_argument("--default-isolation expects none, namespace or session");
            config.default_isolation = *level;
        } else {
            throw std::invalid_argument("unknown argument '" + flag + "' (see --help)");
        }
    }
    // The socket follows runtime_dir unless it was set explicitly.
    if (!socket_given && (config.grpc_socket.empty() || config.grpc_socket == derived_socket)) {
        config.grpc_socket = config.runtime_dir / "api.sock";
    }
    if (config.cgroup_root.empty()) {
        config.cgroup_root = sandbox::find_cgroup2_mount().path + "/pattern-launcher";
    }
    return config;
}

Discovery discover_or_explain(const LauncherConfig& config) {
    Discovery found = discover_patterns(config.patterns_dir);
    for (const FileError& e : found.errors) say("skipping invalid manifest: " + std::string(e.what()));
    return found;
}

sandbox::UniqueFd termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
    // Blocked in every thread (gRPC's start later and inherit the mask).
    if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) sandbox::throw_sys_error(errno, "sigprocmask");
    ::signal(SIGPIPE, SIG_IGN);
    sandbox::UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) sandbox::throw_sys_error(errno, "signalfd");
    return fd;
}

}  // namespace

int run_daemon(const std::vector<std::string>& args) {
    LauncherConfig config = configure(args);
    sandbox::UniqueFd signals = termination_signals();

    Discovery discovery = discover_or_explain(config);
    if (discovery.patterns.empty()) {
        say("no valid pattern manifest in " + config.patterns_dir.string() + "; refusing to start");
        return 1;
    }
    std::filesystem::create_directories(config.runtime_dir);
    ::chmod(config.runtime_dir.c_str(), 0755);
    std::filesystem::create_directories(config.grpc_socket.parent_path());

    sandbox::CgroupTree tree = sandbox::CgroupTree::open(config.cgroup_root.string());
    EventLoop loop;
    const std::size_t pattern_count = discovery.patterns.size();
    Launcher launcher(loop, config, tree, std::move(discovery));
    // Before serving: processes a previous instance left running are adopted
    // (or killed, per orphan_policy); nothing untracked stays in the subtree.
    Launcher::RecoveryReport recovered = launcher.recover();
    if (recovered.adopted || recovered.killed || recovered.stale_records || recovered.removed_groups) {
        say("recovery: adopted " + std::to_string(recovered.adopted) + ", killed " +
            std::to_string(recovered.killed) + ", removed " + std::to_string(recovered.removed_groups) +
            " cgroups and " + std::to_string(recovered.stale_records) + " stale state records");
    }
    PatternLauncherService service(loop, launcher);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + config.grpc_socket.string(), grpc::InsecureServerCredentials());
    int tcp_port = 0;
    if (config.grpc_port > 0) {
        // No authentication on this endpoint yet: loopback only.
        builder.AddListeningPort("127.0.0.1:" + std::to_string(config.grpc_port),
                                 grpc::InsecureServerCredentials(), &tcp_port);
    }
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        say("cannot serve the gRPC API on unix:" + config.grpc_socket.string() +
            (config.grpc_port ? " and 127.0.0.1:" + std::to_string(config.grpc_port) : ""));
        return 1;
    }
    ::chmod(config.grpc_socket.c_str(), 0660);
    say("serving prism.launcher.PatternLauncher on unix:" + config.grpc_socket.string() +
        (tcp_port ? " and 127.0.0.1:" + std::to_string(tcp_port) : "") + " with " +
        std::to_string(pattern_count) + " patterns from " + config.patterns_dir.string() +
        "; cgroups under " + tree.root_path());

    std::thread server_stopper;
    loop.add_fd(signals.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info{};
        while (::read(signals.get(), &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGHUP) {
                say("SIGHUP: reloading manifests from " + config.patterns_dir.string());
                Discovery reloaded = discover_or_explain(config);
                say("reloaded " + std::to_string(reloaded.patterns.size()) + " patterns");
                launcher.replace_patterns(std::move(reloaded));
                continue;
            }
            if (launcher.shutting_down()) continue;
            say(std::string(info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM") +
                ": terminating " + std::to_string(launcher.process_count()) + " patterns");
            server->GetHealthCheckService()->SetServingStatus(false);
            launcher.shutdown([&] {
                // Server::Shutdown waits for in-flight calls, which finish on
                // this loop: run it elsewhere and stop the loop afterwards.
                // Every call has been answered by now (launches get UNAVAILABLE),
                // so the deadline only cuts idle or half-open connections short.
                server_stopper = std::thread([&] {
                    server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
                    loop.post([&] { loop.stop(); });
                });
            });
        }
    });
    loop.run();
    if (server_stopper.joinable()) server_stopper.join();
    server->Wait();
    tree.close();
    ::unlink(config.grpc_socket.c_str());
    say("stopped");
    return 0;
}

}  // namespace launcher
