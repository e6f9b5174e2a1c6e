#include "launcher.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "sandbox/error.h"
#include "health_probe.h"
#include "sandbox/spawn.h"
#include "spawn_plan.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

// Everything the launcher holds for one isolation key.
struct ManagedProcess {
    IsolationKey key;
    std::string id;
    std::shared_ptr<const Manifest> manifest;
    std::map<std::string, std::string> config;
    ProcessState state = ProcessState::kStarting;
    bool healthy = false;
    bool limits_enforced = true;
    milliseconds grace{0};

    std::unique_ptr<sandbox::Cgroup> group;
    sandbox::Process process;
    bool process_alive = false;
    BoundSocket grpc;
    BoundSocket health;
    std::filesystem::path notify_path;
    sandbox::UniqueFd notify;
    sandbox::UniqueFd cgroup_events;  // watched while waiting for the group to empty
    std::shared_ptr<HealthProbe> probe;
    EventLoop::TimerId start_timer = 0;
    EventLoop::TimerId retry_timer = 0;
    EventLoop::TimerId grace_timer = 0;

    std::vector<Launcher::LaunchDone> launch_waiters;
    std::vector<Launcher::TerminateDone> terminate_waiters;
    std::string start_failure;  // set when a start failed: answered once torn down

    Clock::time_point started_at = Clock::now();
    std::string address;
    std::string last_error;
    std::string exit_cause;
    int error_count = 0;
    int restart_count = 0;
    pid_t pid = 0;
};

namespace {

std::string cgroup_name(const IsolationKey& key) { return key.process_id(); }

void log_line(const std::string& line) { std::fprintf(stderr, "pattern-launcher: %s\n", line.c_str()); }

}  // namespace

const char* state_name(ProcessState state) {
    switch (state) {
        case ProcessState::kStarting: return "STARTING";
        case ProcessState::kRunning: return "RUNNING";
        case ProcessState::kTerminating: return "TERMINATING";
        case ProcessState::kTerminated: return "TERMINATED";
        case ProcessState::kFailed: return "FAILED";
        case ProcessState::kFinished: return "FINISHED";
    }
    return "UNSPECIFIED";
}

Launcher::Launcher(EventLoop& loop, LauncherConfig config, sandbox::CgroupTree& tree,
                   Discovery patterns)
    : loop_(loop),
      config_(std::move(config)),
      tree_(tree),
      ports_(config_.pattern_ports),
      started_(Clock::now()) {
    replace_patterns(std::move(patterns));
    std::filesystem::create_directories(config_.runtime_dir / "notify");
}

Launcher::~Launcher() = default;

void Launcher::replace_patterns(Discovery patterns) {
    patterns_.clear();
    for (auto& [name, manifest] : patterns.patterns) {
        patterns_[name] = std::make_shared<const Manifest>(std::move(manifest));
    }
}

ManagedProcess* Launcher::find(const std::string& id) const {
    auto it = processes_.find(id);
    return it == processes_.end() ? nullptr : it->second.get();
}

// ---- launch ----------------------------------------------------------------

LaunchResult Launcher::validate(const LaunchParams& params,
                                std::shared_ptr<const Manifest>& manifest,
                                IsolationKey& key) const {
    auto invalid = [](std::string message) {
        return LaunchResult{ErrorCode::kInvalidArgument, std::move(message), {}, false};
    };
    if (params.pattern.empty()) return invalid("pattern_name is required");
    auto found = patterns_.find(params.pattern);
    if (found == patterns_.end()) {
        return LaunchResult{ErrorCode::kNotFound, "pattern not found: " + params.pattern, {}, false};
    }
    manifest = found->second;
    key.pattern = params.pattern;
    key.level = params.isolation.value_or(manifest->isolation_level);
    if (key.level == Isolation::kNamespace && params.namespace_id.empty()) {
        return invalid("namespace is required for NAMESPACE isolation");
    }
    if (key.level == Isolation::kSession && params.session_id.empty()) {
        return invalid("session_id is required for SESSION isolation");
    }
    if (!params.namespace_id.empty()) {
        if (auto problem = identifier_problem("namespace", params.namespace_id); !problem.empty()) {
            return invalid(problem);
        }
    }
    if (!params.session_id.empty()) {
        if (auto problem = identifier_problem("session_id", params.session_id); !problem.empty()) {
            return invalid(problem);
        }
    }
    if (auto problem = request_config_problem(params.config); !problem.empty()) {
        return invalid(problem);
    }
    if (params.grace_period.count() < 0) return invalid("grace_period_secs must not be negative");
    if (key.level != Isolation::kNone) key.namespace_id = params.namespace_id;
    if (key.level == Isolation::kSession) {
        key.session_id = params.session_id;
        auto owner = session_owner_.find(params.session_id);
        if (owner != session_owner_.end() && owner->second != params.namespace_id) {
            return LaunchResult{ErrorCode::kPermissionDenied,
                                "session '" + params.session_id +
                                    "' belongs to another namespace",
                                {},
                                false};
        }
    }
    return {};
}

