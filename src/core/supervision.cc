// Starting a key's process (queued beyond max_concurrent_starts),
// readiness, liveness and stopping. Every phase change goes through
// set_phase() (key_lifecycle.cc); callbacks that outlive a loop turn hold
// the key's id, never a pointer (with_key()).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "common/log.h"
#include "core/key.h"
#include "core/launcher.h"
#include "core/spawn_plan.h"
#include "sandbox/error.h"
#include "sandbox/spawn.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

namespace {

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

sandbox::Enforcement enforcement_of(LimitsEnforcement e) {
    return e == LimitsEnforcement::kStrict ? sandbox::Enforcement::kStrict
                                           : sandbox::Enforcement::kBestEffort;
}

constexpr milliseconds kReadinessRetry{20};

}  // namespace

// ---- starting ------------------------------------------------------------------

// Counted by set_phase(), not over the keys: it is asked at every launch and
// every key's end, and with 10,000 keys the walk was a fifth of the daemon's
// CPU in a terminate-all.
int Launcher::starts_in_flight() const {
    return starting_;
}

// A cold start beyond max_concurrent_starts waits in kQueued for a slot;
// it never fails for it.
void Launcher::enqueue_start(Key& k) {
    if (start_queue_.admit(k.id, starts_in_flight())) start(k);
}

void Launcher::start_next_queued() {
    for (;;) {
        const std::string id = start_queue_.next(starts_in_flight());
        if (id.empty()) return;
        Key* k = find(id);
        if (k && k->phase == Phase::kQueued) start(*k);
    }
}

// kQueued or kBackoff -> kStarting: the key's resources (first time), then
// a process.
void Launcher::start(Key& k) {
    try {
        if (!k.group) prepare(k);
        spawn_process(k);
    } catch (const std::exception& e) {
        start_failed(k, e);
    }
}

// A start that threw (preparing, cloning, or a step of the child).
void Launcher::start_failed(Key& k, const std::exception& e) {
    const auto* refused = dynamic_cast<const StartError*>(&e);
    const ErrorCode code = refused ? refused->code() : ErrorCode::kInternal;
    // A key that ran, or one a launcher restart owes a process, goes
    // through the restart policy; a cold start answers its caller.
    if (!k.ever_running && k.recovery.empty()) return cold_start_failed(k, {code, e.what()});
    exited(k, std::string("restart failed: ") + e.what(), true);
}

