// `pattern-launcher [--config FILE] [flags]`: the daemon.
//
// Startup: configuration (file, then flags), pattern discovery, the cgroup
// subtree (the daemon moves into its `supervisor` leaf), the gRPC server on
// the unix socket (and TCP if configured), then the event loop on this
// thread. SIGHUP reloads manifests; SIGTERM/SIGINT terminate every pattern
// and exit 0.
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include "api/api_listener.h"
#include "api/audit_log.h"
#include "api/caller_authenticator.h"
#include "api/grpc_service.h"
#include "api/tls_credentials.h"
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

bool is_unix_socket(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    return ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
           addr.ss_family == AF_UNIX;
}

// 127.0.0.0/8 or ::1: what "insecure loopback" allows.
bool is_loopback_socket(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
    if (addr.ss_family == AF_INET) {
        return (ntohl(reinterpret_cast<sockaddr_in*>(&addr)->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr.ss_family == AF_INET6) {
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr);
    }
    return false;
}

// The API endpoints: sockets systemd passed as "grpc" (unix, or TCP when
// insecure loopback is allowed) and "api-tls" (TCP with mutual TLS), else
// the configured unix socket, grpc_port and api.tls.listen. Returns true
// when the sockets came from systemd (which owns them). Throws when a
// plain TCP listener is not explicitly allowed.
bool open_api_listeners(ApiListener& api, std::multimap<std::string, int>& inherited,
                        const LauncherConfig& config) {
    const bool insecure_ok = config.api.allow_insecure_loopback;
    auto refuse_plain_tcp = [](const std::string& what) {
        throw sandbox::ConfigError(what +
                                   ": a TCP listener without TLS is refused; configure api.tls "
                                   "(mutual TLS) or set api.allow_insecure_loopback: true for "
                                   "loopback development");
    };
    bool from_systemd = false;
    auto [first, last] = inherited.equal_range("grpc");
    for (auto it = first; it != last; ++it) {
        sandbox::UniqueFd fd(it->second);
        const bool local = is_unix_socket(fd.get());
        if (!local && !insecure_ok) refuse_plain_tcp("socket fd " + std::to_string(it->second));
        if (!local && !is_loopback_socket(fd.get())) {
            throw sandbox::ConfigError("socket fd " + std::to_string(it->second) +
                                       " from systemd: plain TCP is allowed on loopback only "
                                       "(127.0.0.0/8, ::1); use api.tls for other addresses");
        }
        api.add(std::move(fd), local ? ApiListener::Kind::kUnix : ApiListener::Kind::kInsecureTcp);
        log::info("serving the API on socket fd " + std::to_string(it->second) + " from systemd" +
                  (local ? "" : " (plain TCP: no identity but a bearer token's)"));
        from_systemd = true;
    }
    inherited.erase("grpc");
    auto [tls_first, tls_last] = inherited.equal_range("api-tls");
    for (auto it = tls_first; it != tls_last; ++it) {
        if (!config.api.tls) {
            throw sandbox::ConfigError(
                "systemd passed an api-tls socket, but api.tls (cert, key, "
                "client_ca) is not configured");
        }
        api.add(sandbox::UniqueFd(it->second), ApiListener::Kind::kTls);
        log::info("serving the API with mutual TLS on socket fd " + std::to_string(it->second) +
                  " from systemd");
    }
    const bool tls_from_systemd = tls_first != tls_last;
    inherited.erase("api-tls");
    if (from_systemd || tls_from_systemd) {
        // The packaged pattern-launcher.socket passes only the unix socket:
        // api.tls.listen is then bound here, not silently ignored.
        if (!tls_from_systemd && config.api.tls) {
            int port = 0;
            api.add(
                bind_tcp_listener(config.api.tls->listen_host, config.api.tls->listen_port, port),
                ApiListener::Kind::kTls);
            log::info("serving the API with mutual TLS on " + config.api.tls->listen_host + ":" +
                      std::to_string(port));
        }
        return true;
    }

    api.add(bind_unix_listener(config.grpc_socket), ApiListener::Kind::kUnix);
    std::string where = "unix:" + config.grpc_socket.string();
    if (config.grpc_port > 0) {
        if (!insecure_ok) refuse_plain_tcp("grpc_port " + std::to_string(config.grpc_port));
        int port = 0;
        api.add(bind_tcp_listener(config.grpc_port, port), ApiListener::Kind::kInsecureTcp);
        where += ", plain TCP on 127.0.0.1:" + std::to_string(port);
        log::warning("WEAKENED: plain TCP API on 127.0.0.1:" + std::to_string(port) +
                     " (api.allow_insecure_loopback): its callers have no identity but a bearer "
                     "token's");
    }
    if (config.api.tls) {
        int port = 0;
        api.add(bind_tcp_listener(config.api.tls->listen_host, config.api.tls->listen_port, port),
                ApiListener::Kind::kTls);
        where += ", mutual TLS on " + config.api.tls->listen_host + ":" + std::to_string(port);
    }
    log::info("serving the API on " + where);
    return false;
}

// Where the audit trail goes: the configured file, else the journal under
// systemd, else the default file.
std::filesystem::path audit_destination(const LauncherConfig& config) {
    if (!config.api.audit_log.empty()) return config.api.audit_log;
    if (log::to_journal()) return {};
    return "/var/log/pattern-launcher/audit.jsonl";
}

// A caller whose cgroup lies below the tenants' root, other than the
// launcher's own supervisor leaf, is a pattern (or something a pattern
// started): never authorized, whatever its uid.
ApiListener::TenantCgroupCheck tenant_cgroup_check(const sandbox::CgroupTree& tree) {
    return [mount = tree.mount(), root = tree.root_path(),
            supervisor = tree.supervisor_path()](const std::string& cgroup) {
        const std::string dir = sandbox::cgroup_dir(mount, cgroup);
        if (dir == supervisor || dir.starts_with(supervisor + "/")) return false;
        return dir == root || dir.starts_with(root + "/");
    };
}

std::optional<gid_t> launcher_group() {
    if (const group* g = ::getgrnam("pattern-launcher")) return g->gr_gid;
    return std::nullopt;
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

    // Who may call: identities (unix peers, client certificates, tokens),
    // the policy, the audit trail.
    ApiListener api(loop);
    api.set_tenant_cgroup_check(tenant_cgroup_check(tree));
    const bool api_from_systemd = open_api_listeners(api, inherited, config);
    std::unique_ptr<ReloadableTlsCredentials> tls;
    if (config.api.tls) {
        tls = std::make_unique<ReloadableTlsCredentials>(
            TlsFiles{config.api.tls->cert, config.api.tls->key, config.api.tls->client_ca});
    }
    CallerAuthenticator authenticator(api, config.api.tokens);
    const auth::ApiPolicy policy =
        config.api.policy ? *config.api.policy : auth::ApiPolicy::local_default(launcher_group());
    AuditLog audit(audit_destination(config));
    log::info("API policy: " + std::to_string(policy.grants().size()) + " grants" +
              (config.api.policy ? "" : " (the default: root and group pattern-launcher)") +
              "; audit trail to " + (audit.file().empty() ? "the journal" : audit.file().string()));
    // Off the loop, at each reload: TLS material and token keys. A bad file
    // keeps the old material serving.
    auto reload_credentials = [&] {
        try {
            if (tls) tls->reload();
        } catch (const std::exception& e) {
            log::error(std::string("API credentials not reloaded, the old ones stay: TLS: ") +
                       e.what());
        }
        try {
            authenticator.reload();
        } catch (const std::exception& e) {
            log::error(std::string("API credentials not reloaded, the old ones stay: token "
                                   "keys: ") +
                       e.what());
        }
    };
    // SIGHUP and the Reload RPC: discovery on a worker thread, applied here.
    PatternReloader reloader(
        loop,
        {.begin =
             [&] {
                 notifier.reloading();
                 log::info("reloading manifests from " + config.patterns_dir.string());
             },
         .discover =
             [&reload_credentials, patterns_dir = config.patterns_dir] {
                 reload_credentials();
                 return discover_or_explain(patterns_dir);
             },
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
    Metrics* metrics = nullptr;  // set once observability runs
    PatternLauncherService service(loop, launcher, {authenticator, policy, audit},
                                   {reload, [&metrics](const char* rpc, const char* code) {
                                        if (metrics) metrics->api_denied(rpc, code);
                                    }});
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
    metrics = &observability->metrics;

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;  // no ports: connections come from ApiListener
    builder.RegisterService(&service);
    if (tls) {
        api.set_tls_acceptor(builder.experimental().AddExternalConnectionAcceptor(
            grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
            tls->server_credentials()));
    }
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
    // Only where a service manager reads it: the line walks every key, which
    // showed as the top of the idle profile at 10,000 keys.
    std::function<void()> refresh = [&] {
        std::string now = status_line(launcher);
        if (now != last_status && !launcher.shutting_down()) notifier.status(now);
        last_status = now;
        loop.add_timer(std::chrono::seconds(5), refresh);
    };
    if (notifier.enabled()) loop.add_timer(std::chrono::seconds(5), refresh);

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