void Launcher::launch(const LaunchParams& params, LaunchDone done) {
    if (shutting_down_) {
        done(LaunchResult{ErrorCode::kUnavailable, "the launcher is shutting down", {}, false});
        return;
    }
    std::shared_ptr<const Manifest> manifest;
    IsolationKey key;
    LaunchResult invalid = validate(params, manifest, key);
    if (invalid.code != ErrorCode::kOk) return done(invalid);

    const std::string id = key.process_id();
    if (ManagedProcess* existing = find(id)) {
        switch (existing->state) {
            case ProcessState::kRunning:
                return done(LaunchResult{ErrorCode::kOk, {}, info(*existing), true});
            case ProcessState::kStarting:
                existing->launch_waiters.push_back(std::move(done));
                return;
            case ProcessState::kTerminating:
                return done(LaunchResult{ErrorCode::kUnavailable,
                                         "process " + id + " is terminating; launch it again "
                                                           "once it is gone",
                                         {}, false});
            default:
                break;  // FAILED: start it again below
        }
        if (existing->process_alive || existing->group) {
            return done(LaunchResult{ErrorCode::kUnavailable,
                                     "process " + id + " is still being cleaned up", {}, false});
        }
        processes_.erase(id);
    }

    auto owned = std::make_unique<ManagedProcess>();
    ManagedProcess& p = *owned;
    p.key = key;
    p.id = id;
    p.manifest = manifest;
    p.config = params.config;
    p.grace = params.grace_period.count() > 0
                  ? params.grace_period
                  : manifest->grace_period.value_or(config_.default_grace_period);
    p.launch_waiters.push_back(std::move(done));
    processes_[id] = std::move(owned);
    if (key.level == Isolation::kSession) session_owner_.emplace(key.session_id, key.namespace_id);
    start(p);
}

sandbox::Cgroup& Launcher::namespace_group(const std::string& namespace_id) {
    NamespaceGroup& ns = namespace_groups_[namespace_id];
    if (!ns.group) {
        ns.group = std::make_unique<sandbox::Cgroup>(tree_.create_group("ns:" + namespace_id));
    }
    ++ns.users;
    return *ns.group;
}

void Launcher::release_namespace_group(const std::string& namespace_id) {
    auto it = namespace_groups_.find(namespace_id);
    if (it == namespace_groups_.end() || --it->second.users > 0) return;
    try {
        it->second.group->remove(milliseconds(1000));
    } catch (const std::exception& e) {
        log_line("removing namespace cgroup failed: " + std::string(e.what()));
    }
    namespace_groups_.erase(it);
}

const sandbox::BpfProgram* Launcher::seccomp_program(const std::string& profile) {
    if (profile == "none") return nullptr;
    auto it = seccomp_cache_.find(profile);
    if (it == seccomp_cache_.end()) {
        it = seccomp_cache_.emplace(profile, sandbox::compile_builtin_profile(profile)).first;
    }
    return &it->second;
}