KeyGroup& Launcher::namespace_group(const std::string& namespace_id) {
    NamespaceGroup& ns = namespace_groups_[namespace_id];
    if (!ns.group) {
        ns.group = sandbox_->create_group("ns:" + namespace_id, nullptr);
        // One ceiling for all of the namespace's processes.
        auto quota = config_.namespace_quotas.find(namespace_id);
        if (quota != config_.namespace_quotas.end()) {
            try {
                auto report =
                    sandbox_->apply_limits(*ns.group, limits_for(quota->second.resources, {}),
                                           enforcement_of(config_.limits_enforcement));
                if (!report.all_applied()) {
                    log::warning("namespace " + namespace_id +
                                 ": quota not fully enforced: " + report.describe_failures());
                }
            } catch (...) {
                if (!ns.group->try_remove()) ns.group->disown();  // the reconciliation's
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
        // Busy (a key's group still being removed): the reconciliation
        // removes it later.
        if (!it->second.group->try_remove()) it->second.group->disown();
    } catch (const std::exception& e) {
        log::warning("removing namespace cgroup failed: " + std::string(e.what()));
        it->second.group->disown();
    }
    namespace_groups_.erase(it);
}

// A key of its own uid and gid, unless its manifest names who it runs as.
// Kept across restarts; given back in release().
void Launcher::ensure_identity(Key& k) {
    const Manifest& manifest = *k.manifest;
    if (k.identity != 0 || manifest.sandbox.user || manifest.sandbox.group) return;
    const std::optional<std::uint32_t> id = identities_.allocate();
    if (!id) {
        const IdRange& range = identities_.range();
        throw StartError(ErrorCode::kResourceExhausted,
                         "no free identity in identity_range " + std::to_string(range.first) + "-" +
                             std::to_string(range.last()) + " (" +
                             std::to_string(identities_.in_use()) + " in use)");
    }
    k.identity = *id;
}

// The key's resources: its cgroup (below its namespace's), limits, ports.
void Launcher::prepare(Key& k) {
    const Manifest& manifest = *k.manifest;
    ensure_identity(k);
    if (k.key.namespace_id.empty()) {
        k.group = sandbox_->create_group(k.id, nullptr);
    } else {
        KeyGroup& parent = namespace_group(k.key.namespace_id);
        k.holds_namespace_group = true;
        k.group = sandbox_->create_group(k.id, &parent);
    }
    sandbox::LimitReport report;
    try {
        report = sandbox_->apply_limits(*k.group, limits_for(manifest.resources, config_.resources),
                                        enforcement_of(config_.limits_enforcement));
    } catch (const sandbox::ConfigError& e) {
        throw StartError(ErrorCode::kFailedPrecondition,
                         std::string("limits_enforcement is strict and ") + e.what());
    }
    k.limits_enforced = report.all_applied();
    if (!k.limits_enforced) {
        log::warning(k.id + ": launched without some limits (limits_enforcement: warn): " +
                         report.describe_failures(),
                     log_key(k));
    }
    // The sockets are bound by us, so the address never depends on the
    // pattern; a key recovered from its record keeps its ports.
    if (k.grpc.port == 0) k.grpc = ports_.bind_next();
    k.address = "127.0.0.1:" + std::to_string(k.grpc.port);
    if (k.health.port == 0) {
        switch (manifest.healthcheck.type) {
            case HealthcheckType::kHttp:
                k.health = ports_.bind_next();
                break;
            case HealthcheckType::kTcp: {
                // The pattern binds its health port itself: a connect proves it listens.
                BoundSocket reserved = ports_.bind_next();
                k.health.port = reserved.port;  // the fd closes here; the port stays ours
                break;
            }
            case HealthcheckType::kNotify:
            case HealthcheckType::kGrpc:  // probes the gRPC socket: no port of its own
                break;
        }
    }
    open_network(k);
}

// Starts (or restarts) the key's process into a fresh leaf of its cgroup.
void Launcher::spawn_process(Key& k) {
    const Manifest& manifest = *k.manifest;
    const std::string id = k.id;
    // Sockets lost with a previous launcher instance are bound again on the same ports.
    if (!k.grpc.fd) k.grpc = ports_.bind_port(k.grpc.port);
    if (manifest.healthcheck.type == HealthcheckType::kHttp && !k.health.fd) {
        k.health = ports_.bind_port(k.health.port);
    }
    k.address = "127.0.0.1:" + std::to_string(k.grpc.port);
    if (manifest.healthcheck.type == HealthcheckType::kNotify && !k.notify) {
        static std::uint64_t counter = 0;
        k.notify_path = config_.runtime_dir / "notify" /
                        (std::to_string(::getpid()) + "." + std::to_string(++counter) + ".sock");
        k.notify = bind_notify_socket(k.notify_path);
        k.notify_watch = loop_.watch(k.notify.get(), EPOLLIN, [this, id](std::uint32_t) {
            if (Key* q = find(id)) on_notify(*q);
        });
    }
    // A session pool's process: a socket pair whose other end it inherits
    // as "claim" (claim_protocol.h). The loop's end is non-blocking.
    sandbox::UniqueFd claim_end;  // the child's; closed once the spawn has it
    if (!k.pool_slot.empty()) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
            throw StartError(
                ErrorCode::kInternal,
                std::string("socketpair for the claim socket: ") + std::strerror(errno));
        }
        k.claim = sandbox::UniqueFd(pair[0]);
        claim_end = sandbox::UniqueFd(pair[1]);
        ::fcntl(k.claim.get(), F_SETFL, O_NONBLOCK);
    }
    PatternEndpoints endpoints;
    endpoints.claim_fd = claim_end ? claim_end.get() : -1;
    endpoints.grpc_fd = k.grpc.fd.get();
    endpoints.grpc_port = k.grpc.port;
    endpoints.health_fd = k.health.fd ? k.health.fd.get() : -1;
    endpoints.health_port = k.health.port;
    endpoints.notify_socket = k.notify_path;

    if (!k.run) {
        // run.0, run.1, ...: a number never used by this key before.
        if (k.leaf_used) ++k.incarnation;
        k.leaf_used = true;
        k.run = k.group->create_incarnation(k.incarnation);
    }
    k.oom_kills_at_start = k.group->oom_kills();
    ensure_identity(k);
    // A fixed sandbox.user or group must not be one the launcher hands to
    // keys: it would share a tenant's identity.
    if (k.identity == 0) {
        const std::uint32_t uid = manifest.sandbox.uid.value_or(::getuid());
        const std::uint32_t gid = manifest.sandbox.gid.value_or(::getgid());
        if (identities_.contains(uid) || identities_.contains(gid)) {
            throw StartError(ErrorCode::kFailedPrecondition,
                             "sandbox.user/group (uid " + std::to_string(uid) + ", gid " +
                                 std::to_string(gid) + ") lies in identity_range " +
                                 std::to_string(identities_.range().first) + "-" +
                                 std::to_string(identities_.range().last()) +
                                 ", whose ids belong to isolation keys");
        }
    }
    sandbox::UniqueFd output;  // the child keeps its own copy
    if (logs_) output = logs_->open_for(k.id);
    SpawnRequest request;
    request.process_id = k.id;
    request.key = k.key;
    request.manifest = k.manifest.get();
    request.config = &k.config;
    request.identity = k.identity;
    request.endpoints = endpoints;
    request.leaf = k.run.get();
    request.output_fd = output ? output.get() : -1;
    request.first_spawn = !k.ever_running && k.restart_count == 0 && k.recovery.empty();
    if (k.network) {
        request.netns_fd = k.network->netns_fd();
        request.hosts_file = name_file(k, ".hosts");
        request.resolv_file = name_file(k, ".resolv");
    }
    k.readiness_error.clear();
    k.start_deadline = loop_.now() + manifest.healthcheck.start_timeout;
    set_phase(k, Phase::kStarting);
    // The loop does not wait for the exec: the child runs its steps (and,
    // with an init, the init forks the pattern) while other keys start.
    k.pending_spawn = sandbox_->start_spawn(request);
    arm_starting_timer(k);  // start_timeout covers the spawn too
    if (k.pending_spawn->ready_fd() < 0) return spawned(k);
    k.pending_watch = loop_.watch(k.pending_spawn->ready_fd(), EPOLLIN, [this, id](std::uint32_t) {
        with_key(id, Phase::kStarting, [this](Key& q) {
            if (q.pending_spawn) spawned(q);
        });
    });
}

