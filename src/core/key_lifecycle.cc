// The transition function of a key's state machine (key_phase.h) and what
// follows a process's end: restart with back-off, circuit breaker, drains,
// releases, forgetting, and the key's durable record. Runs on the loop.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "core/key.h"
#include "core/launcher.h"
#include "sandbox/error.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

namespace {

// A busy rmdir (the kernel is still tearing the group's tasks down) is
// retried with a growing delay, through the loop: never a sleep.
milliseconds rmdir_retry_delay(int retries) {
    return std::min(milliseconds(1000), milliseconds(10) * (1 << std::min(retries, 7)));
}

}  // namespace

RestartSettings Launcher::restart_settings(const Key& k) const {
    RestartSettings settings;
    settings.policy = k.manifest ? k.manifest->restart : RestartPolicy::kNever;
    settings.circuit_breaker_threshold = config_.process_manager.circuit_breaker_threshold;
    settings.backoff_period = config_.process_manager.backoff_period;
    return settings;
}

// ---- the transition function -------------------------------------------------------

// Every phase change goes through here: it drops what the old phase armed
// (its timer, a probe in flight, the cgroup.events watch outside
// kDraining), persists the key's record and tells the observers.
void Launcher::set_phase(Key& k, Phase next) {
    const Phase from = k.phase;
    if (!transition_allowed(from, next)) {
        log::error(std::string("BUG: ") + k.id + ": " + phase_name(from) + " -> " +
                       phase_name(next) + " is not an edge of the key's state machine",
                   log_key(k));
    }
    k.timer.cancel();
    if (next != Phase::kStarting) {
        k.claim_watch.reset();  // a claim's answer is awaited only in kStarting
        k.pending_watch.reset();
        k.pending_spawn.reset();
        k.ready_before_spawned = false;
    }
    if (k.probe) k.probe->cancel();
    k.probe.reset();
    if (next != Phase::kDraining) {
        k.events_watch.reset();
        k.cgroup_events = {};
        k.rmdir_retries = 0;
    }
    k.phase = next;
    if (from != next && from == Phase::kStarting) --starting_;
    if (from != next && next == Phase::kStarting) ++starting_;
    if (from != next) {
        log::debug(k.id + ": " + phase_name(from) + " -> " + phase_name(next) +
                       (next == Phase::kDraining
                            ? std::string(" (then ") + after_drain_name(k.after_drain) + ")"
                            : std::string()),
                   log_key(k));
    }
    persist(k);
    if (!observer_ || from == next) return;
    if (next == Phase::kRunning && !k.ever_running) {
        observer_->process_started(labels(k), loop_.now() - k.requested_at);
    }
    if (from == Phase::kBackoff && next == Phase::kStarting)
        observer_->process_restarted(labels(k));
    if (next == Phase::kFinished) observer_->process_stopped(labels(k));
}

// ---- exits -------------------------------------------------------------------------

void Launcher::on_exit(Key& k) {
    std::optional<siginfo_t> status;
    if (!k.adopted) {
        try {
            status = k.process->try_reap();
        } catch (const std::exception& e) {
            log::warning(k.id + ": reaping failed: " + e.what(), log_key(k));
        }
        if (!status) return;  // not exited after all
    } else if (!k.process->has_exited()) {
        return;
    }
    // A READY=1 sent before the end counts, even if the exit is seen first
    // (both were ready in the same loop turn).
    if (k.phase == Phase::kStarting && k.notify) on_notify(k);
    k.process_watch.reset();
    k.process_alive = false;
    bool success = false;
    if (status) {
        // The init (PID 1 of the pattern's pid namespace) told how the pattern
        // itself ended; without a report the init was killed (cgroup.kill, OOM).
        if (auto reported = sandbox_->reported_exit(k.pid)) status = reported;
        std::uint64_t oom_kills = 0;
        try {
            if (k.group) oom_kills = k.group->oom_kills() - k.oom_kills_at_start;
        } catch (const std::exception&) {
        }
        sandbox::ExitStatus exit = sandbox::decode_exit(*status, oom_kills);
        k.exit_cause = exit.describe();
        success = exit.success();
        if (exit.oom_killed && observer_) observer_->process_oom_killed(labels(k));
    } else {
        // Adopted after a launcher restart: its parent is gone, another reaps it.
        k.exit_cause = "exited (status unknown: adopted after a launcher restart)";
    }
    if (!k.kill_reason.empty()) {
        k.exit_cause = k.kill_reason + "; " + k.exit_cause;
        k.kill_reason.clear();
        success = false;
    }
    switch (k.phase) {
        case Phase::kDraining:
            return continue_drain(k);
        case Phase::kStopping:
            log::info(k.id + ": stopped: pattern " + k.exit_cause, log_key(k));
            return drain(k, AfterDrain::kForget);
        case Phase::kStarting: {
            const std::string reason = "exited before becoming healthy: " + k.exit_cause;
            if (!k.ever_running && k.recovery.empty()) {
                return cold_start_failed(k, {ErrorCode::kInternal, reason});
            }
            return exited(k, "restart failed: " + reason, true);
        }
        case Phase::kRunning:
            log::warning(k.id + ": pattern " + k.exit_cause, log_key(k));
            return exited(k, "process " + k.exit_cause, !success);
        case Phase::kPooled:
            // Never restarted: the pool starts a fresh one.
            log::warning(k.id + ": session pool process " + k.exit_cause, log_key(k));
            return drain(k, AfterDrain::kForget);
        default:
            log::error("BUG: " + k.id + ": a process exited in phase " + phase_name(k.phase),
                       log_key(k));
            return drain(k, k.stop_requested ? AfterDrain::kForget : AfterDrain::kRestart);
    }
}

