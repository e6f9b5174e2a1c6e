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

#include <optional>
#include <stdexcept>
#include <thread>

#include "api/api_listener.h"
#include "api/grpc_service.h"
#include "common/event_loop.h"
#include "common/log.h"
#include "config/config.h"
#include "core/launcher.h"
#include "core/pattern_logs.h"
#include "daemon/commands.h"
#include "daemon/pattern_reloader.h"
#include "observability/observability.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"
#include "systemd/systemd_notify.h"
#include "systemd/tenant_scope.h"

namespace launcher {
namespace {

// Defaults that work from a build tree: <build>/src/pattern-launcher finds
// the example patterns at <build>/patterns.
LauncherConfig built_in_defaults() {
    LauncherConfig config;
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) config.patterns_dir = exe.parent_path().parent_path() / "patterns";
    return config;
}

// Under systemd with Delegate=yes the delegated cgroup is ours (see
// open_cgroup_tree); elsewhere a subtree of our own below the cgroup2 mount.
// Delegation is recognised by the xattr systemd puts on delegated cgroups
// (trusted.delegate) or by PATTERN_LAUNCHER_DELEGATED=1 from the unit; a
// root process can write to any cgroup, so write access proves nothing.
bool running_delegated() {
    const sandbox::CgroupMount mount = sandbox::find_cgroup2_mount();
    const std::string own = sandbox::cgroup_dir(mount, sandbox::self_cgroup());
    const char* flag = std::getenv("PATTERN_LAUNCHER_DELEGATED");
    const bool delegated = (flag && std::string(flag) == "1") || sandbox::cgroup_is_delegated(own);
    return delegated && own != mount.path;
}

std::filesystem::path default_cgroup_root(bool delegated) {
    const sandbox::CgroupMount mount = sandbox::find_cgroup2_mount();
    if (delegated) return sandbox::cgroup_dir(mount, sandbox::self_cgroup());
    return mount.path + "/pattern-launcher";
}

// The tenants' cgroup tree. A delegated systemd service keeps its tenants in
// a scope of their own (tenant_scope.h says why) and stays in its unit's
// cgroup itself; without one (no D-Bus, not a service) it falls back to its
// own delegated cgroup, where it moves into "supervisor".
sandbox::CgroupTree open_cgroup_tree(LauncherConfig& config, bool delegated_by_default,
                                     std::optional<TenantScope>& scope) {
    if (delegated_by_default) {
        try {
            // config.cgroup_root is the service's own cgroup here (the fallback).
            scope = open_tenant_scope(config.cgroup_root.string());
        } catch (const std::exception& e) {
            log::warning(std::string("cannot set up the tenants' scope: ") + e.what() +
                         "; tenants go below the service's own cgroup, where systemd cannot "
                         "restart this service while they run");
        }
    }
    if (!scope) return sandbox::CgroupTree::open(config.cgroup_root.string());
    config.cgroup_root = scope->cgroup_dir;
    sandbox::CgroupTree::Options options;
    options.move_self_to_supervisor = false;
    options.supervisor_occupant = scope->holder;
    options.delegated_controllers = scope->delegated_controllers;
    return sandbox::CgroupTree::open(config.cgroup_root.string(), options);
}

LauncherConfig configure(const DaemonFlags& flags) {
    LauncherConfig config =
        flags.config_file ? load_config(*flags.config_file) : built_in_defaults();
    const std::filesystem::path derived_socket = config.runtime_dir / "api.sock";
    if (flags.patterns_dir) config.patterns_dir = std::filesystem::absolute(*flags.patterns_dir);
    if (flags.grpc_socket) config.grpc_socket = std::filesystem::absolute(*flags.grpc_socket);
    if (flags.grpc_port) config.grpc_port = *flags.grpc_port;
    if (flags.runtime_dir) config.runtime_dir = std::filesystem::absolute(*flags.runtime_dir);
    if (flags.cgroup_root) config.cgroup_root = *flags.cgroup_root;
    if (flags.limits_enforcement) config.limits_enforcement = *flags.limits_enforcement;
    if (flags.default_isolation) config.default_isolation = *flags.default_isolation;
    // The socket follows runtime_dir unless it was set explicitly.
    if (!flags.grpc_socket &&
        (config.grpc_socket.empty() || config.grpc_socket == derived_socket)) {
        config.grpc_socket = config.runtime_dir / "api.sock";
    }
    if (config.log_dir.empty()) config.log_dir = config.runtime_dir / "logs";
    return config;
}

// Any thread: the reload runs it on a worker (pattern_reloader.h).
Discovery discover_or_explain(const std::filesystem::path& patterns_dir) {
    Discovery found = discover_patterns(patterns_dir);
    for (const FileError& e : found.errors)
        log::warning("skipping invalid manifest: " + std::string(e.what()));
    return found;
}

sandbox::UniqueFd termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&set, sig);
    // Blocked in every thread (gRPC's start later and inherit the mask).
    if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
        sandbox::throw_sys_error(errno, "sigprocmask");
    ::signal(SIGPIPE, SIG_IGN);
    sandbox::UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) sandbox::throw_sys_error(errno, "signalfd");
    return fd;
}