// The pending spawn's exec happened (or a step failed): the key has its process.
void Launcher::spawned(Key& k) {
    const Manifest& manifest = *k.manifest;
    std::unique_ptr<PendingProcess> pending = std::move(k.pending_spawn);
    k.pending_watch.reset();
    SpawnOutcome outcome;
    try {
        outcome = pending->finish();
    } catch (const std::exception& e) {
        return start_failed(k, e);
    }
    k.process_watch.reset();
    k.process = std::move(outcome.process);
    k.uid = outcome.uid;
    k.gid = outcome.gid;
    k.confinement = &*confinements_.insert(std::move(outcome.confinement)).first;
    k.weakened = std::move(outcome.weakened);
    k.process_alive = true;
    k.adopted = false;
    k.pid = k.process->pid();
    k.started_at = loop_.now();
    k.started_at_unix_ms = unix_ms_now();
    persist(k);  // with its pid: what a launcher restart adopts
    watch_process(k);
    arm_starting_timer(k);
    if (std::exchange(k.ready_before_spawned, false)) return became_healthy(k);
    // Notify checks are driven by on_notify(); the others by probes.
    if (manifest.healthcheck.type != HealthcheckType::kNotify) probe_readiness(k);
}

void Launcher::watch_process(Key& k) {
    const std::string id = k.id;
    k.process_watch = loop_.watch(k.process->exit_fd(), EPOLLIN, [this, id](std::uint32_t) {
        if (Key* q = find(id); q && q->process_alive) on_exit(*q);
    });
}