// A process that had been RUNNING ended, or a restart of it failed.
void Launcher::exited(Key& k, const std::string& reason, bool failure) {
    const RestartSettings settings = restart_settings(k);
    k.consecutive_failures =
        failures_before_exit(settings, k.consecutive_failures, k.running_since, loop_.now());
    k.running_since = {};
    if (failure) {
        if (observer_) observer_->process_failed(labels(k));
        k.last_error = reason;
        ++k.error_count;
        ++k.consecutive_failures;
    }
    switch (judge_exit(settings, failure, k.consecutive_failures, shutting_down_)) {
        case ExitVerdict::kRestart:
            return drain(k, AfterDrain::kRestart);
        case ExitVerdict::kCircuitOpen:
            k.last_error = "circuit breaker open after " + std::to_string(k.consecutive_failures) +
                           " consecutive failures; last: " + reason;
            log::error(k.id + ": FAILED: " + k.last_error, log_key(k));
            return drain(k, AfterDrain::kFail);
        case ExitVerdict::kFinish:
            log::info(k.id + ": " + (failure ? "FAILED: " + k.last_error : "FINISHED"), log_key(k));
            return drain(k, failure ? AfterDrain::kFail : AfterDrain::kFinish);
    }
}

// A cold start answers its callers with the reason once torn down, and the
// key is forgotten: nobody was told it exists.
void Launcher::cold_start_failed(Key& k, StartFailure failure) {
    log::error("failed to launch process " + k.id + ": " + failure.reason, log_key(k));
    if (observer_) observer_->process_failed(labels(k));
    k.last_error = failure.reason;
    k.start_failure = std::move(failure);
    drain(k, AfterDrain::kForget);
}

// ---- draining ----------------------------------------------------------------------

// Kills everything in the key's cgroup; continue_drain() finishes once the
// process has exited (pidfd) and the group is empty (cgroup.events).
void Launcher::drain(Key& k, AfterDrain after) {
    k.after_drain = after;
    set_phase(k, Phase::kDraining);
    if (k.group) {
        try {
            k.group->kill();
        } catch (const std::exception& e) {
            log::warning(k.id + ": " + e.what(), log_key(k));
        }
    }
    continue_drain(k);
}

void Launcher::continue_drain(Key& k) {
    log::debug(k.id + ": drain: process " + (k.process_alive ? "alive" : "gone"), log_key(k));
    if (k.phase != Phase::kDraining || k.process_alive) return;  // on_exit() comes back
    const std::string id = k.id;
    auto retry = [this, &k, id] {
        k.timer = loop_.timer(rmdir_retry_delay(k.rmdir_retries++), [this, id] {
            with_key(id, Phase::kDraining, [this](Key& q) { continue_drain(q); });
        });
        if (k.rmdir_retries == 50) {
            log::warning(
                k.id + ": its cgroup " + k.group->path() + " still cannot be removed; retrying",
                log_key(k));
        }
    };
    if (k.group) {
        bool populated = false;
        try {
            populated = k.group->populated();
        } catch (const std::exception&) {
            populated = false;  // gone already
        }
        if (populated && !k.events_watch) {
            try {
                k.cgroup_events = k.group->watch_events();
                k.events_watch = loop_.watch(
                    k.cgroup_events.fd.get(), k.cgroup_events.events, [this, id](std::uint32_t) {
                        with_key(id, Phase::kDraining, [this](Key& q) { continue_drain(q); });
                    });
                // It may have emptied before the watch: only a change after
                // it would be reported.
                populated = k.group->populated();
            } catch (const std::exception& e) {
                log::warning(k.id + ": " + e.what(), log_key(k));
                return retry();
            }
        }
        if (populated) return;
        // Empty. The incarnation's leaf is spent (a group that has seen
        // cgroup.kill kills later CLONE_INTO_CGROUP children: a fresh one
        // per incarnation); the key's group goes unless it restarts.
        try {
            if (k.run && !k.run->try_remove()) return retry();
            k.run.reset();
            if (k.after_drain != AfterDrain::kRestart || k.renew_group) {
                if (!k.group->try_remove()) return retry();
                k.group.reset();
                k.renew_group = false;
                // prepare() counts the key in its namespace again.
                if (k.after_drain == AfterDrain::kRestart && k.holds_namespace_group) {
                    release_namespace_group(k.key.namespace_id);
                    k.holds_namespace_group = false;
                }
            }
        } catch (const std::exception& e) {
            log::warning(k.id + ": " + e.what(), log_key(k));
            return retry();
        }
    }
    k.events_watch.reset();
    k.cgroup_events = {};
    drained(k);
}

