// The lifecycle of a key's process: start (queued beyond
// max_concurrent_starts), readiness, liveness, exit, restart with back-off,
// circuit breaker, stop and teardown. Runs on the event loop.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <string_view>

#include "core/launcher.h"
#include "core/managed_process.h"
#include "sandbox/error.h"
#include "sandbox/spawn.h"
#include "core/spawn_plan.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

namespace {

void log_line(const std::string& line) {
    std::fprintf(stderr, "pattern-launcher: %s\n", line.c_str());
}

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

sandbox::CgroupLimits limits_for(const Resources& m, const Resources& d) {
    sandbox::CgroupLimits limits;
    limits.memory_max = m.memory_limit ? m.memory_limit : d.memory_limit;
    limits.memory_swap_max = m.memory_swap_limit ? m.memory_swap_limit : d.memory_swap_limit;
    auto cpu = m.cpu_limit ? m.cpu_limit : d.cpu_limit;
    if (cpu) limits.cpu_max = sandbox::cpu_max_from_cpus(*cpu);
    limits.cpu_weight = m.cpu_weight ? m.cpu_weight : d.cpu_weight;
    limits.pids_max = m.pids_limit ? m.pids_limit : d.pids_limit;
    return limits;
}

constexpr milliseconds kBackoffBase{100};
constexpr std::string_view kNoFreeIdentity = "no free identity";
constexpr milliseconds kReadinessRetry{20};

}  // namespace

// ---- starting ------------------------------------------------------------------

int Launcher::starts_in_flight() const {
    return static_cast<int>(std::count_if(processes_.begin(), processes_.end(), [](auto& e) {
        return e.second->state == ProcessState::kStarting && !e.second->queued;
    }));
}

void Launcher::start(ManagedProcess& p) {
    // A cold start beyond max_concurrent_starts waits for a slot; it never fails for it.
    if (starts_in_flight() > config_.process_manager.max_concurrent_starts) {
        p.queued = true;
        start_queue_.push_back(p.id);
        return;
    }
    try {
        prepare(p);
        spawn_process(p);
    } catch (const std::exception& e) {
        if (p.start_failure.empty()) p.start_failure = e.what();
        p.state = ProcessState::kFailed;
        teardown(p);
    }
}

void Launcher::start_next_queued() {
    while (!start_queue_.empty() &&
           starts_in_flight() < config_.process_manager.max_concurrent_starts) {
        std::string id = start_queue_.front();
        start_queue_.pop_front();
        ManagedProcess* p = find(id);
        if (!p || !p->queued) continue;
        p->queued = false;
        start(*p);
    }
}