// ---- readiness and liveness ------------------------------------------------------

// kStarting has one timer: the start_timeout deadline, or the next
// readiness probe if that comes first.
void Launcher::arm_starting_timer(Key& k) {
    const std::string id = k.id;
    k.timer = loop_.timer(
        std::chrono::ceil<milliseconds>(
            std::max(Clock::duration{}, k.start_deadline - loop_.now())),
        [this, id] {
            with_key(id, Phase::kStarting, [this](Key& q) {
                const std::string reason =
                    "did not become healthy within " +
                    std::to_string(q.manifest->healthcheck.start_timeout.count()) + " ms" +
                    (q.readiness_error.empty() ? "" : " (last check: " + q.readiness_error + ")");
                if (!q.ever_running && q.recovery.empty()) {
                    return cold_start_failed(q, {ErrorCode::kInternal, reason});
                }
                exited(q, "restart failed: " + reason, true);
            });
        });
}

// One probe at a time; a failed one is retried soon until start_timeout.
// The socket is ours, so a connect succeeds at once and the request waits in
// the backlog until the pattern accepts: usually the first probe answers.
void Launcher::probe_readiness(Key& k) {
    const std::string id = k.id;
    const Healthcheck& hc = k.manifest->healthcheck;
    k.probe = HealthProbe::start_for(loop_, hc, k.health.port, k.grpc.port,
                                     [this, id](bool ok, const std::string& detail) {
                                         with_key(id, Phase::kStarting, [&](Key& q) {
                                             q.probe.reset();
                                             if (observer_)
                                                 observer_->health_checked(labels(q), ok);
                                             if (ok) return became_healthy(q);
                                             q.readiness_error = detail;
                                             if (loop_.now() + kReadinessRetry >= q.start_deadline)
                                                 return;  // deadline timer
                                             q.timer = loop_.timer(kReadinessRetry, [this, id] {
                                                 with_key(id, Phase::kStarting, [this](Key& r) {
                                                     arm_starting_timer(r);
                                                     probe_readiness(r);
                                                 });
                                             });
                                         });
                                     });
}

void Launcher::on_notify(Key& k) {
    std::string text;
    pid_t sender = 0;
    uid_t sender_uid = 0;
    while (receive_notification(k.notify.get(), text, sender, sender_uid)) {
        // A pending spawn's pattern may speak before the loop has read the
        // EOF of its spawn pipe: it has exec'd, and is in the leaf already.
        if (k.phase != Phase::kStarting || (!k.process_alive && !k.pending_spawn)) continue;
        bool ready = text == "READY=1" || text.starts_with("READY=1\n") ||
                     text.find("\nREADY=1") != std::string::npos;
        if (!ready) continue;
        // Only the pattern's own processes may speak for it: a member of its
        // cgroup, or, for one that has exited since (READY=1, then a crash
        // before we read it), the key's own uid as the kernel stamped it.
        // No other key runs as that uid, and the socket is reachable only in
        // this key's view.
        auto members = k.run ? k.run->processes() : std::vector<pid_t>{};
        const bool member = std::find(members.begin(), members.end(), sender) != members.end();
        if (!member && !(k.identity != 0 && sender_uid == k.identity)) continue;
        if (k.pending_spawn) {
            k.ready_before_spawned = true;  // spawned() goes on with it
            continue;
        }
        became_healthy(k);  // closes the socket: nothing more is read from it
        return;
    }
}