void Launcher::drained(Key& k) {
    const std::string id = k.id;
    switch (k.after_drain) {
        case AfterDrain::kRestart: {
            const milliseconds delay = k.resume_backoff.value_or(
                backoff_delay(restart_settings(k), k.consecutive_failures, jitter_dist_(jitter_)));
            k.resume_backoff.reset();
            k.backoff_until_unix_ms = unix_ms_now() + delay.count();
            // Recorded first, then announced: whoever reads the line may
            // rely on the record saying so (a crash between the two used
            // to leave DRAINING on disk behind a logged back-off).
            set_phase(k, Phase::kBackoff);
            log::info(k.id + ": restarting in " + std::to_string(delay.count()) + " ms (" +
                          std::to_string(k.consecutive_failures) + " consecutive failures)",
                      log_key(k));
            k.timer = loop_.timer(delay, [this, id] {
                with_key(id, Phase::kBackoff, [this](Key& q) {
                    ++q.restart_count;
                    start(q);
                });
            });
            return;
        }
        case AfterDrain::kFail:
        case AfterDrain::kFinish:
            release(k);
            set_phase(k, k.after_drain == AfterDrain::kFail ? Phase::kFailed : Phase::kFinished);
            answer_launch_failure(k);
            start_next_queued();
            return maybe_finish_shutdown();
        case AfterDrain::kForget:
            release(k);
            return forget(k);  // k is gone from here on
    }
}

// ---- releasing and forgetting -------------------------------------------------------

// Gives back the key's cgroup, sockets, identity and state directory; the
// record stays (forget() removes it).
void Launcher::release(Key& k) {
    close_notify(k);
    k.claim_watch.reset();
    k.claim.reset();
    bool nothing_runs = !k.process_alive;
    if (k.group) {
        // Only on an error path: continue_drain() removes it.
        bool removed = false;
        try {
            nothing_runs = nothing_runs && !k.group->populated();
            if (nothing_runs) removed = k.group->try_remove();
        } catch (const std::exception& e) {
            log::warning(k.id + ": " + e.what(), log_key(k));
        }
        // Never the destructor's blocking removal on the loop: what is left
        // is the reconciliation's (resync_interval).
        if (!removed)
            log::warning(k.id + ": its cgroup is left for the reconciliation", log_key(k));
        if (k.run) k.run->disown();
        k.group->disown();
        k.run.reset();
        k.group.reset();
    }
    close_network(k);
    if (k.holds_namespace_group) {
        release_namespace_group(k.key.namespace_id);
        k.holds_namespace_group = false;
    }
    // Another key may get the id only once nothing runs as it.
    if (k.identity != 0) {
        if (nothing_runs) {
            identities_.release(k.identity);
        } else {
            log::warning(k.id + ": identity " + std::to_string(k.identity) +
                             " is not handed out again: its cgroup still had processes",
                         log_key(k));
        }
        k.identity = 0;
    }
    if (k.manifest && k.manifest->sandbox.state_directory) {
        // Its lifetime is the key's. A rename is instant; the removal of a
        // large tree is not, so it happens off the loop.
        const std::filesystem::path dir = config_.runtime_dir / "keys" / k.id;
        const std::filesystem::path trash =
            config_.runtime_dir / "keys" /
            (".removed." + std::to_string(unix_ms_now()) + "." + std::to_string(++trash_counter_));
        if (::rename(dir.c_str(), trash.c_str()) == 0) {
            background_.submit([trash] {
                std::error_code ec;
                std::filesystem::remove_all(trash, ec);
                if (ec) log::warning("removing " + trash.string() + ": " + ec.message());
            });
        } else if (errno != ENOENT) {
            log::warning(k.id + ": removing its state directory " + dir.string() + ": " +
                             std::strerror(errno),
                         log_key(k));
        }
    }
    if (k.grpc.port) ports_.release(k.grpc.port);
    if (k.health.port) ports_.release(k.health.port);
    k.grpc = {};
    k.health = {};
    k.address.clear();  // the socket is gone: nobody serves there any more
    k.usage = {};
}