std::string status_line(const Launcher& launcher) {
    HealthSummary h = launcher.health(false);
    return std::to_string(h.running) + " running, " + std::to_string(h.starting) + " starting, " +
           std::to_string(h.failed) + " failed, " + std::to_string(h.patterns_loaded) + " patterns";
}

// The API endpoints: sockets systemd passed as "grpc" (unix or TCP), else
// the configured unix socket and, if grpc_port is set, 127.0.0.1:grpc_port.
// Returns true when the sockets came from systemd (which owns them).
bool open_api_listeners(ApiListener& api, std::multimap<std::string, int>& inherited,
                        const LauncherConfig& config) {
    auto [first, last] = inherited.equal_range("grpc");
    if (first != last) {
        for (auto it = first; it != last; ++it) {
            api.add(sandbox::UniqueFd(it->second));
            log::info("serving the API on socket fd " + std::to_string(it->second) +
                      " from systemd");
        }
        inherited.erase("grpc");
        return true;
    }
    api.add(bind_unix_listener(config.grpc_socket));
    std::string where = "unix:" + config.grpc_socket.string();
    if (config.grpc_port > 0) {
        int port = 0;
        api.add(bind_tcp_listener(config.grpc_port, port));
        where += " and 127.0.0.1:" + std::to_string(port);  // no authentication yet: loopback only
    }
    log::info("serving the API on " + where);
    return false;
}

}  // namespace