namespace {
sandbox::CgroupLimits limits_for(const Manifest& manifest, const LauncherConfig& config) {
    const Resources& m = manifest.resources;
    const Resources& d = config.resources;
    sandbox::CgroupLimits limits;
    limits.memory_max = m.memory_limit ? m.memory_limit : d.memory_limit;
    limits.memory_swap_max = m.memory_swap_limit ? m.memory_swap_limit : d.memory_swap_limit;
    auto cpu = m.cpu_limit ? m.cpu_limit : d.cpu_limit;
    if (cpu) limits.cpu_max = sandbox::cpu_max_from_cpus(*cpu);
    limits.cpu_weight = m.cpu_weight ? m.cpu_weight : d.cpu_weight;
    limits.pids_max = m.pids_limit ? m.pids_limit : d.pids_limit;
    return limits;
}

}  // namespace

void Launcher::start(ManagedProcess& p) {
    const Manifest& manifest = *p.manifest;
    try {
        // 1. The key's cgroup, below its namespace's group, with the limits.
        if (p.key.namespace_id.empty()) {
            p.group = std::make_unique<sandbox::Cgroup>(tree_.create_group(cgroup_name(p.key)));
        } else {
            sandbox::Cgroup& parent = namespace_group(p.key.namespace_id);
            try {
                p.group = std::make_unique<sandbox::Cgroup>(parent.create_child(cgroup_name(p.key)));
            } catch (...) {
                release_namespace_group(p.key.namespace_id);
                throw;
            }
        }
        const auto enforcement = config_.limits_enforcement == LimitsEnforcement::kStrict
                                     ? sandbox::Enforcement::kStrict
                                     : sandbox::Enforcement::kBestEffort;
        sandbox::LimitReport report;
        try {
            report = tree_.apply_limits(*p.group, limits_for(manifest, config_), enforcement);
        } catch (const sandbox::ConfigError& e) {
            p.start_failure = std::string("limits_enforcement is strict and ") + e.what();
            throw;
        }
        p.limits_enforced = report.all_applied();
        if (!p.limits_enforced) {
            log_line(p.id + ": launched without some limits (limits_enforcement: warn): " +
                     report.describe_failures());
        }

        // 2. The pattern's sockets, bound by us so the address never depends on it.
        PatternEndpoints endpoints;
        p.grpc = ports_.bind_next();
        endpoints.grpc_fd = p.grpc.fd.get();
        endpoints.grpc_port = p.grpc.port;
        p.address = "127.0.0.1:" + std::to_string(p.grpc.port);
        const HealthcheckType check = manifest.healthcheck.type;
        if (check == HealthcheckType::kHttp) {
            p.health = ports_.bind_next();
            endpoints.health_fd = p.health.fd.get();
            endpoints.health_port = p.health.port;
        } else if (check == HealthcheckType::kTcp) {
            // The pattern binds its health port itself: a connect then proves it listens.
            BoundSocket reserved = ports_.bind_next();
            endpoints.health_port = reserved.port;
            p.health.port = reserved.port;  // the fd closes here, the port stays ours
        } else {
            static std::uint64_t counter = 0;
            p.notify_path = config_.runtime_dir / "notify" /
                            (std::to_string(::getpid()) + "." + std::to_string(++counter) + ".sock");
            p.notify = bind_notify_socket(p.notify_path);
            endpoints.notify_socket = p.notify_path;
        }

        // 3. Spawn, born in the cgroup.
        sandbox::SpawnSpec spec = build_spawn_spec(manifest, p.key, p.config, endpoints);
        spec.cgroup_fd = p.group->dir_fd();
        spec.seccomp = seccomp_program(manifest.sandbox.seccomp);
        sandbox::SpawnResult spawned = sandbox::spawn(spec);
        p.process = std::move(spawned.process);
        p.process_alive = true;
        p.pid = p.process.pid();
        p.started_at = Clock::now();
        // The child holds its own copies of the listening sockets now; ours
        // stay open so the address survives and connections queue.
    } catch (const std::exception& e) {
        if (p.start_failure.empty()) p.start_failure = e.what();
        // FAILED_PRECONDITION for limits strict mode cannot enforce.
        teardown(p);
        return;
    }

    ManagedProcess* raw = &p;
    loop_.add_fd(p.process.pidfd(), EPOLLIN, [this, raw](std::uint32_t) { on_exit(*raw); });
    p.start_timer = loop_.add_timer(manifest.healthcheck.start_timeout, [this, raw] {
        raw->start_timer = 0;
        fail_start(*raw, "did not become healthy within " +
                             std::to_string(raw->manifest->healthcheck.start_timeout.count()) +
                             " ms");
    });
    watch_readiness(p);
}