// Answers whoever waits and forgets the key: terminated, or a cold start
// that failed.
void Launcher::forget(Key& k) {
    const std::string id = k.id;
    if (k.start_failure) {
        LaunchResult result{k.start_failure->code,
                            "failed to launch process " + id + ": " + k.start_failure->reason,
                            {},
                            false};
        auto waiters = std::move(k.launch_waiters);
        for (auto& waiter : waiters)
            waiter(result);
    }
    if (k.stop_requested && k.ever_running && observer_) observer_->process_stopped(labels(k));
    TerminateResult result{ErrorCode::kOk, {}, true, k.exit_cause};
    auto terminated = std::move(k.terminate_waiters);
    for (auto& waiter : terminated)
        waiter(result);
    // Callers that joined a restart which a terminate (or shutdown) overtook.
    auto launches = std::move(k.launch_waiters);
    LaunchResult gone{ErrorCode::kUnavailable, "process " + id + " was terminated", {}, false};
    for (auto& waiter : launches)
        waiter(gone);
    if (!k.pool_slot.empty()) pool_process_gone(k);
    if (k.key.level == Isolation::kSession && !k.key.session_id.empty()) {
        const bool session_used = std::any_of(processes_.begin(), processes_.end(), [&](auto& e) {
            return e.first != id && e.second->key.level == Isolation::kSession &&
                   e.second->key.session_id == k.key.session_id;
        });
        if (!session_used) session_owner_.erase(k.key.session_id);
    }
    try {
        state_.remove(id);
    } catch (const std::exception& e) {
        log::error(id + ": removing its state record: " + e.what());
    }
    start_queue_.remove(id);
    if (k.phase == Phase::kStarting) --starting_;  // not a phase a key is forgotten in
    processes_.erase(id);                          // k is gone from here on
    start_next_queued();
    maybe_finish_shutdown();
}

void Launcher::answer_launch_failure(Key& k) {
    auto waiters = std::move(k.launch_waiters);
    LaunchResult result{
        ErrorCode::kInternal, "failed to launch process " + k.id + ": " + k.last_error, {}, false};
    for (auto& waiter : waiters)
        waiter(result);
}

void Launcher::with_key(const std::string& id, Phase phase, const std::function<void(Key&)>& fn) {
    Key* k = find(id);
    if (k && k->phase == phase) fn(*k);
}

// ---- the durable record -------------------------------------------------------------

void Launcher::persist(const Key& k) {
    namespace rec = pattern_launcher::state;
    // From the record it was recovered from, if any: fields a newer launcher
    // wrote there (unknown to us) survive our rewrite.
    KeyRecord r = k.base_record ? *k.base_record : KeyRecord{};
    r.set_process_id(k.id);
    r.set_pattern(k.key.pattern);
    r.set_isolation(isolation_name(k.key.level));
    r.set_namespace_id(k.key.namespace_id);
    r.set_session_id(k.key.session_id);
    for (const auto& [name, value] : k.config)
        (*r.mutable_config())[name] = value;
    r.set_grace_period_ms(k.grace.count());
    r.set_accepted_at_unix_ms(k.accepted_at_unix_ms);
    // A pool's process is owed nothing: a launcher restart cannot claim it
    // (its claim socket is gone), so recovery stops it.
    r.set_desired(k.stop_requested || !k.pool_slot.empty() ? rec::DESIRED_STOPPED
                                                           : rec::DESIRED_RUNNING);
    r.set_pool_slot(k.pool_slot);
    r.set_phase(to_record(k.phase));
    r.set_identity(k.identity);
    r.set_grpc_port(static_cast<std::uint32_t>(k.grpc.port));
    r.set_health_port(static_cast<std::uint32_t>(k.health.port));
    r.set_cgroup(k.group ? k.group->path() : "");
    r.set_limits_enforced(k.limits_enforced);
    r.set_egress_slot(k.egress_slot);
    r.set_pid(k.process_alive ? k.pid : 0);
    r.set_incarnation(k.incarnation);
    r.set_started_at_unix_ms(k.started_at_unix_ms);
    r.set_running_since_unix_ms(k.phase == Phase::kRunning ? k.running_since_unix_ms : 0);
    r.set_restart_count(k.restart_count);
    r.set_error_count(k.error_count);
    r.set_consecutive_failures(k.consecutive_failures);
    r.set_ever_running(k.ever_running);
    r.set_last_error(k.last_error);
    r.set_exit_cause(k.exit_cause);
    r.set_backoff_until_unix_ms(k.phase == Phase::kBackoff ? k.backoff_until_unix_ms : 0);
    r.set_recovery(k.recovery);
    try {
        state_.save(r);
    } catch (const std::exception& e) {
        log::error(
            k.id + ": cannot save its state record (a launcher restart would lose it): " + e.what(),
            log_key(k));
    }
}

}  // namespace launcher
