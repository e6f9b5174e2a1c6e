// The launcher core: one record per isolation key, driven by the event
// loop. Every public method runs on the loop thread; results are delivered
// through callbacks, also on the loop thread.
//
// A key's life: launch() creates it STARTING (cgroup with limits, sockets,
// spawn), it turns RUNNING once healthy, TERMINATING on terminate(), and is
// removed once its process and every descendant are gone and its cgroup is
// removed. A start that fails tears everything down before it answers.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "event_loop.h"
#include "isolation_key.h"
#include "launcher_types.h"
#include "pattern_sockets.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"

namespace launcher {

struct ManagedProcess;

class Launcher {
public:
    using LaunchDone = std::function<void(const LaunchResult&)>;
    using TerminateDone = std::function<void(const TerminateResult&)>;

    Launcher(EventLoop& loop, LauncherConfig config, sandbox::CgroupTree& tree, Discovery patterns);
    ~Launcher();

    void launch(const LaunchParams& params, LaunchDone done);
    // grace 0: the launch's, else the manifest's, else default_grace_period.
    void terminate(const std::string& process_id, std::chrono::milliseconds grace, bool force,
                   TerminateDone done);
    std::vector<ProcessInfo> list(const ListFilter& filter) const;
    std::optional<ProcessInfo> status(const std::string& process_id) const;
    HealthSummary health(bool include_processes) const;

    // Replaces the known patterns; running processes are untouched.
    void replace_patterns(Discovery patterns);
    const std::map<std::string, std::shared_ptr<const Manifest>>& patterns() const {
        return patterns_;
    }

    // Stops taking launches (UNAVAILABLE), terminates everything in
    // parallel with its grace period, then calls `done`.
    void shutdown(std::function<void()> done);
    bool shutting_down() const { return shutting_down_; }
    std::size_t process_count() const { return processes_.size(); }

private:
    ManagedProcess* find(const std::string& id) const;
    LaunchResult validate(const LaunchParams& params, std::shared_ptr<const Manifest>& manifest,
                          IsolationKey& key) const;
    void start(ManagedProcess& p);
    sandbox::Cgroup& namespace_group(const std::string& namespace_id);
    void release_namespace_group(const std::string& namespace_id);
    void watch_readiness(ManagedProcess& p);
    void probe_health(ManagedProcess& p);
    void on_notify(ManagedProcess& p);
    void became_healthy(ManagedProcess& p);
    void on_exit(ManagedProcess& p);
    void fail_start(ManagedProcess& p, const std::string& reason);
    void begin_stop(ManagedProcess& p, bool force);
    void teardown(ManagedProcess& p);
    void finish(ManagedProcess& p);
    ProcessInfo info(const ManagedProcess& p) const;
    const sandbox::BpfProgram* seccomp_program(const std::string& profile);
    void maybe_finish_shutdown();

    EventLoop& loop_;
    LauncherConfig config_;
    sandbox::CgroupTree& tree_;
    std::map<std::string, std::shared_ptr<const Manifest>> patterns_;
    std::map<std::string, std::unique_ptr<ManagedProcess>> processes_;
    std::map<std::string, std::string> session_owner_;  // session id -> namespace
    struct NamespaceGroup {
        std::unique_ptr<sandbox::Cgroup> group;
        int users = 0;
    };
    std::map<std::string, NamespaceGroup> namespace_groups_;
    std::map<std::string, sandbox::BpfProgram> seccomp_cache_;
    PortAllocator ports_;
    EventLoop::Clock::time_point started_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
};

}  // namespace launcher