sandbox::Cgroup& Launcher::namespace_group(const std::string& namespace_id) {
    NamespaceGroup& ns = namespace_groups_[namespace_id];
    if (!ns.group) {
        const std::string name = "ns:" + namespace_id;
        const std::string path = tree_.root_path() + "/" + name;
        ns.group = std::make_unique<sandbox::Cgroup>(std::filesystem::exists(path)
                                                         ? sandbox::Cgroup::adopt(path)
                                                         : tree_.create_group(name));
        // One ceiling for all of the namespace's processes.
        auto quota = config_.namespace_quotas.find(namespace_id);
        if (quota != config_.namespace_quotas.end()) {
            const auto enforcement = config_.limits_enforcement == LimitsEnforcement::kStrict
                                         ? sandbox::Enforcement::kStrict
                                         : sandbox::Enforcement::kBestEffort;
            try {
                auto report = tree_.apply_limits(*ns.group, limits_for(quota->second.resources, {}),
                                                 enforcement);
                if (!report.all_applied()) {
                    log_line("namespace " + namespace_id +
                             ": quota not fully enforced: " + report.describe_failures());
                }
            } catch (...) {
                ns.group->remove(milliseconds(1000));
                namespace_groups_.erase(namespace_id);
                throw;
            }
        }
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

// A key of its own uid and gid, unless its manifest names who it runs as.
// Kept across restarts; given back in release(). Also for a key adopted from
// a record that predates identities: its next process must not run as root.
void Launcher::ensure_identity(ManagedProcess& p) {
    const Manifest& manifest = *p.manifest;
    if (p.identity != 0 || manifest.sandbox.user || manifest.sandbox.group) return;
    const std::optional<std::uint32_t> id = identities_.allocate();
    if (!id) {
        const IdRange& range = identities_.range();
        p.start_failure = std::string(kNoFreeIdentity) + " in identity_range " +
                          std::to_string(range.first) + "-" + std::to_string(range.last()) + " (" +
                          std::to_string(identities_.in_use()) + " in use)";
        throw sandbox::SysError(EAGAIN, p.start_failure);
    }
    p.identity = *id;
}

// The key's resources: its cgroup (below its namespace's), limits, sockets.
void Launcher::prepare(ManagedProcess& p) {
    const Manifest& manifest = *p.manifest;
    ensure_identity(p);
    if (p.key.namespace_id.empty()) {
        p.group = std::make_unique<sandbox::Cgroup>(tree_.create_group(p.id));
    } else {
        sandbox::Cgroup& parent = namespace_group(p.key.namespace_id);
        try {
            p.group = std::make_unique<sandbox::Cgroup>(parent.create_child(p.id));
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
        report = tree_.apply_limits(*p.group, limits_for(manifest.resources, config_.resources),
                                    enforcement);
    } catch (const sandbox::ConfigError& e) {
        p.start_failure = std::string("limits_enforcement is strict and ") + e.what();
        throw;
    }
    p.limits_enforced = report.all_applied();
    if (!p.limits_enforced) {
        log_line(p.id + ": launched without some limits (limits_enforcement: warn): " +
                 report.describe_failures());
    }

    // The sockets are bound by us, so the address never depends on the pattern.
    p.grpc = ports_.bind_next();
    p.address = "127.0.0.1:" + std::to_string(p.grpc.port);
    switch (manifest.healthcheck.type) {
        case HealthcheckType::kHttp:
            p.health = ports_.bind_next();
            break;
        case HealthcheckType::kTcp: {
            // The pattern binds its health port itself: a connect proves it listens.
            BoundSocket reserved = ports_.bind_next();
            p.health.port = reserved.port;  // the fd closes here; the port stays ours
            break;
        }
        case HealthcheckType::kNotify:
            break;
    }
}

// Starts (or restarts) the key's process into its prepared cgroup.
void Launcher::spawn_process(ManagedProcess& p) {
    const Manifest& manifest = *p.manifest;
    // Sockets lost with a previous launcher instance are bound again on the same ports.
    if (!p.grpc.fd) p.grpc = ports_.bind_port(p.grpc.port);
    if (manifest.healthcheck.type == HealthcheckType::kHttp && !p.health.fd) {
        p.health = ports_.bind_port(p.health.port);
    }
    if (manifest.healthcheck.type == HealthcheckType::kNotify && !p.notify) {
        static std::uint64_t counter = 0;
        p.notify_path = config_.runtime_dir / "notify" /
                        (std::to_string(::getpid()) + "." + std::to_string(++counter) + ".sock");
        p.notify = bind_notify_socket(p.notify_path);
        ManagedProcess* raw = &p;
        loop_.add_fd(p.notify.get(), EPOLLIN, [this, raw](std::uint32_t) { on_notify(*raw); });
    }
    PatternEndpoints endpoints;
    endpoints.grpc_fd = p.grpc.fd.get();
    endpoints.grpc_port = p.grpc.port;
    endpoints.health_fd = p.health.fd ? p.health.fd.get() : -1;
    endpoints.health_port = p.health.port;
    endpoints.notify_socket = p.notify_path;

    if (!p.run) {
        p.run = std::make_unique<sandbox::Cgroup>(
            p.group->create_child("run." + std::to_string(p.restart_count)));
    }
    p.oom_kills_at_start = p.group->memory_events().oom_kill;
    sandbox::SpawnSpec spec = compartment_spec(p, endpoints);
    spec.cgroup_fd = p.run->dir_fd();
    sandbox::UniqueFd output;  // the child keeps its own copy
    if (logs_) {
        output = logs_->open_for(p.id);
        spec.stdout_fd = output.get();
        spec.stderr_fd = output.get();
    }
    sandbox::SpawnResult spawned = sandbox::spawn(spec);
    p.process = std::move(spawned.process);
    p.process_alive = true;
    p.adopted = false;
    p.pid = p.process.pid();
    p.started_at = Clock::now();
    p.started_at_unix_ms = unix_ms_now();
    p.state = ProcessState::kStarting;
    watch_process(p);
    ManagedProcess* raw = &p;
    p.start_timer = loop_.add_timer(manifest.healthcheck.start_timeout, [this, raw] {
        raw->start_timer = 0;
        start_failed(
            *raw,
            "did not become healthy within " +
                std::to_string(raw->manifest->healthcheck.start_timeout.count()) + " ms" +
                (raw->readiness_error.empty() ? ""
                                              : " (last check: " + raw->readiness_error + ")"));
    });
    watch_readiness(p);
}

void Launcher::watch_process(ManagedProcess& p) {
    ManagedProcess* raw = &p;
    loop_.add_fd(p.process.pidfd(), EPOLLIN, [this, raw](std::uint32_t) { on_exit(*raw); });
}

// ---- readiness and liveness ------------------------------------------------------

void Launcher::watch_readiness(ManagedProcess& p) {
    // Notify checks are driven by on_notify(); the others by probes.
    if (p.manifest->healthcheck.type != HealthcheckType::kNotify) probe_readiness(p);
}

// One probe at a time; a failed one is retried soon until start_timeout.
// The socket is ours, so a connect succeeds at once and the request waits in
// the backlog until the pattern accepts: usually the first probe answers.
void Launcher::probe_readiness(ManagedProcess& p) {
    ManagedProcess* raw = &p;
    const Healthcheck& hc = p.manifest->healthcheck;
    std::string path = hc.type == HealthcheckType::kHttp ? hc.path : "";
    p.probe = HealthProbe::start(
        loop_, p.health.port, path, hc.timeout, [this, raw](bool ok, const std::string& detail) {
            raw->probe.reset();
            if (raw->state != ProcessState::kStarting) return;
            if (observer_) observer_->health_checked(labels(*raw), ok);
            if (ok) return became_healthy(*raw);
            raw->readiness_error = detail;
            raw->retry_timer = loop_.add_timer(kReadinessRetry, [this, raw] {
                raw->retry_timer = 0;
                if (raw->state == ProcessState::kStarting) probe_readiness(*raw);
            });
        });
}

void Launcher::on_notify(ManagedProcess& p) {
    std::string text;
    pid_t sender = 0;
    while (receive_notification(p.notify.get(), text, sender)) {
        if (p.state != ProcessState::kStarting || !p.process_alive) continue;
        bool ready = text == "READY=1" || text.starts_with("READY=1\n") ||
                     text.find("\nREADY=1") != std::string::npos;
        if (!ready) continue;
        // Only the pattern's own processes may speak for it.
        auto members = p.run ? p.run->processes() : std::vector<pid_t>{};
        if (std::find(members.begin(), members.end(), sender) == members.end()) continue;
        became_healthy(p);
    }
}

void Launcher::became_healthy(ManagedProcess& p) {
    if (p.start_timer) loop_.cancel_timer(p.start_timer);
    p.start_timer = 0;
    p.state = ProcessState::kRunning;
    p.healthy = true;
    if (!p.ever_running && observer_)
        observer_->process_started(labels(p), Clock::now() - p.requested_at);
    p.ever_running = true;
    p.liveness_failures = 0;
    p.readiness_error.clear();
    persist(p);
    auto waiters = std::move(p.launch_waiters);
    LaunchResult result{ErrorCode::kOk, {}, info(p), false};
    for (auto& waiter : waiters) {
        waiter(result);
        result.reused = true;  // every caller after the first joined a start
    }
    // Consecutive failures are forgiven once a process has stayed up for a
    // back-off period: a crash loop never gets that far.
    ManagedProcess* raw = &p;
    p.stable_timer = loop_.add_timer(
        std::max(config_.process_manager.backoff_period, milliseconds(1000)), [raw] {
            raw->stable_timer = 0;
            raw->consecutive_failures = 0;
        });
    schedule_liveness(p);
    start_next_queued();
}

void Launcher::schedule_liveness(ManagedProcess& p) {
    const Healthcheck& hc = p.manifest->healthcheck;
    if (hc.type == HealthcheckType::kNotify) return;  // readiness only
    ManagedProcess* raw = &p;
    p.liveness_timer = loop_.add_timer(hc.interval, [this, raw] {
        raw->liveness_timer = 0;
        if (raw->state != ProcessState::kRunning) return;
        const Healthcheck& check = raw->manifest->healthcheck;
        std::string path = check.type == HealthcheckType::kHttp ? check.path : "";
        raw->probe = HealthProbe::start(
            loop_, raw->health.port, path, check.timeout,
            [this, raw](bool ok, const std::string& detail) {
                raw->probe.reset();
                if (raw->state != ProcessState::kRunning) return;
                if (observer_) observer_->health_checked(labels(*raw), ok);
                if (ok) {
                    raw->liveness_failures = 0;
                    raw->healthy = true;
                    return schedule_liveness(*raw);
                }
                raw->healthy = false;
                const int threshold = raw->manifest->healthcheck.failure_threshold;
                if (++raw->liveness_failures < threshold) return schedule_liveness(*raw);
                raw->kill_reason = "liveness check failed " + std::to_string(threshold) +
                                   " times in a row (" + detail + ")";
                log_line(raw->id + ": " + raw->kill_reason + "; restarting");
                raw->group->kill();  // the pidfd reports the exit: on_exit restarts
            });
    });
}

// ---- exits, failures, restarts --------------------------------------------------

void Launcher::on_exit(ManagedProcess& p) {
    std::optional<siginfo_t> status;
    if (!p.adopted) {
        try {
            status = p.process.try_reap();
        } catch (const std::exception& e) {
            log_line(p.id + ": reaping failed: " + e.what());
        }
        if (!status) return;  // not exited after all
    }
    loop_.remove_fd(p.process.pidfd());
    p.process_alive = false;
    p.healthy = false;
    bool success = false;
    if (status) {
        // The init (PID 1 of the pattern's pid namespace) told how the pattern
        // itself ended; without a report the init was killed (cgroup.kill, OOM).
        if (auto reported = confinement_->reports().take(p.pid)) status = reported;
        const std::uint64_t oom_kills = p.group->memory_events().oom_kill - p.oom_kills_at_start;
        sandbox::ExitStatus exit = sandbox::decode_exit(*status, oom_kills);
        p.exit_cause = exit.describe();
        success = exit.success();
        if (exit.oom_killed && observer_) observer_->process_oom_killed(labels(p));
    } else {
        // Adopted after a launcher restart: its parent is now init, which reaps it.
        p.exit_cause = "exited (status unknown: adopted after a launcher restart)";
    }
    if (!p.kill_reason.empty()) {
        p.exit_cause = p.kill_reason + "; " + p.exit_cause;
        p.kill_reason.clear();
        success = false;
    }
    if (p.after_drain) return drain(p, std::move(p.after_drain));
    switch (p.state) {
        case ProcessState::kStarting:
            return start_failed(p, "exited before becoming healthy: " + p.exit_cause);
        case ProcessState::kRunning:
            log_line(p.id + ": pattern " + p.exit_cause);
            return process_failed(p, "process " + p.exit_cause, !success);
        default:  // TERMINATING: the end of a terminate (or of the shutdown)
            log_line(p.id + ": stopped: pattern " + p.exit_cause);
            return teardown(p);
    }
}

void Launcher::start_failed(ManagedProcess& p, const std::string& reason) {
    if (p.state != ProcessState::kStarting) return;
    if (p.ever_running) return process_failed(p, "restart failed: " + reason, true);
    // A cold start answers its callers with the reason, once torn down.
    p.start_failure = reason;
    p.state = ProcessState::kFailed;
    teardown(p);
}

// A process that had been RUNNING ended (or one of its restarts failed).
void Launcher::process_failed(ManagedProcess& p, const std::string& reason, bool failure) {
    stop_timers(p);
    if (failure && observer_) observer_->process_failed(labels(p));
    if (failure) {
        p.last_error = reason;
        ++p.error_count;
        ++p.consecutive_failures;
    }
    const RestartPolicy policy = p.manifest->restart;
    const bool wanted =
        policy == RestartPolicy::kAlways || (policy == RestartPolicy::kOnFailure && failure);
    const int threshold = config_.process_manager.circuit_breaker_threshold;
    if (wanted && p.consecutive_failures < threshold && !shutting_down_) {
        return schedule_restart(p);
    }
    if (wanted) {
        p.last_error = "circuit breaker open after " + std::to_string(p.consecutive_failures) +
                       " consecutive failures; last: " + reason;
    }
    p.state = failure ? ProcessState::kFailed : ProcessState::kFinished;
    if (!failure && observer_) observer_->process_stopped(labels(p));
    log_line(p.id + ": " + state_name(p.state) + (failure ? ": " + p.last_error : ""));
    // The key stays listed (FAILED or FINISHED) with its cause; its resources go.
    drain(p, [this](ManagedProcess& q) {
        release(q);
        auto waiters = std::move(q.launch_waiters);
        LaunchResult result{ErrorCode::kInternal,
                            "failed to launch process " + q.id + ": " + q.last_error,
                            {},
                            false};
        for (auto& waiter : waiters)
            waiter(result);
        start_next_queued();
        maybe_finish_shutdown();
    });
}

std::chrono::milliseconds Launcher::backoff_delay(int failures) {
    const milliseconds cap = config_.process_manager.backoff_period;
    const int doublings = std::clamp(failures - 1, 0, 20);
    milliseconds delay = std::min(cap, milliseconds(kBackoffBase.count() << doublings));
    // ±20 % jitter, so that keys that failed together do not restart together.
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    auto jittered = milliseconds(
        static_cast<std::int64_t>(static_cast<double>(delay.count()) * jitter(jitter_)));
    return std::min(cap, jittered);
}

void Launcher::schedule_restart(ManagedProcess& p) {
    p.state = ProcessState::kStarting;
    p.healthy = false;
    // Whatever the old process left behind goes first; the cgroup and the
    // sockets stay, so connections queue on the same address meanwhile.
    drain(p, [this](ManagedProcess& q) {
        const milliseconds delay = backoff_delay(q.consecutive_failures);
        log_line(q.id + ": restarting in " + std::to_string(delay.count()) + " ms (" +
                 std::to_string(q.consecutive_failures) + " consecutive failures)");
        ManagedProcess* raw = &q;
        q.restart_timer = loop_.add_timer(delay, [this, raw] {
            raw->restart_timer = 0;
            ++raw->restart_count;
            if (observer_) observer_->process_restarted(labels(*raw));
            try {
                spawn_process(*raw);
            } catch (const std::exception& e) {
                process_failed(*raw, std::string("restart failed: ") + e.what(), true);
            }
        });
    });
}

// ---- stopping ----------------------------------------------------------------------

void Launcher::begin_stop(ManagedProcess& p, bool force) {
    stop_timers(p);
    if (!p.process_alive || force || p.grace.count() == 0 || !p.process.send_signal(SIGTERM)) {
        return teardown(p);
    }
    ManagedProcess* raw = &p;
    p.grace_timer = loop_.add_timer(p.grace, [this, raw] {
        raw->grace_timer = 0;
        log_line(raw->id + ": still running after the grace period of " +
                 std::to_string(raw->grace.count()) + " ms; killing its cgroup");
        teardown(*raw);
    });
}

void Launcher::stop_timers(ManagedProcess& p) {
    for (EventLoop::TimerId* timer : {&p.start_timer, &p.retry_timer, &p.grace_timer,
                                      &p.restart_timer, &p.liveness_timer, &p.stable_timer}) {
        if (*timer) loop_.cancel_timer(*timer);
        *timer = 0;
    }
    if (p.probe) p.probe->cancel();
    p.probe.reset();
}

// Kills everything in the key's cgroup and calls `then` once the process
// has exited (pidfd) and the group is empty (cgroup.events), in the loop.
void Launcher::drain(ManagedProcess& p, std::function<void(ManagedProcess&)> then) {
    p.after_drain = std::move(then);
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
                if (raw->after_drain && raw->group && !raw->group->populated()) {
                    drain(*raw, std::move(raw->after_drain));
                }
            });
        }
        return;
    }
    if (p.cgroup_events) {
        loop_.remove_fd(p.cgroup_events.get());
        p.cgroup_events.reset();
    }
    // The incarnation's leaf is spent (see ManagedProcess::run).
    if (p.run) {
        try {
            p.run->remove(milliseconds(1000));
        } catch (const std::exception& e) {
            log_line(p.id + ": " + e.what());
        }
        p.run.reset();
    }
    auto next = std::move(p.after_drain);
    p.after_drain = nullptr;
    next(p);
}

