// What the launcher tells the outside world as things happen: metrics,
// audit logs. All calls come from the event loop thread.
#pragma once

#include <chrono>
#include <string>

#include "config/manifest.h"

namespace launcher {

struct ProcessLabels {
    std::string pattern;
    std::string namespace_id;  // empty for NONE isolation
    Isolation isolation = Isolation::kNamespace;
    std::string process_id;
};

class LauncherObserver {
public:
    virtual ~LauncherObserver() = default;
    // A cold start reached RUNNING; `duration` from the request to healthy.
    virtual void process_started(const ProcessLabels&, std::chrono::nanoseconds duration) = 0;
    // A key went away (terminated, or finished without restart).
    virtual void process_stopped(const ProcessLabels&) = 0;
    // A start failed or a running process failed (crash, OOM, liveness).
    virtual void process_failed(const ProcessLabels&) = 0;
    virtual void process_restarted(const ProcessLabels&) = 0;
    virtual void process_oom_killed(const ProcessLabels&) = 0;
    virtual void health_checked(const ProcessLabels&, bool ok) = 0;
    // A launch refused by a quota; `limit` names it ("max_processes", ...).
    virtual void quota_rejected(const std::string& namespace_id, const std::string& limit) = 0;
    // A launch of a key the warm pool keeps (config/warm_pool.h): a hit when
    // it was RUNNING (the launch is a reuse), a miss otherwise (it joins or
    // waits for the pool's start).
    virtual void warm_pool_launch(const ProcessLabels&, bool hit) = 0;
    // The pool started one of its keys and it reached RUNNING; `duration`
    // from the pool's launch to RUNNING.
    virtual void warm_pool_refilled(const ProcessLabels&, std::chrono::nanoseconds duration) = 0;
    // A SESSION launch of a pattern with a session pool for its tenant: a hit
    // when it claimed a ready process, a miss when it had to start one.
    virtual void session_pool_launch(const ProcessLabels&, bool hit) = 0;
    // A session pool's process became ready, `duration` after the pool asked for it.
    virtual void session_pool_refilled(const ProcessLabels&, std::chrono::nanoseconds duration) = 0;
};

}  // namespace launcher
