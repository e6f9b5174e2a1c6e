// Everything the launcher holds for one isolation key. Internal to the core
// (launcher.cc, key_lifecycle.cc, supervision.cc, recovery.cc). Its phase
// changes only through Launcher::set_phase() (key_phase.h).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "common/isolation_key.h"
#include "common/log.h"
#include "config/manifest.h"
#include "core/health_probe.h"
#include "core/key_phase.h"
#include "core/launcher.h"
#include "core/launcher_types.h"
#include "core/network_port.h"
#include "core/pattern_sockets.h"
#include "core/sandbox_port.h"
#include "state/state_store.h"

namespace launcher {

// A start that cannot proceed, with the API's code for it (thrown by
// prepare() and caught by start()).
class StartError : public std::runtime_error {
public:
    StartError(ErrorCode code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

// Why a cold start failed, answered to its callers once torn down. The
// code is chosen where the failure is known, never from the text.
struct StartFailure {
    ErrorCode code = ErrorCode::kInternal;
    std::string reason;
};

struct Key {
    IsolationKey key;
    std::string id;
    std::shared_ptr<const Manifest> manifest;
    std::map<std::string, std::string> config;  // the launch request's, for every restart
    std::chrono::milliseconds grace{0};

    // The state machine (key_phase.h). `stop_requested`: a terminate asked
    // for it (persisted as desired STOPPED); `after_drain`: where kDraining leads.
    Phase phase = Phase::kQueued;
    AfterDrain after_drain = AfterDrain::kForget;
    bool stop_requested = false;
    // The one timer of the phase; set_phase() drops it.
    EventLoop::Timer timer;
    std::shared_ptr<HealthProbe> probe;             // at most one check in flight
    EventLoop::Clock::time_point start_deadline{};  // kStarting: start_timeout
    EventLoop::Clock::time_point running_since{};   // kRunning: for the stability rule
    std::int64_t backoff_until_unix_ms = 0;         // kBackoff: persisted

    // The key's resources; they outlive restarts, so the address never
    // changes. `group` holds the limits; each incarnation runs in a fresh
    // leaf below it (`run`, see sandbox::Cgroup::create_incarnation).
    std::unique_ptr<KeyGroup> group;
    std::unique_ptr<KeyGroup> run;
    std::uint32_t incarnation = 0;  // the current (or last) leaf is run.<incarnation>
    bool leaf_used = false;         // run.<incarnation> was made (maybe by a previous launcher)
    bool limits_enforced = true;
    std::uint64_t oom_kills_at_start = 0;  // memory.events of `group` (hierarchical)
    BoundSocket grpc;
    BoundSocket health;  // fd unset for tcp checks (the pattern binds the port)
    // Egress (a manifest with sandbox.egress): the key's network namespace,
    // veth and rules, kept across restarts; its slot in egress.pool.
    std::unique_ptr<KeyNetwork> network;
    std::uint32_t egress_slot = 0;  // 0: none
    std::filesystem::path notify_path;
    sandbox::UniqueFd notify;
    EventLoop::Watch notify_watch;
    KeyGroup::Events cgroup_events;      // of `group`, opened while draining
    EventLoop::Watch events_watch;       // ... and watched (declared after: unwatched first)
    int rmdir_retries = 0;               // kDraining: a busy rmdir is retried by the phase's timer
    bool holds_namespace_group = false;  // counted in Launcher::namespace_groups_
    // Recovery: a group left by a previous launcher is removed by the drain
    // and made anew (with its limits) by the next start.
    bool renew_group = false;
    // Set by recovery: the rest of a back-off that a launcher restart cut short.
    std::optional<std::chrono::milliseconds> resume_backoff;
    UsageSample usage;
    std::uint64_t egress_denied = 0;  // sampled with `usage`

    // kStarting: the process cloned but not yet exec'd, and the watch of its
    // spawn's ready fd (spawned() takes it over). Leaving kStarting drops it,
    // which kills and reaps the child.
    std::unique_ptr<PendingProcess> pending_spawn;
    EventLoop::Watch pending_watch;
    bool ready_before_spawned = false;  // READY=1 came while the spawn was pending
    // The current process (the init of its pid namespace, or the pattern).
    std::unique_ptr<KeyProcess> process;
    EventLoop::Watch process_watch;  // its pidfd
    bool process_alive = false;
    bool adopted = false;  // found after a launcher restart: not our child
    pid_t pid = 0;
    std::uint32_t identity = 0;      // the key's uid and gid; 0: none
    std::uint32_t uid = 0, gid = 0;  // what the current process runs as
    // What its spawn applied (applied_confinement): the same text for every
    // key of a pattern, so one copy in Launcher::confinements_; null: none yet.
    const std::string* confinement = nullptr;
    std::vector<std::string> weakened;  // what its manifest gives up (confinement_weakenings)
    EventLoop::Clock::time_point requested_at{};  // the cold launch
    EventLoop::Clock::time_point started_at{};
    std::int64_t started_at_unix_ms = 0;
    std::int64_t accepted_at_unix_ms = 0;
    std::int64_t running_since_unix_ms = 0;
    // The record it was recovered from (keeps unknown fields); null for a key
    // this launcher accepted. A pointer: a KeyRecord is about 300 bytes, and
    // most keys never need one (10,000 keys: 3 MiB).
    std::unique_ptr<const KeyRecord> base_record;

    // A session pool's process (session_pool.cc): its slot while unclaimed
    // (its id is pool_process_id(); empty: an ordinary key, or claimed), and
    // the launcher's end of its claim socket with, after the claim, the
    // watch for the pattern's answer. Closed once it answered.
    std::string pool_slot;
    sandbox::UniqueFd claim;
    EventLoop::Watch claim_watch;

    std::vector<Launcher::LaunchDone> launch_waiters;
    std::vector<Launcher::TerminateDone> terminate_waiters;
    std::optional<StartFailure> start_failure;  // a cold start failed
    std::string kill_reason;                    // why we killed a running process (liveness)
    std::string readiness_error;                // the last failed readiness probe of this start
    std::string recovery;                       // how the last launcher restart settled this key

    std::string address;
    std::string last_error;
    std::string exit_cause;
    int error_count = 0;
    int restart_count = 0;
    int consecutive_failures = 0;
    int liveness_failures = 0;
    bool ever_running = false;

    ProcessState state() const { return public_state(phase, after_drain); }
};

// A session pool's process's id (session_pool.cc): "pool:<namespace>:<slot>:<pattern>",
// a form no launch request can name.
std::string pool_process_id(const std::string& namespace_id, const std::string& slot,
                            const std::string& pattern);

// The wall clock, for records (the loop's clock is steady and may be a test's).
inline std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The journal fields of a line about `k`.
inline log::Key log_key(const Key& k) {
    return log::Key{k.id, k.key.namespace_id, k.key.pattern};
}

}  // namespace launcher