void Launcher::teardown(ManagedProcess& p) {
    stop_timers(p);
    drain(p, [this](ManagedProcess& q) {
        release(q);
        finish(q);
    });
}

// Gives back the key's cgroup, sockets and state record.
void Launcher::release(ManagedProcess& p) {
    if (p.notify) {
        loop_.remove_fd(p.notify.get());
        p.notify.reset();
        ::unlink(p.notify_path.c_str());
        p.notify_path.clear();
    }
    bool nothing_runs = true;
    if (p.group) {
        try {
            p.group->remove(milliseconds(1000));
        } catch (const std::exception& e) {
            log_line(p.id + ": " + e.what());
            try {
                nothing_runs = !p.group->populated();
            } catch (const std::exception&) {
                nothing_runs = false;
            }
        }
        p.group.reset();
        if (!p.key.namespace_id.empty()) release_namespace_group(p.key.namespace_id);
    }
    // Another key may get the id only once nothing runs as it.
    if (p.identity != 0) {
        if (nothing_runs) {
            identities_.release(p.identity);
        } else {
            log_line(p.id + ": identity " + std::to_string(p.identity) +
                     " is not handed out again: its cgroup still had processes");
        }
        p.identity = 0;
    }
    if (p.manifest->sandbox.state_directory) {
        // Its lifetime is the key's. (A large directory makes this slow: the
        // launcher's loop should hand it to a worker; see docs/security.md.)
        std::error_code ec;
        std::filesystem::remove_all(config_.runtime_dir / "keys" / p.id, ec);
        if (ec) log_line(p.id + ": removing its state directory: " + ec.message());
    }
    if (p.grpc.port) ports_.release(p.grpc.port);
    if (p.health.port) ports_.release(p.health.port);
    p.grpc = {};
    p.health = {};
    p.address.clear();  // the socket is gone: nobody serves there any more
    try {
        state_.remove(p.id);
    } catch (const std::exception& e) {
        log_line(p.id + ": " + e.what());
    }
}