void Launcher::watch_readiness(ManagedProcess& p) {
    if (p.manifest->healthcheck.type == HealthcheckType::kNotify) {
        ManagedProcess* raw = &p;
        loop_.add_fd(p.notify.get(), EPOLLIN, [this, raw](std::uint32_t) { on_notify(*raw); });
    } else {
        probe_health(p);
    }
}

// One probe at a time; a failed one is retried soon until start_timeout.
// The socket is ours, so a connect succeeds at once and the request waits in
// the backlog until the pattern accepts: usually the first probe answers.
void Launcher::probe_health(ManagedProcess& p) {
    ManagedProcess* raw = &p;
    const Healthcheck& hc = p.manifest->healthcheck;
    std::string path = hc.type == HealthcheckType::kHttp ? hc.path : "";
    p.probe = HealthProbe::start(loop_, p.health.port, path, hc.timeout,
                                 [this, raw](bool ok, const std::string& detail) {
                                     raw->probe.reset();
                                     if (raw->state != ProcessState::kStarting) return;
                                     if (ok) return became_healthy(*raw);
                                     raw->last_error = "health check: " + detail;
                                     raw->retry_timer = loop_.add_timer(milliseconds(20), [this, raw] {
                                         raw->retry_timer = 0;
                                         if (raw->state == ProcessState::kStarting) probe_health(*raw);
                                     });
                                 });
}

void Launcher::on_notify(ManagedProcess& p) {
    std::string text;
    pid_t sender = 0;
    while (receive_notification(p.notify.get(), text, sender)) {
        // Only the pattern's own processes may speak for it.
        auto members = p.group ? p.group->processes() : std::vector<pid_t>{};
        if (std::find(members.begin(), members.end(), sender) == members.end()) continue;
        bool ready = text == "READY=1" || text.starts_with("READY=1\n") ||
                     text.find("\nREADY=1") != std::string::npos;
        if (ready && p.state == ProcessState::kStarting) became_healthy(p);
    }
}

void Launcher::became_healthy(ManagedProcess& p) {
    if (p.start_timer) loop_.cancel_timer(p.start_timer);
    p.start_timer = 0;
    p.state = ProcessState::kRunning;
    p.healthy = true;
    p.last_error.clear();
    auto waiters = std::move(p.launch_waiters);
    LaunchResult result{ErrorCode::kOk, {}, info(p), false};
    for (auto& waiter : waiters) {
        waiter(result);
        result.reused = true;  // every caller after the first joined a start
    }
}

// ---- exit, failure, teardown ------------------------------------------------

void Launcher::on_exit(ManagedProcess& p) {
    loop_.remove_fd(p.process.pidfd());
    std::optional<siginfo_t> info;
    try {
        info = p.process.try_reap();
    } catch (const std::exception& e) {
        log_line(p.id + ": reaping failed: " + e.what());
    }
    if (!info) return;
    p.process_alive = false;
    std::uint64_t oom = p.group ? p.group->memory_events().oom_kill : 0;
    p.exit_cause = sandbox::decode_exit(*info, oom).describe();
    p.healthy = false;
    switch (p.state) {
        case ProcessState::kStarting:
            fail_start(p, "exited before becoming healthy: " + p.exit_cause);
            break;
        case ProcessState::kRunning:
            // Supervision (restarts) comes with the supervision issue; for
            // now the key is FAILED with its cause until relaunched or terminated.
            p.state = ProcessState::kFailed;
            p.last_error = "process " + p.exit_cause;
            ++p.error_count;
            log_line(p.id + ": pattern " + p.exit_cause);
            teardown(p);
            break;
        default:
            teardown(p);  // TERMINATING: the last step of a terminate
            break;
    }
}