// A notify check is readiness only: on_notify() ignores every message after
// kStarting, so a running key need not hold the socket (nor its watch). The
// next start binds a fresh one (spawn_process(): `!k.notify`); until then a
// pattern's sd_notify() fails with ECONNREFUSED or ENOENT, which sd_notify(3)
// callers ignore.
void Launcher::close_notify(Key& k) {
    k.notify_watch.reset();
    if (!k.notify) return;
    k.notify.reset();
    ::unlink(k.notify_path.c_str());
    k.notify_path.clear();
}

void Launcher::became_healthy(Key& k) {
    if (!k.pool_slot.empty()) return pool_process_ready(k);
    // Callers that joined a restart did not create the key: reused.
    const bool restart = k.ever_running;
    k.running_since = loop_.now();
    k.running_since_unix_ms = unix_ms_now();
    k.liveness_failures = 0;
    k.readiness_error.clear();
    set_phase(k, Phase::kRunning);
    close_notify(k);
    k.ever_running = true;
    persist(k);
    sample_usage(k);  // the answer and the next List show real numbers
    auto waiters = std::move(k.launch_waiters);
    LaunchResult result{ErrorCode::kOk, {}, info(k), restart};
    for (auto& waiter : waiters) {
        waiter(result);
        result.reused = true;  // every caller after the first joined a start
    }
    schedule_liveness(k);
    start_next_queued();
}

void Launcher::schedule_liveness(Key& k) {
    if (k.manifest->healthcheck.type == HealthcheckType::kNotify) return;  // readiness only
    const std::string id = k.id;
    k.timer = loop_.timer(k.manifest->healthcheck.interval, [this, id] {
        with_key(id, Phase::kRunning, [this](Key& q) { check_liveness(q); });
    });
}

void Launcher::check_liveness(Key& k) {
    const std::string id = k.id;
    const Healthcheck& check = k.manifest->healthcheck;
    k.probe = HealthProbe::start_for(
        loop_, check, k.health.port, k.grpc.port, [this, id](bool ok, const std::string& detail) {
            with_key(id, Phase::kRunning, [&](Key& q) {
                q.probe.reset();
                if (observer_) observer_->health_checked(labels(q), ok);
                if (ok) {
                    q.liveness_failures = 0;
                    return schedule_liveness(q);
                }
                const int threshold = q.manifest->healthcheck.failure_threshold;
                if (++q.liveness_failures < threshold) return schedule_liveness(q);
                q.kill_reason = "liveness check failed " + std::to_string(threshold) +
                                " times in a row (" + detail + ")";
                log::warning(q.id + ": " + q.kill_reason + "; restarting", log_key(q));
                q.group->kill();  // the pidfd reports the exit: on_exit() restarts
            });
        });
}

// ---- stopping ----------------------------------------------------------------------

void Launcher::begin_stop(Key& k, bool force) {
    if (!k.process_alive || force || k.grace.count() == 0 || !k.process->send_signal(SIGTERM)) {
        return drain(k, AfterDrain::kForget);
    }
    set_phase(k, Phase::kStopping);
    const std::string id = k.id;
    k.timer = loop_.timer(k.grace, [this, id] {
        with_key(id, Phase::kStopping, [this](Key& q) {
            log::warning(q.id + ": still running after the grace period of " +
                             std::to_string(q.grace.count()) + " ms; killing its cgroup",
                         log_key(q));
            drain(q, AfterDrain::kForget);
        });
    });
}

}  // namespace launcher