// Answers whoever waits and forgets a key that was terminated or never started.
void Launcher::finish(ManagedProcess& p) {
    const std::string id = p.id;
    if (!p.start_failure.empty()) {
        ErrorCode code = p.start_failure.starts_with("limits_enforcement is strict")
                             ? ErrorCode::kFailedPrecondition
                             : ErrorCode::kInternal;
        if (p.start_failure.starts_with(kNoFreeIdentity)) code = ErrorCode::kResourceExhausted;
        LaunchResult result{
            code, "failed to launch process " + id + ": " + p.start_failure, {}, false};
        log_line(result.message);
        if (observer_) observer_->process_failed(labels(p));
        auto waiters = std::move(p.launch_waiters);
        for (auto& waiter : waiters)
            waiter(result);
    }
    if (p.state == ProcessState::kTerminating || !p.start_failure.empty()) {
        if (p.state == ProcessState::kTerminating && p.ever_running && observer_) {
            observer_->process_stopped(labels(p));
        }
        TerminateResult result{ErrorCode::kOk, {}, true, p.exit_cause};
        auto waiters = std::move(p.terminate_waiters);
        for (auto& waiter : waiters)
            waiter(result);
        // Callers that joined a restart which a terminate overtook.
        auto launches = std::move(p.launch_waiters);
        LaunchResult gone{ErrorCode::kUnavailable, "process " + id + " was terminated", {}, false};
        for (auto& waiter : launches)
            waiter(gone);
        if (p.key.level == Isolation::kSession) {
            bool session_used = std::any_of(processes_.begin(), processes_.end(), [&](auto& e) {
                return e.first != id && e.second->key.level == Isolation::kSession &&
                       e.second->key.session_id == p.key.session_id;
            });
            if (!session_used) session_owner_.erase(p.key.session_id);
        }
        processes_.erase(id);  // p is gone from here on
    }
    start_next_queued();
    maybe_finish_shutdown();
}

void Launcher::persist(const ManagedProcess& p) {
    ProcessRecord r;
    r.process_id = p.id;
    r.pattern = p.key.pattern;
    r.isolation = isolation_name(p.key.level);
    r.namespace_id = p.key.namespace_id;
    r.session_id = p.key.session_id;
    r.pid = p.pid;
    r.cgroup = p.group ? p.group->path() : "";
    r.address = p.address;
    r.grpc_port = p.grpc.port;
    r.health_port = p.health.port;
    r.notify_socket = p.notify_path.string();
    r.started_at_unix_ms = p.started_at_unix_ms;
    r.restart_count = p.restart_count;
    r.limits_enforced = p.limits_enforced;
    r.grace_period_ms = p.grace.count();
    r.identity = p.identity;
    r.config = p.config;
    try {
        state_.save(r);
    } catch (const std::exception& e) {
        log_line(p.id +
                 ": cannot save its state (a launcher restart will not adopt it): " + e.what());
    }
}

}  // namespace launcher