void Launcher::fail_start(ManagedProcess& p, const std::string& reason) {
    if (p.state != ProcessState::kStarting) return;
    p.start_failure = reason;
    p.state = ProcessState::kFailed;
    teardown(p);
}

// Kills everything left in the key's cgroup, waits for the pidfd and for
// the group to empty (cgroup.events, in the loop), removes the group and
// the sockets, then finish() answers whoever waits.
void Launcher::teardown(ManagedProcess& p) {
    for (EventLoop::TimerId* timer : {&p.start_timer, &p.retry_timer, &p.grace_timer}) {
        if (*timer) loop_.cancel_timer(*timer);
        *timer = 0;
    }
    if (p.probe) p.probe->cancel();
    p.probe.reset();
    if (p.notify) {
        loop_.remove_fd(p.notify.get());
        p.notify.reset();
        ::unlink(p.notify_path.c_str());
    }
    if (p.group) {
        try {
            p.group->kill();
        } catch (const std::exception& e) {
            log_line(p.id + ": " + e.what());
        }
    }
    if (p.process_alive) return;  // on_exit() comes back here

    if (p.group && p.group->populated()) {
        if (!p.cgroup_events) {
            p.cgroup_events = p.group->open_events();
            ManagedProcess* raw = &p;
            loop_.add_fd(p.cgroup_events.get(), EPOLLPRI, [this, raw](std::uint32_t) {
                if (raw->group && !raw->group->populated()) {
                    loop_.remove_fd(raw->cgroup_events.get());
                    raw->cgroup_events.reset();
                    teardown(*raw);
                }
            });
        }
        return;
    }
    if (p.group) {
        try {
            p.group->remove(milliseconds(1000));
        } catch (const std::exception& e) {
            log_line(p.id + ": " + e.what());
        }
        p.group.reset();
        if (!p.key.namespace_id.empty()) release_namespace_group(p.key.namespace_id);
    }
    if (p.grpc.port) ports_.release(p.grpc.port);
    if (p.health.port) ports_.release(p.health.port);
    p.grpc = {};
    p.health = {};
    finish(p);
}

void Launcher::finish(ManagedProcess& p) {
    const std::string id = p.id;
    if (!p.start_failure.empty()) {
        ErrorCode code = p.start_failure.starts_with("limits_enforcement is strict")
                             ? ErrorCode::kFailedPrecondition
                             : ErrorCode::kInternal;
        LaunchResult result{code, "failed to launch process " + id + ": " + p.start_failure, {},
                            false};
        log_line(result.message);
        auto waiters = std::move(p.launch_waiters);
        for (auto& waiter : waiters) waiter(result);
    }
    if (p.state == ProcessState::kTerminating || !p.start_failure.empty()) {
        TerminateResult result{ErrorCode::kOk, {}, true, p.exit_cause};
        auto waiters = std::move(p.terminate_waiters);
        for (auto& waiter : waiters) waiter(result);
        if (p.key.level == Isolation::kSession) {
            bool session_used = std::any_of(processes_.begin(), processes_.end(), [&](auto& e) {
                return e.first != id && e.second->key.level == Isolation::kSession &&
                       e.second->key.session_id == p.key.session_id;
            });
            if (!session_used) session_owner_.erase(p.key.session_id);
        }
        processes_.erase(id);  // p is gone from here on
    }
    maybe_finish_shutdown();
}

// ---- terminate ----------------------------------------------------------------

void Launcher::begin_stop(ManagedProcess& p, bool force) {
    if (!p.process_alive) return teardown(p);
    if (force || p.grace.count() == 0 || !p.process.send_signal(SIGTERM)) return teardown(p);
    ManagedProcess* raw = &p;
    p.grace_timer = loop_.add_timer(p.grace, [this, raw] {
        raw->grace_timer = 0;
        log_line(raw->id + ": still running after the grace period of " +
                 std::to_string(raw->grace.count()) + " ms; killing its cgroup");
        teardown(*raw);
    });
}

