// The launcher's API side: launch, terminate, queries, shutdown, and the
// usage cache the queries read. A key's life is in key_lifecycle.cc and
// supervision.cc.
#include "core/launcher.h"

#include <algorithm>
#include <array>

#include "common/log.h"
#include "core/kernel_network.h"
#include "core/kernel_sandbox.h"
#include "core/key.h"
#include "core/spawn_plan.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

namespace {

// The usage cache: every tick reads at most kUsageSlice keys' cgroups, so a
// List or a scrape never reads the cgroupfs and a tick's work is bounded
// however many keys there are.
constexpr milliseconds kUsageTick{1000};
constexpr std::size_t kUsageSlice = 64;

}  // namespace

const char* state_name(ProcessState state) {
    switch (state) {
        case ProcessState::kStarting:
            return "STARTING";
        case ProcessState::kRunning:
            return "RUNNING";
        case ProcessState::kTerminating:
            return "TERMINATING";
        case ProcessState::kTerminated:
            return "TERMINATED";
        case ProcessState::kFailed:
            return "FAILED";
        case ProcessState::kFinished:
            return "FINISHED";
    }
    return "UNSPECIFIED";
}

Launcher::Launcher(EventLoop& loop, LauncherConfig config, sandbox::CgroupTree& tree,
                   Discovery patterns)
    : Launcher(loop, config, std::make_unique<KernelSandbox>(tree, config), std::move(patterns),
               std::make_unique<KernelNetwork>(config.egress)) {}

Launcher::Launcher(EventLoop& loop, LauncherConfig config, std::unique_ptr<SandboxPort> sandbox,
                   Discovery patterns, std::unique_ptr<NetworkPort> network)
    : loop_(loop),
      config_(std::move(config)),
      sandbox_(std::move(sandbox)),
      state_(config_.runtime_dir / "state"),
      start_queue_(config_.process_manager.max_concurrent_starts),
      ports_(config_.pattern_ports),
      identities_(config_.identity_range, ids_named_in("/etc/passwd", "/etc/group")),
      started_(loop.now()),
      network_(std::move(network)),
      egress_pool_(config_.egress.pool) {
    if (identities_.excluded() > 0) {
        log::notice("identity_range " + std::to_string(identities_.range().first) + "-" +
                    std::to_string(identities_.range().last()) + ": " +
                    std::to_string(identities_.excluded()) +
                    " id(s) in it are named in /etc/passwd or /etc/group; they are never "
                    "handed out");
    }
    // Not from the start of the range: this instance does not know which ids
    // a previous one released just before it stopped.
    const IdRange& ids = config_.identity_range;
    identities_.start_at(ids.first +
                         std::uniform_int_distribution<std::uint32_t>(0, ids.count - 1)(jitter_));
    replace_patterns(std::move(patterns));
    std::filesystem::create_directories(config_.runtime_dir / "notify");
    std::filesystem::create_directories(config_.runtime_dir / "egress");
    // The first lookup of the listed names (replace_patterns() asked for
    // it) is waited for here, before the loop runs, like the manifests' own
    // NSS lookups at load: the first launches find their names.
    if (resolving_) background_.drain();
    std::filesystem::create_directories(config_.runtime_dir / "keys");
    usage_timer_ = loop_.timer(kUsageTick, [this] { refresh_usage(); });
}

// Without a shutdown() (the daemon failing), the tenants keep running and
// their records stay: the next launcher adopts them. So no group is
// killed, reaped or removed here.
Launcher::~Launcher() {
    for (auto& [id, k] : processes_) {
        if (k->run) k->run->disown();
        if (k->group) k->group->disown();
        if (k->process && k->process_alive) k->process->detach();
    }
    for (auto& [ns, group] : namespace_groups_) {
        if (group.group) group.group->disown();
    }
}

void Launcher::replace_patterns(Discovery patterns) {
    patterns_.clear();
    for (auto& [name, manifest] : patterns.patterns) {
        patterns_[name] = std::make_shared<const Manifest>(std::move(manifest));
    }
    plan_warm_pool();
    plan_session_pools();
    // New names are looked up at once (off the loop), not at the next round.
    for (const std::string& name : known_egress_names()) {
        if (!names_.addresses.count(name) && !names_.errors.count(name)) {
            resolve_names();
            break;
        }
    }
}

Key* Launcher::find(const std::string& id) const {
    auto it = processes_.find(id);
    return it == processes_.end() ? nullptr : it->second.get();
}

// ---- launch ----------------------------------------------------------------

