// The launcher's API side: launch, terminate, queries, shutdown. The
// lifecycle of a process is in supervision.cc.
#include "core/launcher.h"

#include <algorithm>
#include <cstdio>

#include "core/managed_process.h"
#include "core/spawn_plan.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

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
    : loop_(loop),
      config_(std::move(config)),
      tree_(tree),
      state_(config_.runtime_dir / "state"),
      ports_(config_.pattern_ports),
      identities_(config_.identity_range, ids_named_in("/etc/passwd", "/etc/group")),
      started_(Clock::now()) {
    if (identities_.excluded() > 0) {
        std::fprintf(stderr,
                     "pattern-launcher: identity_range %u-%u: %zu id(s) in it are named in "
                     "/etc/passwd or /etc/group; they are never handed out\n",
                     identities_.range().first, identities_.range().last(), identities_.excluded());
    }
    // Not from the start of the range: this instance does not know which ids
    // a previous one released just before it stopped.
    const IdRange& ids = config_.identity_range;
    identities_.start_at(ids.first +
                         std::uniform_int_distribution<std::uint32_t>(0, ids.count - 1)(jitter_));
    confinement_ = std::make_unique<HostConfinement>(config_);
    replace_patterns(std::move(patterns));
    std::filesystem::create_directories(config_.runtime_dir / "notify");
    std::filesystem::create_directories(config_.runtime_dir / "keys");
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
                                "session '" + params.session_id + "' belongs to another namespace",
                                {},
                                false};
        }
    }
    return {};
}

// Live processes count toward the quotas; FAILED and FINISHED keys do not.
ProcessLabels Launcher::labels(const ManagedProcess& p) const {
    return ProcessLabels{p.key.pattern, p.key.namespace_id, p.key.level, p.id};
}

std::string Launcher::quota_problem(const IsolationKey& key, std::string& limit) const {
    int total = 0, in_namespace = 0;
    for (const auto& [id, p] : processes_) {
        if (p->state == ProcessState::kFailed || p->state == ProcessState::kFinished) continue;
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
        if (existing->state == ProcessState::kFailed && existing->ever_running) {
            // The circuit breaker is open: only TerminatePattern clears it.
            return done(LaunchResult{ErrorCode::kFailedPrecondition,
                                     "process " + id + " is FAILED (" + existing->last_error +
                                         "); terminate it to clear the circuit breaker",
                                     {},
                                     false});
        }
        if (existing->process_alive || existing->group) {
            return done(LaunchResult{ErrorCode::kUnavailable,
                                     "process " + id + " is still being cleaned up",
                                     {},
                                     false});
        }
        processes_.erase(id);  // FINISHED: start it again
    }
    std::string limit;
    if (auto problem = quota_problem(key, limit); !problem.empty()) {
        if (observer_) observer_->quota_rejected(key.namespace_id, limit);
        return done(LaunchResult{
            ErrorCode::kResourceExhausted, "cannot launch " + id + ": " + problem, {}, false});
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

// ---- terminate ----------------------------------------------------------------

void Launcher::terminate(const std::string& process_id, milliseconds grace, bool force,
                         TerminateDone done) {
    ManagedProcess* p = find(process_id);
    if (!p) {
        return done(
            TerminateResult{ErrorCode::kNotFound, "process not found: " + process_id, false, {}});
    }
    if (grace.count() > 0) p->grace = grace;
    p->terminate_waiters.push_back(std::move(done));
    if (p->state == ProcessState::kTerminating) {
        if (force) teardown(*p);
        return;
    }
    if (p->state == ProcessState::kStarting) {
        auto waiters = std::move(p->launch_waiters);
        LaunchResult aborted{ErrorCode::kUnavailable,
                             "process " + process_id + " was terminated while starting",
                             {},
                             false};
        for (auto& waiter : waiters)
            waiter(aborted);
    }
    bool already_down = !p->process_alive && !p->group;
    p->state = ProcessState::kTerminating;
    p->healthy = false;
    std::erase(start_queue_, process_id);
    if (already_down) return finish(*p);
    begin_stop(*p, force);
}

void Launcher::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    std::vector<std::string> ids;
    for (auto& [id, p] : processes_)
        ids.push_back(id);
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
        i.started_at_unix_ms = p.started_at_unix_ms;
    }
    i.last_error = p.last_error;
    i.error_count = p.error_count;
    i.restart_count = p.restart_count;
    i.consecutive_failures = p.consecutive_failures;
    i.uid = p.uid;
    i.gid = p.gid;
    i.confinement = p.confinement;
    i.weakened = p.weakened;
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
