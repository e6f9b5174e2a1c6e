// Everything the launcher holds for one isolation key. Internal to the
// launcher (launcher.cc, supervision.cc, recovery.cc).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "core/health_probe.h"
#include "common/isolation_key.h"
#include "core/launcher.h"
#include "core/launcher_types.h"
#include "config/manifest.h"
#include "core/pattern_sockets.h"
#include "sandbox/cgroup.h"
#include "sandbox/process.h"

namespace launcher {

struct ManagedProcess {
    IsolationKey key;
    std::string id;
    std::shared_ptr<const Manifest> manifest;
    std::map<std::string, std::string> config;  // the launch request's, for every restart
    ProcessState state = ProcessState::kStarting;
    bool healthy = false;
    bool limits_enforced = true;
    std::chrono::milliseconds grace{0};

    // The key's resources; they outlive restarts, so the address never changes.
    // `group` holds the limits; each process incarnation runs in a fresh
    // leaf below it (`run`), because a group that has seen cgroup.kill kills
    // every later CLONE_INTO_CGROUP child at birth on current kernels.
    std::unique_ptr<sandbox::Cgroup> group;
    std::unique_ptr<sandbox::Cgroup> run;
    std::uint64_t oom_kills_at_start = 0;  // memory.events of `group` (hierarchical)
    BoundSocket grpc;
    BoundSocket health;  // fd unset for tcp checks (the pattern binds the port)
    std::filesystem::path notify_path;
    sandbox::UniqueFd notify;

    // The current process.
    sandbox::Process process;
    bool process_alive = false;
    bool adopted = false;  // found after a launcher restart: not our child
    pid_t pid = 0;
    std::uint32_t identity = 0;         // the key's uid and gid; 0: none
    std::uint32_t uid = 0, gid = 0;     // what the current process runs as
    std::string confinement;            // what its spawn applied (applied_confinement)
    std::vector<std::string> weakened;  // what its manifest gives up (confinement_weakenings)
    EventLoop::Clock::time_point requested_at = EventLoop::Clock::now();  // the cold launch
    EventLoop::Clock::time_point started_at = EventLoop::Clock::now();
    std::int64_t started_at_unix_ms = 0;

    // In-flight work, each cancelled by stop_timers().
    std::shared_ptr<HealthProbe> probe;
    EventLoop::TimerId start_timer = 0;     // start_timeout
    EventLoop::TimerId retry_timer = 0;     // next readiness probe
    EventLoop::TimerId grace_timer = 0;     // SIGTERM -> cgroup.kill
    EventLoop::TimerId restart_timer = 0;   // back-off before a restart
    EventLoop::TimerId liveness_timer = 0;  // next liveness probe
    EventLoop::TimerId stable_timer = 0;    // resets consecutive_failures
    sandbox::UniqueFd cgroup_events;        // watched while the group drains
    std::function<void(ManagedProcess&)> after_drain;
    bool queued = false;  // waiting for a max_concurrent_starts slot

    std::vector<Launcher::LaunchDone> launch_waiters;
    std::vector<Launcher::TerminateDone> terminate_waiters;
    std::string start_failure;    // a cold start failed: answered once torn down
    std::string kill_reason;      // why we killed a running process (liveness)
    std::string readiness_error;  // the last failed readiness probe of this start

    std::string address;
    std::string last_error;
    std::string exit_cause;
    int error_count = 0;
    int restart_count = 0;
    int consecutive_failures = 0;
    int liveness_failures = 0;
    bool ever_running = false;
};

}  // namespace launcher