std::optional<IsolationKey> Launcher::key_for(const LaunchParams& params) const {
    auto found = patterns_.find(params.pattern);
    if (found == patterns_.end()) return std::nullopt;
    IsolationKey key;
    key.pattern = params.pattern;
    key.level = params.isolation.value_or(found->second->isolation_level);
    if (key.level != Isolation::kNone) key.namespace_id = params.namespace_id;
    if (key.level == Isolation::kSession) key.session_id = params.session_id;
    return key;
}

LaunchResult Launcher::validate(const LaunchParams& params,
                                std::shared_ptr<const Manifest>& manifest,
                                IsolationKey& key) const {
    auto invalid = [](std::string message) {
        return LaunchResult{ErrorCode::kInvalidArgument, std::move(message), {}, false};
    };
    if (params.pattern.empty()) return invalid("pattern_name is required");
    auto found = patterns_.find(params.pattern);
    if (found == patterns_.end()) {
        return LaunchResult{
            ErrorCode::kNotFound, "pattern not found: " + params.pattern, {}, false};
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
    if (auto problem = request_config_problem(*manifest, params.config); !problem.empty()) {
        return invalid(problem);
    }
    if (params.grace_period.count() < 0) return invalid("grace_period_secs must not be negative");
    if (key.level != Isolation::kNone) key.namespace_id = params.namespace_id;
    if (key.level == Isolation::kSession) {
        key.session_id = params.session_id;
        auto owner = session_owner_.find(params.session_id);
        if (owner != session_owner_.end() && owner->second != params.namespace_id) {
            return LaunchResult{ErrorCode::kPermissionDenied,
                                "session '" + params.session_id + "' belongs to another namespace",
                                {},
                                false};
        }
    }
    return {};
}

// Live processes count toward the quotas; FAILED and FINISHED keys do not.
ProcessLabels Launcher::labels(const Key& k) const {
    return ProcessLabels{k.key.pattern, k.key.namespace_id, k.key.level, k.id};
}

std::string Launcher::quota_problem(const IsolationKey& key, std::string& limit) const {
    int total = 0, in_namespace = 0;
    for (const auto& [id, p] : processes_) {
        if (p->phase == Phase::kFailed || p->phase == Phase::kFinished) continue;
        if (!p->pool_slot.empty()) continue;  // a pool's: sized by the operator, not a tenant's
        ++total;
        if (!key.namespace_id.empty() && p->key.namespace_id == key.namespace_id) ++in_namespace;
    }
    if (config_.quotas.max_processes && total >= *config_.quotas.max_processes) {
        limit = "max_processes";
        return "the launcher runs " + std::to_string(total) + " processes, its max_processes (" +
               std::to_string(*config_.quotas.max_processes) + ")";
    }
    if (key.namespace_id.empty()) return {};
    std::optional<int> max = config_.quotas.max_processes_per_namespace;
    limit = "max_processes_per_namespace";
    auto quota = config_.namespace_quotas.find(key.namespace_id);
    if (quota != config_.namespace_quotas.end() && quota->second.max_processes) {
        max = quota->second.max_processes;
        limit = "namespace_quotas.max_processes";
    }
    if (max && in_namespace >= *max) {
        return "namespace '" + key.namespace_id + "' runs " + std::to_string(in_namespace) +
               " processes, its max_processes (" + std::to_string(*max) + ")";
    }
    return {};
}

void Launcher::launch(const LaunchParams& params, LaunchDone done) {
    launch_from(params, std::move(done), LaunchOrigin::kRequest);
}

void Launcher::launch_from(const LaunchParams& params, LaunchDone done, LaunchOrigin origin) {
    loop_.assert_in_loop("Launcher::launch");
    if (shutting_down_) {
        done(LaunchResult{ErrorCode::kUnavailable, "the launcher is shutting down", {}, false});
        return;
    }
    std::shared_ptr<const Manifest> manifest;
    IsolationKey key;
    LaunchResult invalid = validate(params, manifest, key);
    if (invalid.code != ErrorCode::kOk) return done(invalid);

    const std::string id = key.process_id();
    if (origin == LaunchOrigin::kRequest) count_warm_launch(id, find(id));
    if (Key* existing = find(id)) {
        switch (existing->state()) {
            case ProcessState::kRunning:
                return done(LaunchResult{ErrorCode::kOk, {}, info(*existing), true});
            case ProcessState::kStarting:  // a cold start or a restart: join it
                existing->launch_waiters.push_back(std::move(done));
                return;
            case ProcessState::kTerminating:
                return done(LaunchResult{ErrorCode::kUnavailable,
                                         "process " + id +
                                             " is terminating; launch it again "
                                             "once it is gone",
                                         {},
                                         false});
            default:
                break;
        }
        if (existing->phase == Phase::kDraining) {
            return done(LaunchResult{ErrorCode::kUnavailable,
                                     "process " + id + " is still being cleaned up",
                                     {},
                                     false});
        }
        if (existing->phase == Phase::kFailed) {
            // The circuit breaker is open: only TerminatePattern clears it.
            return done(LaunchResult{ErrorCode::kFailedPrecondition,
                                     "process " + id + " is FAILED (" + existing->last_error +
                                         "); terminate it to clear the circuit breaker",
                                     {},
                                     false});
        }
        // FINISHED: start it over as a new key (its record is rewritten below).
        processes_.erase(id);
    }
    std::string limit;
    if (auto problem = quota_problem(key, limit); !problem.empty()) {
        if (observer_) observer_->quota_rejected(key.namespace_id, limit);
        return done(LaunchResult{
            ErrorCode::kResourceExhausted, "cannot launch " + id + ": " + problem, {}, false});
    }
    // A late-binding pattern's session may take a process its tenant's pool
    // started ahead (session_pool.cc); else it is a cold start like any.
    if (key.level == Isolation::kSession && manifest->late_binding &&
        claim_pooled(key, params, manifest, done)) {
        return;
    }

    auto owned = std::make_unique<Key>();
    Key& k = *owned;
    k.key = key;
    k.id = id;
    k.manifest = manifest;
    accept_request(k, params, *manifest, std::move(done));
    processes_[id] = std::move(owned);
    if (key.level == Isolation::kSession) session_owner_.emplace(key.session_id, key.namespace_id);
    // Accepted: from here the key has a record until it is terminated.
    persist(k);
    enqueue_start(k);
}

// What a key takes from the launch request it was accepted for, whether a
// new key or a session pool's process that the launch claimed.
void Launcher::accept_request(Key& k, const LaunchParams& params, const Manifest& manifest,
                              LaunchDone done) {
    k.config = params.config;
    k.grace = params.grace_period.count() > 0
                  ? params.grace_period
                  : manifest.grace_period.value_or(config_.default_grace_period);
    k.requested_at = loop_.now();
    k.accepted_at_unix_ms = unix_ms_now();
    k.launch_waiters.push_back(std::move(done));
}

// ---- terminate ----------------------------------------------------------------

void Launcher::terminate(const std::string& process_id, milliseconds grace, bool force,
                         TerminateDone done) {
    loop_.assert_in_loop("Launcher::terminate");
    Key* k = find(process_id);
    // A session pool's unclaimed process is no client's to stop.
    if (!k || !k->pool_slot.empty()) {
        return done(
            TerminateResult{ErrorCode::kNotFound, "process not found: " + process_id, false, {}});
    }
    if (grace.count() > 0) k->grace = grace;
    k->terminate_waiters.push_back(std::move(done));
    k->stop_requested = true;
    if (k->state() == ProcessState::kStarting && !k->launch_waiters.empty()) {
        auto waiters = std::move(k->launch_waiters);
        LaunchResult aborted{ErrorCode::kUnavailable,
                             "process " + process_id + " was terminated while starting",
                             {},
                             false};
        for (auto& waiter : waiters)
            waiter(aborted);
    }
    stop_key(*k, force);
}

// Terminate's and shutdown's common part. A terminate has set
// stop_requested (persisted as desired STOPPED); a shutdown has not, so a
// launcher killed in the middle of its shutdown starts the keys again.
void Launcher::stop_key(Key& k, bool force) {
    start_queue_.remove(k.id);
    switch (k.phase) {
        case Phase::kStopping:
            persist(k);
            if (force) drain(k, AfterDrain::kForget);
            return;
        case Phase::kDraining:
            // Whatever the drain was for (a restart), the key now goes.
            k.after_drain = AfterDrain::kForget;
            persist(k);
            return;
        case Phase::kStarting:
        case Phase::kRunning:
        case Phase::kPooled:
            return begin_stop(k, force);
        case Phase::kQueued:
        case Phase::kBackoff:
        case Phase::kFailed:
        case Phase::kFinished:
            // Nothing runs: what is left of the cgroup goes, then the key.
            return drain(k, AfterDrain::kForget);
    }
}

void Launcher::shutdown(std::function<void()> done) {
    loop_.assert_in_loop("Launcher::shutdown");
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    std::vector<std::string> ids;
    for (auto& [id, p] : processes_)
        ids.push_back(id);
    for (const std::string& id : ids) {
        Key* k = find(id);
        if (k && k->state() != ProcessState::kTerminating) stop_key(*k, false);
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

ProcessInfo Launcher::info(const Key& k) const {
    ProcessInfo i;
    i.pattern = k.key.pattern;
    i.process_id = k.id;
    i.isolation = k.key.level;
    i.namespace_id = k.key.namespace_id;
    i.session_id = k.key.session_id;
    i.state = k.state();
    i.healthy = k.phase == Phase::kRunning && k.liveness_failures == 0;
    i.address = k.address;
    i.pid = k.process_alive ? k.pid : 0;
    if (k.process_alive) {
        i.uptime_seconds =
            std::chrono::duration_cast<std::chrono::seconds>(loop_.now() - k.started_at).count();
        i.started_at_unix_ms = k.started_at_unix_ms;
    }
    i.last_error = k.last_error;
    i.error_count = k.error_count;
    i.restart_count = k.restart_count;
    i.consecutive_failures = k.consecutive_failures;
    i.uid = k.uid;
    i.gid = k.gid;
    if (k.confinement) i.confinement = *k.confinement;
    i.weakened = k.weakened;
    i.limits_enforced = k.limits_enforced;
    i.exit_cause = k.exit_cause;
    i.recovery = k.recovery;
    if (k.network) {
        i.egress_denied = k.egress_denied;
        i.egress_address = sandbox::to_string(k.network->pattern_address());
    }
    i.warm_pool = warm_targets_.count(k.id) > 0;
    if (k.group) {
        i.cgroup = k.group->path();
        i.memory_bytes = k.usage.memory_bytes;
        i.cpu_usage_usec = k.usage.cpu_usage_usec;
        i.pids_current = k.usage.pids_current;
        i.memory_known = k.usage.memory_known;
    }
    return i;
}

// A slice of the keys per tick, resuming after the last one read.
void Launcher::refresh_usage() {
    usage_timer_ = loop_.timer(kUsageTick, [this] { refresh_usage(); });
    auto it = processes_.upper_bound(usage_cursor_);
    for (std::size_t n = 0; n < std::min(kUsageSlice, processes_.size()); ++n) {
        if (it == processes_.end()) it = processes_.begin();
        usage_cursor_ = it->first;
        sample_usage(*it->second);
        ++it;
    }
}

void Launcher::sample_usage(Key& k) {
    if (!k.group) {
        k.usage = {};
        return;
    }
    try {
        k.usage = k.group->usage();
    } catch (const std::exception&) {
        // The group is being removed; the last sample stays.
    }
    if (k.network) {
        try {
            k.egress_denied = k.network->denied();
        } catch (const std::exception& e) {
            log::debug(k.id + ": reading its egress counter: " + e.what(), log_key(k));
        }
    }
}

std::vector<ProcessInfo> Launcher::list(const ListFilter& filter) const {
    loop_.assert_in_loop("Launcher::list");
    std::vector<ProcessInfo> out;
    for (const auto& [id, p] : processes_) {
        if (!p->pool_slot.empty()) continue;  // a session pool's: session_pools()
        if (!filter.pattern.empty() && p->key.pattern != filter.pattern) continue;
        if (!filter.namespace_id.empty() && p->key.namespace_id != filter.namespace_id) continue;
        if (filter.state && p->state() != *filter.state) continue;
        out.push_back(info(*p));
    }
    return out;
}

std::optional<ProcessInfo> Launcher::status(const std::string& process_id) const {
    loop_.assert_in_loop("Launcher::status");
    const Key* p = find(process_id);
    if (!p || !p->pool_slot.empty()) return std::nullopt;
    return info(*p);
}

HealthSummary Launcher::health(bool include_processes) const {
    loop_.assert_in_loop("Launcher::health");
    HealthSummary h;
    // Counted by level and named once: the status line asks every 5 s, and
    // a lookup by name per key (strlen, memcmp) showed in the idle profile.
    std::array<int, 3> by_level{};
    for (const auto& [id, p] : processes_) {
        if (!p->pool_slot.empty()) continue;  // a session pool's: session_pools()
        ++h.total;
        switch (p->state()) {
            case ProcessState::kStarting:
                ++h.starting;
                break;
            case ProcessState::kRunning:
                ++h.running;
                break;
            case ProcessState::kTerminating:
                ++h.terminating;
                break;
            case ProcessState::kFailed:
                ++h.failed;
                break;
            default:
                break;
        }
        ++by_level[static_cast<std::size_t>(p->key.level)];
        if (include_processes) h.processes.push_back(info(*p));
    }
    for (Isolation level : {Isolation::kNone, Isolation::kNamespace, Isolation::kSession})
        h.isolation_distribution[isolation_name(level)] = by_level[static_cast<std::size_t>(level)];
    h.healthy = !shutting_down_ && h.failed == 0;
    h.uptime_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(loop_.now() - started_).count();
    h.patterns_loaded = static_cast<int>(patterns_.size());
    return h;
}

}  // namespace launcher