int run_daemon(const DaemonFlags& flags) {
    // First, while no thread or child exists: LISTEN_PID must still be ours.
    std::multimap<std::string, int> inherited = take_listen_fds();
    LauncherConfig config = configure(flags);
    // Without a configured cgroup_root, a delegated service's tenants get
    // their own scope (open_cgroup_tree); this is the fallback.
    const bool delegated_by_default = config.cgroup_root.empty() && running_delegated();
    if (config.cgroup_root.empty()) config.cgroup_root = default_cgroup_root(delegated_by_default);
    sandbox::UniqueFd signals = termination_signals();
    SystemdNotifier notifier;

    Discovery discovery = discover_or_explain(config.patterns_dir);
    if (discovery.patterns.empty()) {
        log::error("no valid pattern manifest in " + config.patterns_dir.string() +
                   "; refusing to start");
        return 1;
    }
    std::filesystem::create_directories(config.runtime_dir);
    ::chmod(config.runtime_dir.c_str(), 0755);
    std::filesystem::create_directories(config.grpc_socket.parent_path());

    // Before anything is started: the tenants' root, with this process (or
    // the scope's placeholder) in its supervisor leaf.
    std::optional<TenantScope> scope;
    sandbox::CgroupTree tree = open_cgroup_tree(config, delegated_by_default, scope);
    EventLoop loop;
    PatternLogs logs(config.log_dir, config.log_max_bytes);
    const std::size_t pattern_count = discovery.patterns.size();
    Launcher launcher(loop, config, tree, std::move(discovery));
    launcher.set_logs(&logs);
    // Before serving: processes a previous instance left running are adopted
    // (or killed, per orphan_policy); nothing untracked stays in the subtree.
    const Launcher::RecoveryReport recovered = launcher.recover();
    if (recovered.adopted || recovered.started_again || recovered.stops_finished ||
        recovered.kept_failed || recovered.killed || recovered.set_aside ||
        recovered.removed_groups) {
        log::notice("recovery: adopted " + std::to_string(recovered.adopted) + ", started again " +
                    std::to_string(recovered.started_again) + ", finished stopping " +
                    std::to_string(recovered.stops_finished) + ", kept failed " +
                    std::to_string(recovered.kept_failed) + ", killed " +
                    std::to_string(recovered.killed) + " untracked, removed " +
                    std::to_string(recovered.removed_groups) + " cgroups, set aside " +
                    std::to_string(recovered.set_aside) + " unreadable state records");
    }

    ApiListener api(loop);
    const bool api_from_systemd = open_api_listeners(api, inherited, config);
    // SIGHUP and the Reload RPC: discovery on a worker thread, applied here.
    PatternReloader reloader(
        loop,
        {.begin =
             [&] {
                 notifier.reloading();
                 log::info("reloading manifests from " + config.patterns_dir.string());
             },
         .discover = [patterns_dir =
                          config.patterns_dir] { return discover_or_explain(patterns_dir); },
         .apply =
             [&](Discovery reloaded) {
                 launcher.replace_patterns(std::move(reloaded));
                 log::info("reloaded " + std::to_string(launcher.pattern_count()) + " patterns");
             },
         .end =
             [&](const PatternReloader::Outcome& outcome) {
                 if (outcome.failure) {
                     log::error("reload failed, keeping the " +
                                std::to_string(launcher.pattern_count()) +
                                " patterns loaded: " + *outcome.failure);
                 }
                 // After RELOADING=1, systemd waits for READY=1 either way.
                 notifier.ready(status_line(launcher));
             }});
    auto reload = [&reloader](PatternLauncherService::ReloadDone done) {
        reloader.request([done = std::move(done)](const PatternReloader::Outcome& outcome) {
            PatternLauncherService::ReloadOutcome answer;
            if (outcome.failure) {
                answer.code = ErrorCode::kFailedPrecondition;
                answer.message = "reload failed: " + *outcome.failure;
            }
            answer.invalid_manifests = outcome.invalid_manifests;
            done(answer);
        });
    };
    PatternLauncherService service(
        loop, launcher, {reload, [&api](const std::string& peer) { return api.caller(peer); }});
    // Metrics and health endpoints (config metrics/health); the launcher reports to the metrics.
    // Metrics and health: sockets systemd passed as "metrics" / "health", else the configured
    // ports.
    auto take_inherited = [&](const char* name) {
        auto it = inherited.find(name);
        if (it == inherited.end()) return -1;
        int fd = it->second;
        inherited.erase(it);
        return fd;
    };
    std::unique_ptr<Observability> observability = start_observability(
        loop, launcher, config, take_inherited("metrics"), take_inherited("health"));
    log::info(observability->describe());

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;  // no ports: connections come from ApiListener
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        log::error("cannot start the gRPC server");
        return 1;
    }
    api.serve(*server);
    log::info("serving prism.launcher.PatternLauncher with " + std::to_string(pattern_count) +
              " patterns from " + config.patterns_dir.string() + "; cgroups under " +
              tree.root_path() + "; pattern output to " +
              (logs.uses_journald() ? "journald" : logs.dir().string()));

    // Ready: the API answers, we sit in our supervisor leaf, recovery is done.
    notifier.ready(status_line(launcher));
    notifier.start_watchdog(loop);
    std::string last_status;
    std::function<void()> refresh = [&] {
        std::string now = status_line(launcher);
        if (now != last_status && !launcher.shutting_down()) notifier.status(now);
        last_status = now;
        loop.add_timer(std::chrono::seconds(5), refresh);
    };
    loop.add_timer(std::chrono::seconds(5), refresh);

    std::thread server_stopper;
    std::size_t remaining_at_last_extend = 0;
    std::function<void()> extend_while_progressing = [&] {
        // Ask systemd for more time only while patterns are still going away.
        std::size_t remaining = launcher.process_count();
        if (remaining == 0) return;
        if (remaining < remaining_at_last_extend) notifier.extend_timeout(std::chrono::seconds(20));
        remaining_at_last_extend = remaining;
        loop.add_timer(std::chrono::seconds(5), extend_while_progressing);
    };
    loop.add_fd(signals.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info{};
        while (::read(signals.get(), &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGHUP) {
                reloader.request({});
                continue;
            }
            if (launcher.shutting_down()) continue;
            const std::size_t count = launcher.process_count();
            log::notice(std::string(info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM") +
                        ": terminating " + std::to_string(count) + " patterns");
            notifier.stopping("terminating " + std::to_string(count) + " patterns");
            server->GetHealthCheckService()->SetServingStatus(false);
            remaining_at_last_extend = count + 1;
            extend_while_progressing();
            launcher.shutdown([&] {
                api.stop();
                // Server::Shutdown waits for in-flight calls, which finish on
                // this loop: run it elsewhere and stop the loop afterwards.
                // Every call has been answered by now (launches get
                // UNAVAILABLE), so the deadline only cuts idle connections.
                server_stopper = std::thread([&] {
                    server->Shutdown(std::chrono::system_clock::now() +
                                     std::chrono::milliseconds(250));
                    loop.post([&] { loop.stop(); });
                });
            });
        }
    });
    loop.run();
    if (server_stopper.joinable()) server_stopper.join();
    server->Wait();
    tree.close();
    if (scope) release_tenant_scope(*scope);
    // systemd's socket stays for the next activation (man systemd.socket).
    if (!api_from_systemd) ::unlink(config.grpc_socket.c_str());
    log::info("stopped");
    return 0;
}

}  // namespace launcher