void Launcher::terminate(const std::string& process_id, milliseconds grace, bool force,
                         TerminateDone done) {
    ManagedProcess* p = find(process_id);
    if (!p) {
        return done(TerminateResult{ErrorCode::kNotFound, "process not found: " + process_id,
                                    false, {}});
    }
    if (grace.count() > 0) p->grace = grace;
    p->terminate_waiters.push_back(std::move(done));
    switch (p->state) {
        case ProcessState::kTerminating:
            if (force) teardown(*p);
            return;
        case ProcessState::kStarting: {
            auto waiters = std::move(p->launch_waiters);
            LaunchResult aborted{ErrorCode::kUnavailable,
                                 "process " + process_id + " was terminated while starting", {},
                                 false};
            for (auto& waiter : waiters) waiter(aborted);
            break;
        }
        default:
            break;
    }
    bool already_down = p->state == ProcessState::kFailed && !p->process_alive && !p->group;
    p->state = ProcessState::kTerminating;
    p->healthy = false;
    if (already_down) return finish(*p);
    begin_stop(*p, force);
}

void Launcher::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    std::vector<std::string> ids;
    for (auto& [id, p] : processes_) ids.push_back(id);
    for (const std::string& id : ids) {
        ManagedProcess* p = find(id);
        if (p && p->state != ProcessState::kTerminating) {
            terminate(id, milliseconds(0), false, [](const TerminateResult&) {});
        }
    }
    maybe_finish_shutdown();
}

void Launcher::maybe_finish_shutdown() {
    if (shutting_down_ && processes_.empty() && shutdown_done_) {
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    }
}

// ---- queries -------------------------------------------------------------------

ProcessInfo Launcher::info(const ManagedProcess& p) const {
    ProcessInfo i;
    i.pattern = p.key.pattern;
    i.process_id = p.id;
    i.isolation = p.key.level;
    i.namespace_id = p.key.namespace_id;
    i.session_id = p.key.session_id;
    i.state = p.state;
    i.healthy = p.healthy;
    i.address = p.address;
    i.pid = p.process_alive ? p.pid : 0;
    if (p.process_alive) {
        i.uptime_seconds =
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - p.started_at).count();
    }
    i.last_error = p.last_error;
    i.error_count = p.error_count;
    i.restart_count = p.restart_count;
    i.limits_enforced = p.limits_enforced;
    i.exit_cause = p.exit_cause;
    if (p.group) {
        i.cgroup = p.group->path();
        try {
            sandbox::CgroupUsage usage = p.group->usage();
            i.memory_bytes = usage.memory_current.value_or(0);
            i.cpu_usage_usec = usage.cpu_usage_usec.value_or(0);
            i.pids_current = usage.pids_current.value_or(0);
        } catch (const std::exception&) {
            // The group is being removed; usage stays 0.
        }
    }
    return i;
}

std::vector<ProcessInfo> Launcher::list(const ListFilter& filter) const {
    std::vector<ProcessInfo> out;
    for (const auto& [id, p] : processes_) {
        if (!filter.pattern.empty() && p->key.pattern != filter.pattern) continue;
        if (!filter.namespace_id.empty() && p->key.namespace_id != filter.namespace_id) continue;
        if (filter.state && p->state != *filter.state) continue;
        out.push_back(info(*p));
    }
    return out;
}

std::optional<ProcessInfo> Launcher::status(const std::string& process_id) const {
    const ManagedProcess* p = find(process_id);
    if (!p) return std::nullopt;
    return info(*p);
}

HealthSummary Launcher::health(bool include_processes) const {
    HealthSummary h;
    h.isolation_distribution = {{"none", 0}, {"namespace", 0}, {"session", 0}};
    for (const auto& [id, p] : processes_) {
        ++h.total;
        switch (p->state) {
            case ProcessState::kStarting: ++h.starting; break;
            case ProcessState::kRunning: ++h.running; break;
            case ProcessState::kTerminating: ++h.terminating; break;
            case ProcessState::kFailed: ++h.failed; break;
            default: break;
        }
        ++h.isolation_distribution[isolation_name(p->key.level)];
        if (include_processes) h.processes.push_back(info(*p));
    }
    h.healthy = !shutting_down_ && h.failed == 0;
    h.uptime_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
    h.patterns_loaded = static_cast<int>(patterns_.size());
    return h;
}

}  // namespace launcher
